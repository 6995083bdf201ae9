"""The vanishing-gradient study of the exercise sheet (``python -m bsp_fast.gradients``).

Two experiments, both deterministic (fixed seeds, float64 for the recurrent one so that tiny
gradients do not underflow to zero):

1. **Deep MLP** (``--depth`` hidden layers of ``--width`` units, PyTorch's default initialisation,
   one binary cross-entropy backward pass on a random batch): the gradient magnitude of every
   hidden layer, measured as the mean absolute weight gradient ``mean |dL/dW_l|`` (and, in the TSV,
   the mean norm of the gradient of the layer's output ``||dL/dh_l||``), for sigmoid, ReLU and ELU,
   each plain, with batch norm (Linear -> BatchNorm1d -> activation), with skip connections
   (``h_{l+1} = h_l + act(W_l h_l)``) and with both.
2. **Recurrent nets** over ``--steps`` (400) time steps of random one-hot DNA: ``||dL/dh_t||`` for
   every step t of an Elman RNN (``nn.RNNCell``, tanh) and a GRU (``nn.GRUCell``), both with PyTorch's
   default initialisation, and a GRU whose update gate starts biased towards keeping its state
   (``bias_hh`` of z + 2, the usual "remember by default" initialisation). The loss reads only the
   last state, so ``dL/dh_0`` is what reaches the first base.

Outputs in ``--out``: ``mlp_gradients.tsv`` (variant, layer, weight_grad, act_grad),
``rnn_gradients.tsv`` (model, t, grad_norm), ``summary.md``, ``summary.tsv`` and ``rnn_summary.tsv`` (one row per
variant: first, middle and last layer, first/last and max/min ratios; for the recurrent nets the
norm at t = 0, 100, 200, 300, T-1), ``summary.json``, and plots ``mlp_gradients.png`` and
``rnn_gradients.png`` (log scale).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from bsp_fast.cli import ArgumentParser, UserError, guard

PROG = "bsp-fast gradients"
ACTIVATIONS = ("sigmoid", "relu", "elu")
VARIANTS = ("plain", "batchnorm", "skip", "batchnorm+skip")

__all__ = ["DeepMLP", "mlp_layer_gradients", "mlp_study", "rnn_state_gradients", "rnn_study", "main"]


class DeepMLP(nn.Module):
    """Input Linear -> ``depth`` x [Linear (-> BatchNorm1d) -> activation (+ skip)] -> Linear -> logit."""

    def __init__(self, activation: str, depth: int = 20, width: int = 64, in_features: int = 32,
                 batchnorm: bool = False, skip: bool = False) -> None:
        super().__init__()
        acts = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "elu": nn.ELU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {', '.join(acts)}, got {activation!r}")
        self.inp = nn.Linear(in_features, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(depth)) if batchnorm else None
        self.act = acts[activation]()
        self.skip = skip
        self.out = nn.Linear(width, 1)
        self.hidden: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        self.hidden = []
        for i, layer in enumerate(self.layers):
            z = layer(h)
            if self.norms is not None:
                z = self.norms[i](z)
            a = self.act(z)
            h = h + a if self.skip else a
            if h.requires_grad:
                h.retain_grad()
            self.hidden.append(h)
        return self.out(h).squeeze(1)


def mlp_layer_gradients(activation: str, variant: str = "plain", depth: int = 20, width: int = 64,
                        batch: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """One backward pass; per hidden layer ``weight_grad`` = mean |dL/dW_l| and ``act_grad`` = mean ||dL/dh_l||."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DeepMLP(activation, depth, width, batchnorm="batchnorm" in variant, skip="skip" in variant)
    model.train()
    x = torch.randn(batch, 32, generator=gen)
    y = (torch.rand(batch, generator=gen) < 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    w = np.array([layer.weight.grad.abs().mean().item() for layer in model.layers])
    a = np.array([h.grad.norm(dim=1).mean().item() for h in model.hidden])
    return {"weight_grad": w, "act_grad": a}


def mlp_study(depth: int = 20, width: int = 64, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Every activation x variant, keyed ``"<activation> <variant>"``."""
    return {f"{act} {var}": mlp_layer_gradients(act, var, depth, width, seed=seed)
            for act in ACTIVATIONS for var in VARIANTS}


def rnn_state_gradients(kind: str, steps: int = 400, hidden: int = 32, batch: int = 8, seed: int = 0,
                        update_bias: float = 0.0) -> np.ndarray:
    """``||dL/dh_t||`` (mean over the batch) for t = 0 .. steps-1; the loss reads only h_{T-1}.

    ``kind`` is ``elman`` (``nn.RNNCell``, tanh) or ``gru`` (``nn.GRUCell``); ``update_bias`` is added
    to the GRU's update-gate bias (z; positive = keep the state). Float64, default initialisation.
    """
    if kind not in ("elman", "gru"):
        raise ValueError(f"kind must be 'elman' or 'gru', got {kind!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cell = (nn.RNNCell(4, hidden) if kind == "elman" else nn.GRUCell(4, hidden)).double()
        head = nn.Linear(hidden, 1).double()
        bases = torch.randint(0, 4, (steps, batch))
    if kind == "gru" and update_bias:
        with torch.no_grad():
            cell.bias_hh[hidden:2 * hidden] += update_bias  # gate order r, z, n
    x = torch.eye(4, dtype=torch.float64)[bases]
    target = (torch.arange(batch) % 2).double()
    h = torch.zeros(batch, hidden, dtype=torch.float64)
    states = []
    for t in range(steps):
        h = cell(x[t], h)
        h.retain_grad()
        states.append(h)
    loss = nn.functional.binary_cross_entropy_with_logits(head(h).squeeze(1), target)
    loss.backward()
    return np.array([s.grad.norm(dim=1).mean().item() for s in states])


RNN_MODELS = {"Elman RNN": ("elman", 0.0), "GRU": ("gru", 0.0), "GRU (update-gate bias +2)": ("gru", 2.0)}


def rnn_study(steps: int = 400, hidden: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """``||dL/dh_t||`` per step for every model of :data:`RNN_MODELS`."""
    return {name: rnn_state_gradients(kind, steps, hidden, seed=seed, update_bias=b) for name, (kind, b) in RNN_MODELS.items()}


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


def summarise(mlp: dict[str, dict[str, np.ndarray]], rnn: dict[str, np.ndarray]) -> dict[str, Any]:
    """One row per MLP variant (first/middle/last layer, ratios) and per recurrent net (a few steps)."""
    rows = []
    for name, g in mlp.items():
        w = g["weight_grad"]
        rows.append({"variant": name, "first": float(w[0]), "middle": float(w[len(w) // 2]), "last": float(w[-1]),
                     "first_over_last": float(w[0] / w[-1]) if w[-1] > 0 else math.inf,
                     "max_over_min": float(w.max() / w.min()) if w.min() > 0 else math.inf,
                     "act_max_over_min": float(g["act_grad"].max() / g["act_grad"].min()) if g["act_grad"].min() > 0 else math.inf})
    rrows = []
    for name, g in rnn.items():
        t_points = [t for t in (0, 100, 200, 300) if t < len(g)] + [len(g) - 1]
        rrows.append({"model": name, **{f"t={t}": float(g[t]) for t in t_points},
                      "t0_over_last": float(g[0] / g[-1]) if g[-1] > 0 else 0.0})
    return {"mlp": rows, "rnn": rrows}


def _markdown(summary: dict[str, Any], depth: int, steps: int) -> str:
    out = [f"# Vanishing gradients", "",
           f"## Deep MLP ({depth} hidden layers): mean |dL/dW| per layer", "",
           "| variant | first layer | middle layer | last layer | first/last | max/min | max/min of dL/dh |",
           "|---|---|---|---|---|---|---|"]
    for r in summary["mlp"]:
        out.append(f"| {r['variant']} | {_fmt(r['first'])} | {_fmt(r['middle'])} | {_fmt(r['last'])} | "
                   f"{_fmt(r['first_over_last'])} | {_fmt(r['max_over_min'])} | {_fmt(r['act_max_over_min'])} |")
    keys = [k for k in summary["rnn"][0] if k.startswith("t=")] if summary["rnn"] else []
    out += ["", f"## Recurrent nets over {steps} steps: ||dL/dh_t|| (loss on the last state)", "",
            "| model | " + " | ".join(keys) + " | t0/last |", "|---|" + "---|" * (len(keys) + 1)]
    for r in summary["rnn"]:
        out.append(f"| {r['model']} | " + " | ".join(_fmt(r[k]) for k in keys) + f" | {_fmt(r['t0_over_last'])} |")
    return "\n".join(out) + "\n"


def _plots(out: Path, mlp: dict[str, dict[str, np.ndarray]], rnn: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bsp_fast.plots import _save, plot_lines

    fig, axes = plt.subplots(1, len(ACTIVATIONS), figsize=(15, 4.5), sharey=True)
    for ax, act in zip(axes, ACTIVATIONS):
        for var in VARIANTS:
            w = mlp[f"{act} {var}"]["weight_grad"]
            ax.plot(np.arange(1, len(w) + 1), np.maximum(w, 1e-300), marker="o", ms=3, label=var)
        ax.set_yscale("log")
        ax.set(title=act, xlabel="hidden layer (1 = next to the input)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean |dL/dW|")
    axes[0].legend(fontsize=8)
    fig.suptitle("gradient magnitude per layer (one backward pass, default initialisation)")
    _save(fig, out / "mlp_gradients.png")
    series = {name: (np.arange(len(g)), np.maximum(g, 1e-300)) for name, g in rnn.items()}
    plot_lines(series, out / "rnn_gradients.png", xlabel="time step t", ylabel="||dL/dh_t||",
               title="gradient reaching each step (loss on the last state)", logy=True)


def build_parser() -> ArgumentParser:
    """The ``bsp-fast gradients`` options."""
    p = ArgumentParser(prog=PROG, description="The vanishing-gradient study: deep MLPs and Elman RNN vs GRU.")
    p.add_argument("--out", default="gradients", help="output directory (default ./gradients)")
    p.add_argument("--depth", type=int, default=20, help="hidden layers of the MLP (default 20)")
    p.add_argument("--width", type=int, default=64, help="units per MLP layer (default 64)")
    p.add_argument("--steps", type=int, default=400, help="time steps of the recurrent nets (default 400)")
    p.add_argument("--hidden", type=int, default=32, help="recurrent hidden size (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plots", action="store_true", help="tables only")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    for flag, v, low in (("--depth", args.depth, 2), ("--width", args.width, 1), ("--steps", args.steps, 2),
                         ("--hidden", args.hidden, 1)):
        if v < low:
            raise UserError(f"{PROG}: {flag} must be >= {low}, got {v}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{PROG}: --out {out}: cannot create the directory ({exc.strerror})") from None
    mlp = mlp_study(args.depth, args.width, args.seed)
    rnn = rnn_study(args.steps, args.hidden, args.seed)
    summary = summarise(mlp, rnn)
    with open(out / "mlp_gradients.tsv", "w") as fh:
        fh.write("variant\tlayer\tweight_grad\tact_grad\n")
        for name, g in mlp.items():
            for i, (w, a) in enumerate(zip(g["weight_grad"], g["act_grad"]), start=1):
                fh.write(f"{name}\t{i}\t{w:.6e}\t{a:.6e}\n")
    with open(out / "rnn_gradients.tsv", "w") as fh:
        fh.write("model\tt\tgrad_norm\n")
        for name, g in rnn.items():
            for t, v in enumerate(g):
                fh.write(f"{name}\t{t}\t{v:.6e}\n")
    with open(out / "summary.tsv", "w") as fh:
        fh.write("variant\tfirst\tmiddle\tlast\tfirst_over_last\tmax_over_min\tact_max_over_min\n")
        for r in summary["mlp"]:
            fh.write("\t".join([r["variant"]] + [f"{r[k]:.6e}" for k in ("first", "middle", "last", "first_over_last", "max_over_min", "act_max_over_min")]) + "\n")
    with open(out / "rnn_summary.tsv", "w") as fh:
        keys = [k for k in summary["rnn"][0] if k != "model"]
        fh.write("model\t" + "\t".join(keys) + "\n")
        for r in summary["rnn"]:
            fh.write("\t".join([r["model"]] + [f"{r[k]:.6e}" for k in keys]) + "\n")
    md = _markdown(summary, args.depth, args.steps)
    (out / "summary.md").write_text(md)
    (out / "summary.json").write_text(json.dumps({"depth": args.depth, "width": args.width, "steps": args.steps,
                                                  "hidden": args.hidden, "seed": args.seed, **summary}, indent=1))
    if not args.no_plots:
        _plots(out, mlp, rnn)
    print(md, end="")
    print(f"wrote {out}/summary.md, summary.tsv, rnn_summary.tsv, mlp_gradients.tsv, rnn_gradients.tsv"
          + ("" if args.no_plots else ", mlp_gradients.png, rnn_gradients.png"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``bsp-fast gradients``: exit status 0, or 2 with one line on stderr for a user's mistake."""
    return guard(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
