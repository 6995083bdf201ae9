"""Attributions of a model's logit to the bases of its input, and their completeness.

Inputs are base codes ``[N, L]`` (uint8, A=0 C=1 G=2 T=3 N=4) or one-hot ``X`` float32 ``[N, 4, L]``
(:func:`one_hot_codes`); the model is any bsp_fast model (``forward(codes)`` and
``forward_one_hot(X)``, both returning logits ``[N]``). Every function works in batches of
``batch_size`` sequences, so memory is bounded by the batch, not by ``N``.

- :func:`ism` -- in-silico mutagenesis: ``delta[n, i, b] = logit(base b at i) - logit``. Ours, not
  tangermeme's ``saturation_mutagenesis``: it runs on base codes (every model, no one-hot wrapper),
  skips N positions and the reference base instead of scoring them, and is exact.
- :func:`integrated_gradients` -- captum's ``IntegratedGradients`` from an all-N (zero) baseline.
- :func:`deep_lift_shap` -- tangermeme's ``deep_lift_shap`` against dinucleotide-shuffled
  references, on models whose operations all have DeepLIFT rules (:func:`deeplift_blocker` names the
  one that does not, otherwise).

Each gradient method returns an :class:`Attributions`: ``attr`` (the observed bases' contributions;
their sum over a sequence approximates ``f(x) - f(reference)``), ``hypothetical`` (every base's
contribution had it been there, what TF-MoDISco reads), ``output`` ``f(x)``, ``reference_output``
(``f(baseline)``, or the mean over the shuffled references) and ``delta``: the completeness error
``attr.sum() - (output - reference_output)`` per sequence (:func:`completeness`).

**Which models DeepLIFT/SHAP covers.** DeepLIFT replaces the gradient of each nonlinear *module*
(``nn.ReLU``, ``nn.MaxPool1d``, ...) by a rescale rule; a nonlinearity computed by a functional
call or inside a custom op keeps its plain gradient, and the sum of attributions then misses
``f(x) - f(reference)`` (the large convergence deltas tangermeme's users report on pooling models,
its issues #48, #49). In bsp_fast's models:

- ``cnn`` with the dense head: covered, through :class:`DeepLiftCNN`, an equivalent re-expression
  sharing the model's parameters whose strand ReLUs and global max pool are modules (the model's own
  forward computes them functionally). Ensembles of such cnns too (one view per member and strand).
- ``bigru``, ``bigru-small``, ``hybrid``: blocked by the FusedBiGRU custom op (the GRU's sigmoid and
  tanh gates run inside one fused kernel that DeepLIFT's per-module rules cannot reach).
- the occupancy head (the default model's): blocked by its ``log(1 - prod(1 - p_i))`` pooling
  (functional ``logsigmoid`` / ``expm1`` / ``log`` over the per-site logits).

For those, :func:`integrated_gradients` applies (completeness holds up to the path integral's
discretisation, reported as ``delta``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bsp_fast.interpret import require

__all__ = ["Attributions", "UnsupportedModel", "one_hot_codes", "ism", "ism_importance", "integrated_gradients",
           "deep_lift_shap", "deeplift_blocker", "DeepLiftCNN", "completeness", "METHODS"]

METHODS = ("ism", "ig", "deepliftshap")


class UnsupportedModel(ValueError):
    """The attribution method cannot run on this model; the message names the operation that blocks it."""


@dataclass
class Attributions:
    """Attributions of ``N`` sequences (see the module docstring); arrays float32 [N, 4, L], [N]."""

    method: str
    ohe: np.ndarray
    attr: np.ndarray
    hypothetical: np.ndarray
    output: np.ndarray
    reference_output: np.ndarray
    delta: np.ndarray

    def relative_delta(self) -> np.ndarray:
        """``|delta| / |output - reference_output|`` per sequence (inf where the difference is 0)."""
        diff = np.abs(self.output - self.reference_output)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(diff > 0, np.abs(self.delta) / diff, np.inf)


def one_hot_codes(codes: np.ndarray) -> np.ndarray:
    """Base codes [N, L] (or [L]) -> one-hot float32 [N, 4, L] (N bases all-zero columns)."""
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.ndim == 1:
        codes = codes[None]
    table = np.concatenate([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return np.ascontiguousarray(table[np.minimum(codes, 4)].transpose(0, 2, 1))


def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


# ------------------------------------------------------------------------------------------------
# in-silico mutagenesis
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def ism(model: nn.Module, codes: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """In-silico mutagenesis of each sequence of ``codes`` [n, L]:

    returns (reference logits [n], delta [n, L, 4]: logit(mutant with base b at position i) minus
    the reference logit; 0 at the reference base; N positions get 0 deltas for all bases). The
    mutants of one sequence are scored ``batch_size`` at a time (memory O(batch_size x L)).
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, length = codes.shape
    model.eval()
    dev = _device(model)
    ref = np.zeros(n)
    delta = np.zeros((n, length, 4))
    pos_all = np.repeat(np.arange(length), 4)
    base_all = np.tile(np.arange(4), length).astype(np.uint8)
    for s in range(n):
        seq = codes[s]
        keep = (seq[pos_all] != base_all) & (seq[pos_all] < 4)
        pos, base = pos_all[keep], base_all[keep]
        ref[s] = float(model(torch.from_numpy(seq[None].copy()).to(dev)).float()[0])
        d = np.zeros(length * 4)
        out = np.empty(len(pos))
        for i in range(0, len(pos), batch_size):
            mut = np.repeat(seq[None, :], len(pos[i:i + batch_size]), axis=0)
            mut[np.arange(len(mut)), pos[i:i + batch_size]] = base[i:i + batch_size]
            out[i:i + batch_size] = model(torch.from_numpy(mut).to(dev)).float().cpu().numpy()
        d[np.flatnonzero(keep)] = out - ref[s]
        delta[s] = d.reshape(length, 4)
    return ref, delta


def ism_importance(codes: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Per-base importance ``logit(reference) - mean(logit of its three mutants)`` [n, L] (0 at N)."""
    codes = np.asarray(codes)
    return np.where(codes < 4, -delta.sum(axis=-1) / 3.0, 0.0)


# ------------------------------------------------------------------------------------------------
# gradient methods
# ------------------------------------------------------------------------------------------------


class _Logit(nn.Module):
    """``model.forward_one_hot`` as a [B, 1] output (the shape captum and tangermeme expect)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_one_hot(x).unsqueeze(1)


@torch.no_grad()
def _outputs(net: nn.Module, X: torch.Tensor, batch_size: int) -> np.ndarray:
    return np.concatenate([net(X[i:i + batch_size]).float().cpu().numpy().reshape(-1)
                           for i in range(0, len(X), batch_size)]).astype(np.float64)


def completeness(attr: np.ndarray, output: np.ndarray, reference_output: np.ndarray) -> np.ndarray:
    """Completeness error per sequence: ``attr.sum over (bases, positions) - (output - reference_output)``."""
    return attr.reshape(len(attr), -1).sum(axis=1).astype(np.float64) - (np.asarray(output) - np.asarray(reference_output))


def integrated_gradients(model: nn.Module, X: np.ndarray, n_steps: int = 64, batch_size: int = 16,
                         progress_desc: str | None = None) -> Attributions:
    """Integrated gradients (captum) of the logit from the all-N baseline (zeros) to ``X`` [N, 4, L].

    ``attr = X * integral of the gradient`` (Gauss-Legendre, ``n_steps`` points);
    ``hypothetical`` = the integrated gradient of every base, centred on the mean of the four bases at
    each position (so ``hypothetical * X`` is the observed base's gain over an average base).
    ``batch_size`` sequences x ``n_steps`` points are differentiated at a time.
    """
    captum_attr = require("captum.attr", "--method ig (integrated gradients)")
    from bsp_fast.progress import progress

    model.eval()
    dev = _device(model)
    net = _Logit(model)
    ig = captum_attr.IntegratedGradients(net, multiply_by_inputs=False)
    X = np.ascontiguousarray(X, dtype=np.float32)
    grads = np.empty_like(X)
    with progress(total=len(X), desc=progress_desc or "integrated gradients", unit="seq",
                  disable=progress_desc is None) as bar:
        for i in range(0, len(X), batch_size):
            xb = torch.from_numpy(X[i:i + batch_size]).to(dev)
            g = ig.attribute(xb, baselines=torch.zeros_like(xb), target=0, n_steps=n_steps,
                             internal_batch_size=max(1, len(xb)) * n_steps)
            grads[i:i + batch_size] = g.detach().float().cpu().numpy()
            bar.update(len(xb))
    xt = torch.from_numpy(X).to(dev)
    output = _outputs(net, xt, 256)
    ref_out = _outputs(net, torch.zeros_like(xt[:1]), 1).repeat(len(X))
    attr = grads * X  # (x - baseline) * integrated gradient, baseline 0
    hyp = grads - grads.mean(axis=1, keepdims=True)
    return Attributions("ig", X, attr, hyp.astype(np.float32), output, ref_out, completeness(attr, output, ref_out))


# ------------------------------------------------------------------------------------------------
# DeepLIFT / SHAP
# ------------------------------------------------------------------------------------------------


class _GlobalMaxPool1d(nn.MaxPool1d):
    """Max over the whole length as a pooling *module* (so DeepLIFT's max-pool rule applies to it)."""

    def __init__(self) -> None:
        super().__init__(kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.kernel_size = self.stride = x.shape[-1]
        return super().forward(x)


class _CNNStrand(nn.Module):
    """One strand's pass of a dense-head cnn with module ReLUs and pooling (parameters shared)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv = net.conv
        self.rc_conv = net.rc_conv
        self.relu_f, self.relu_r = nn.ReLU(), nn.ReLU()
        self.max_pool = _GlobalMaxPool1d()
        self.mean_pool = net.mean_pool
        self.mlp = copy.copy(net.mlp)  # a new container of the same layers ...
        for i, layer in enumerate(self.mlp):
            if isinstance(layer, nn.ReLU):
                self.mlp[i] = nn.ReLU()  # ... with its own ReLU module (one call per forward per module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.relu_f(self.conv(x))
        if self.rc_conv:
            c = c + self.relu_r(self.conv(x.flip(1).flip(2))).flip(2)
        feat = self.max_pool(c).squeeze(2)
        if self.mean_pool:
            feat = torch.cat([feat, c.mean(dim=2)], dim=1)
        return self.mlp(feat).squeeze(1)


class DeepLiftCNN(nn.Module):
    """A dense-head cnn (or an ensemble of them) re-expressed for DeepLIFT: the same logits [B, 1]
    from one-hot [B, 4, L], every nonlinearity a module called once per forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        members = list(model.members) if hasattr(model, "members") else [model]
        self.rc_average = bool(members[0].rc_average)
        self.fwd = nn.ModuleList(_CNNStrand(m) for m in members)
        self.rev = nn.ModuleList(_CNNStrand(m) for m in members) if self.rc_average else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i, strand in enumerate(self.fwd):
            o = strand(x)
            if self.rev is not None:
                o = 0.5 * (o + self.rev[i](x.flip(1).flip(2)))
            outs.append(o)
        return torch.stack(outs).mean(0).unsqueeze(1)


def deeplift_blocker(model: nn.Module) -> str | None:
    """None when :func:`deep_lift_shap` covers ``model``, else the operation that blocks it (a phrase)."""
    members = list(model.members) if hasattr(model, "members") else [model]
    m = members[0]
    name = m.config.get("name", type(m).__name__)
    what = f"{name} ensemble of {len(members)}" if len(members) > 1 else name
    if name in ("bigru", "bigru-small", "hybrid", "hybrid-dense"):
        return (f"the {what} model's FusedBiGRU (a fused custom op: its sigmoid/tanh gates run inside one kernel, "
                "out of reach of DeepLIFT's per-module rules)")
    if m.config.get("head") == "occupancy":
        return (f"the {what} model's occupancy head (its log(1 - prod(1 - p)) pooling of per-site logits is "
                "computed by functional logsigmoid/expm1/log, which have no DeepLIFT rule)")
    if name != "cnn":
        return f"the {what} model (no DeepLIFT re-expression of it)"
    return None


def deep_lift_shap(model: nn.Module, X: np.ndarray, n_shuffles: int = 20, batch_size: int = 64, seed: int = 0,
                   progress_desc: str | None = None) -> Attributions:
    """DeepLIFT/SHAP (tangermeme) of the logit, against ``n_shuffles`` dinucleotide shuffles of each
    sequence of ``X`` [N, 4, L]; ``hypothetical`` is tangermeme's hypothetical attribution and
    ``attr = hypothetical * X``. Raises :class:`UnsupportedModel` naming the blocking operation (see
    :func:`deeplift_blocker`)."""
    blocker = deeplift_blocker(model)
    if blocker is not None:
        raise UnsupportedModel(f"DeepLIFT/SHAP cannot run through {blocker}; use --method ig (integrated gradients)")
    dls = require("tangermeme.deep_lift_shap", "--method deepliftshap (DeepLIFT/SHAP)")
    rules = require("tangermeme._deep_lift_utils", "--method deepliftshap (DeepLIFT/SHAP)")
    from bsp_fast.progress import progress

    model.eval()
    dev = _device(model)
    view = DeepLiftCNN(model).to(dev).eval()
    extra = {_GlobalMaxPool1d: rules._build_nonlinear_ops(None)[nn.MaxPool1d]}
    X = np.ascontiguousarray(X, dtype=np.float32)
    hyp = np.empty_like(X)
    ref_out = np.empty(len(X))
    chunk = max(1, batch_size // max(1, n_shuffles)) * 8
    with progress(total=len(X), desc=progress_desc or "DeepLIFT/SHAP", unit="seq", disable=progress_desc is None) as bar:
        for i in range(0, len(X), chunk):
            xb = torch.from_numpy(X[i:i + chunk])
            h, refs = dls.deep_lift_shap(view, xb, target=0, batch_size=batch_size, n_shuffles=n_shuffles,
                                         hypothetical=True, return_references=True, additional_nonlinear_ops=extra,
                                         warning_threshold=float("inf"), random_state=seed + i, device=dev,
                                         verbose=False)
            hyp[i:i + len(xb)] = h.float().cpu().numpy()
            r = refs.reshape(-1, *X.shape[1:]).to(dev)
            ref_out[i:i + len(xb)] = _outputs(view, r, 256).reshape(len(xb), -1).mean(axis=1)
            bar.update(len(xb))
    output = _outputs(view, torch.from_numpy(X).to(dev), 256)
    attr = hyp * X
    return Attributions("deepliftshap", X, attr, hyp, output, ref_out, completeness(attr, output, ref_out))
