"""k-fold cross-validation on two FASTA sequence sets (``python -m bsp_fast.cv``).

    python -m bsp_fast.cv --pos POS.fa --neg NEG.fa [--model cnn] [--folds 5] --out DIR
    python -m bsp_fast.cv --preset thesis-small --out DIR

Stratified k-fold (scikit-learn ``StratifiedKFold``, shuffled with ``--seed``): for every fold a
fresh network is trained on the other folds and scores the held-out one; a k-mer logistic
regression baseline (canonical k-mer frequencies, both strands pooled, standardised, L2 logistic
regression) is fitted and scored on exactly the same folds, so the network has to beat it to be
worth its cost. Then one network is trained on all sequences and saved as ``final.pt`` (a
bsp_fast checkpoint, ``kind: "cv-final"``, readable by ``load_checkpoint`` /
``model_from_checkpoint``; ``motifs`` and ``explain`` take it).

Sequence lengths: every sequence is centred and trimmed or N-padded to ``--length`` (default: the
longest sequence, so nothing is trimmed); see :mod:`bsp_fast.seqsets`. The model reads the whole
sequence as its region (``region = length``, ``flank = 0``) unless ``--flank`` is given.

Outputs in ``--out``: ``metrics.json`` (per fold lists ``auroc``, ``auprc``, ``recall_at_fdr10``,
``recall_at_fdr50``; ``*_mean`` and ``*_std`` (sample sd, n-1) of each; ``n_pos``, ``n_neg``;
``pooled`` metrics of all out-of-fold scores; ``baseline`` with the same keys), ``roc_pr.png``
(pooled out-of-fold curves, network and baseline), ``roc_pr_folds.png`` (the network per fold),
``predictions.tsv`` (out-of-fold scores), ``final.pt``; with ``--preset`` also the generated
``positives.fa`` and ``negatives.fa``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from bsp_fast.cli import ArgumentParser, UserError, guard
from bsp_fast.losses import binary_focal_loss_with_logits

PROG = "bsp-fast cv"
METRIC_LIST_KEYS = ("auroc", "auprc", "recall_at_fdr10", "recall_at_fdr50")

__all__ = ["train_model", "predict_logits", "kmer_features", "kmer_baseline", "cross_validate", "main",
           "save_final", "resolve_device"]


# ------------------------------------------------------------------------------------------------
# training and scoring
# ------------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]`` -> a device; UserError otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{PROG}: --device {name}: no CUDA GPU is available (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"{PROG}: --device {name!r}: expected auto, cpu or cuda[:N]") from None


def train_model(model: nn.Module, codes: np.ndarray, labels: np.ndarray, *, epochs: float = 10,
                batch_size: int = 64, lr: float = 2e-3, seed: int = 0, device: torch.device | str = "cpu",
                clip: float = 1.0, rc_augment: bool = False, max_steps: int | None = None, balance: bool = False,
                warmup: float = 0.0, focal: float = 0.0, log: Callable[[str], None] | None = None) -> nn.Module:
    """Adam (learning rate ``lr``, linearly warmed up over the first ``warmup`` fraction of the updates
    (default none), then cosine-decayed to 5 % over the rest, gradient norm clipped to
    ``clip``) + binary cross-entropy on ``codes`` uint8 [n, L], ``labels`` 0/1 [n]; shuffled each epoch.

    ``epochs`` may be fractional; ``max_steps`` caps the number of updates; ``balance`` weighs the
    positives' loss by n_neg / n_pos (both classes count equally); ``focal`` > 0 is the focal loss's gamma
    (:func:`bsp_fast.losses.binary_focal_loss_with_logits`; 0 = plain binary cross-entropy).
    Deterministic for a given ``seed`` on CPU.
    """
    device = torch.device(device)
    model.to(device).train()
    x_all = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8))
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    n = len(x_all)
    n_pos = float(y_all.sum())
    pos_weight = torch.tensor((n - n_pos) / n_pos if balance and n_pos > 0 else 1.0, device=device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = max(1, int(round(epochs * steps_per_epoch)))
    if max_steps is not None:
        total = min(total, max_steps)
    # optional linear warm-up over the first ``warmup`` fraction of the updates, then cosine decay of
    # the learning rate to 5 % over the rest (helps the last digits of auROC)
    n_warm = int(round(max(0.0, min(warmup, 0.5)) * total))

    def _factor(i: int) -> float:
        if i < n_warm:
            return (i + 1) / n_warm
        t = min(i - n_warm, total - n_warm) / max(1, total - n_warm)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, _factor)
    step = 0
    running, seen = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        while step < total:
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                if step >= total:
                    break
                idx = order[i:i + batch_size]
                xb = x_all[idx]
                if rc_augment:
                    flip = torch.rand(len(idx), generator=gen) < 0.5
                    if flip.any():
                        rc = xb[flip].flip(1)
                        xb[flip] = torch.where(rc < 4, 3 - rc, rc)
                xb = xb.to(device, non_blocking=True)
                yb = y_all[idx].to(device, non_blocking=True)
                logits = model(xb)  # [members, B] for an ensemble in training mode
                loss = binary_focal_loss_with_logits(logits, yb.expand_as(logits), focal, pos_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                sched.step()
                running += float(loss.detach()) * len(idx)
                seen += len(idx)
                step += 1
                if log is not None and (step % steps_per_epoch == 0 or step == total):
                    log(f"  step {step}/{total}: train loss {running / max(seen, 1):.4f}")
                    running, seen = 0.0, 0
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, codes: np.ndarray, batch_size: int = 512,
                   device: torch.device | str | None = None) -> np.ndarray:
    """Logits float64 [n] of ``codes`` uint8 [n, L] (model in eval mode)."""
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    out = []
    x = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8))
    for i in range(0, len(x), batch_size):
        out.append(model(x[i:i + batch_size].to(device)).float().cpu())
    return torch.cat(out).double().numpy() if out else np.zeros(0)


# ------------------------------------------------------------------------------------------------
# the k-mer baseline
# ------------------------------------------------------------------------------------------------


def kmer_features(codes: np.ndarray, k: int = 5) -> np.ndarray:
    """Canonical k-mer frequencies float32 [n, 4**k] (a k-mer and its reverse complement share a
    column; windows with an N are skipped; rows are divided by the count of valid windows)."""
    codes = np.asarray(codes, dtype=np.uint8)
    n, length = codes.shape
    feats = np.zeros((n, 4 ** k), dtype=np.float32)
    if length < k:
        return feats
    win = np.lib.stride_tricks.sliding_window_view(codes.astype(np.int64), k, axis=1)  # [n, W, k]
    valid = (win < 4).all(axis=2)
    powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    fwd = np.where(win < 4, win, 0) @ powers
    rc = np.where(win < 4, 3 - win, 0)[:, :, ::-1] @ powers
    canon = np.minimum(fwd, rc)
    rows = np.broadcast_to(np.arange(n)[:, None], canon.shape)
    np.add.at(feats, (rows[valid], canon[valid]), 1.0)
    feats /= np.maximum(valid.sum(axis=1, keepdims=True), 1)
    used = np.unique(np.minimum(np.arange(4 ** k), _rc_index(k)))
    return feats[:, used]


def _rc_index(k: int) -> np.ndarray:
    idx = np.arange(4 ** k)
    digits = (idx[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4  # [4^k, k] most significant first
    rc_digits = (3 - digits)[:, ::-1]
    return rc_digits @ (4 ** np.arange(k - 1, -1, -1))


def kmer_baseline(k: int = 5, C: float = 1.0, seed: int = 0) -> Any:
    """Standardised canonical k-mer frequencies -> L2 logistic regression (scikit-learn pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


# ------------------------------------------------------------------------------------------------
# the fold loop
# ------------------------------------------------------------------------------------------------


def _summary(per_fold: list[dict[str, Any]], labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    from bsp_fast.metrics import binary_metrics

    out: dict[str, Any] = {}
    for key in METRIC_LIST_KEYS:
        vals = [float(m[key]) for m in per_fold]
        out[key] = vals
        out[f"{key}_mean"] = float(np.mean(vals))
        out[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    out["n_pos"] = int((labels == 1).sum())
    out["n_neg"] = int((labels == 0).sum())
    out["fold_n_pos"] = [int(m["n_pos"]) for m in per_fold]
    out["fold_n_neg"] = [int(m["n_neg"]) for m in per_fold]
    out["pooled"] = binary_metrics(labels, scores)
    return out


def cross_validate(codes: np.ndarray, labels: np.ndarray, make_model: Callable[[], nn.Module], *, folds: int = 5,
                   seed: int = 0, kmer: int = 5, train_kw: dict[str, Any] | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Network and k-mer baseline on the same stratified folds -> per-fold and pooled results."""
    from sklearn.model_selection import StratifiedKFold

    from bsp_fast.metrics import binary_metrics

    train_kw = dict(train_kw or {})
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros(len(labels))
    oof_base = np.zeros(len(labels))
    fold_of = np.zeros(len(labels), dtype=np.int64)
    net_folds, base_folds = [], []
    feats = kmer_features(codes, kmer) if kmer > 0 else None
    for f, (tr, te) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        t0 = time.time()
        torch.manual_seed(seed + 1000 * (f + 1))
        model = make_model()
        train_model(model, codes[tr], labels[tr], seed=seed + f + 1, **train_kw)
        oof[te] = predict_logits(model, codes[te])
        fold_of[te] = f
        m = binary_metrics(labels[te], oof[te])
        net_folds.append(m)
        line = f"fold {f + 1}/{folds}: network auROC {m['auroc']:.4f} auPRC {m['auprc']:.4f}"
        if feats is not None:
            base = kmer_baseline(seed=seed).fit(feats[tr], labels[tr])
            oof_base[te] = base.decision_function(feats[te])
            mb = binary_metrics(labels[te], oof_base[te])
            base_folds.append(mb)
            line += f" | {kmer}-mer baseline auROC {mb['auroc']:.4f} auPRC {mb['auprc']:.4f}"
        log(line + f" ({time.time() - t0:.0f} s)")
    res = {"network": _summary(net_folds, labels, oof), "oof": oof, "fold": fold_of}
    if feats is not None:
        res["baseline"] = _summary(base_folds, labels, oof_base)
        res["oof_baseline"] = oof_base
    return res


def save_final(model: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """A bsp_fast checkpoint (format/version of bsp_fast.checkpoint) of a model trained outside train."""
    from bsp_fast.checkpoint import FORMAT, VERSION, atomic_save

    ckpt = {"format": FORMAT, "version": VERSION, "kind": "cv-final",
            "model_config": dict(model.config),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "time": time.time()}
    ckpt.update(extra or {})
    return atomic_save(ckpt, path)


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def build_parser() -> ArgumentParser:
    """The ``bsp-fast cv`` options."""
    p = ArgumentParser(prog=PROG, description="k-fold cross-validation of a network (and a k-mer logistic "
                       "regression baseline) on positive vs negative FASTA sequence sets.")
    d = p.add_argument_group("data")
    d.add_argument("--pos", help="FASTA of positive sequences (any lengths)")
    d.add_argument("--neg", help="FASTA of negative sequences (any lengths)")
    d.add_argument("--preset", choices=["thesis-small"], help="a built-in experiment instead of --pos/--neg")
    d.add_argument("--preset-size", type=int, default=None,
                   help="sequences the preset generates (thesis-small default 150000, 1 in 10 positive)")
    d.add_argument("--length", type=int, default=None,
                   help="centre-trim / N-pad every sequence to this length (default: the longest sequence)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=None, help="cnn, bigru, bigru-small or hybrid (default cnn; preset: bigru-small)")
    m.add_argument("--kernel-size", type=int, help="first convolution's width (cnn 24, hybrid 19)")
    m.add_argument("--filters", type=int, help="first convolution's kernels (default 64)")
    m.add_argument("--hidden-size", type=int, help="GRU hidden size (bigru 128, bigru-small 32, hybrid 64)")
    m.add_argument("--dense", type=int, help="dense layer width (cnn 32, hybrid 64)")
    m.add_argument("--dropout", type=float, help="drop probability (default 0.1)")
    m.add_argument("--members", type=int,
                   help="an ensemble of this many models, trained side by side (default 1; preset: 3)")
    m.add_argument("--flank", type=int, default=None,
                   help="bases at each end read only as context (default 0: the whole sequence is the region)")
    t = p.add_argument_group("training")
    t.add_argument("--folds", type=int, default=None, help="cross-validation folds (default 5)")
    t.add_argument("--epochs", type=float, default=None, help="training epochs per fold (default 10)")
    t.add_argument("--batch-size", type=int, default=None, help="default 64")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 2e-3)")
    t.add_argument("--warmup", type=float, default=None,
                   help="fraction of the updates with a linear learning-rate warm-up (default 0; preset: its own)")
    t.add_argument("--rc-augment", action="store_true", help="random reverse-complement flips while training")
    t.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                   help="weigh the positives' loss by n_neg / n_pos (default off)")
    t.add_argument("--focal", type=float, default=None, metavar="GAMMA",
                   help="focal loss with this gamma: less weight on examples the model already gets right, so "
                        "rare binding-site variants keep driving training (default 0 = cross-entropy; 2 for "
                        "--preset thesis-small)")
    t.add_argument("--kmer", type=int, default=5, help="k of the k-mer baseline (default 5; 0 = no baseline)")
    t.add_argument("--no-final", action="store_true", help="do not train the final model on all sequences")
    o = p.add_argument_group("run")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    o.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    o.add_argument("--out", required=True, help="output directory")
    o.add_argument("--quiet", action="store_true", help="only the summary")
    return p


def _load_sets(args) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any], int | None]:
    from bsp_fast.seqsets import SeqSetError, default_length, read_fasta_set, to_codes

    if args.preset:
        if args.pos or args.neg:
            raise UserError(f"{PROG}: --preset generates its own sequences; give either --preset or --pos/--neg")
        from bsp_fast.presets import PRESETS, thesis_small

        pre = PRESETS[args.preset]
        data = dict(pre.data)
        if args.preset_size is not None:
            if args.preset_size < 20:
                raise UserError(f"{PROG}: --preset-size must be >= 20, got {args.preset_size}")
            data["n"] = args.preset_size
        pos, neg, _ = thesis_small(seed=args.seed, **data)
        codes = np.concatenate([pos, neg])
        labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
        names = [f"pos{i}" for i in range(len(pos))] + [f"neg{i}" for i in range(len(neg))]
        return codes, labels, names, {"preset": args.preset, **data}, data["flank"]
    if not args.pos or not args.neg:
        raise UserError(f"{PROG}: give --pos POS.fa and --neg NEG.fa (FASTA sequence sets), or --preset thesis-small")
    try:
        pos = read_fasta_set(args.pos, "--pos")
        neg = read_fasta_set(args.neg, "--neg")
    except SeqSetError as exc:
        raise UserError(f"{PROG}: {exc}") from None
    length = args.length if args.length is not None else default_length(pos, neg)
    if length < 1:
        raise UserError(f"{PROG}: --length must be >= 1, got {length}")
    codes = np.concatenate([to_codes(pos.seqs, length), to_codes(neg.seqs, length)])
    labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    info = {"pos": str(args.pos), "neg": str(args.neg), "length": int(length),
            "pos_lengths": [int(pos.lengths.min()), int(pos.lengths.max())],
            "neg_lengths": [int(neg.lengths.min()), int(neg.lengths.max())],
            "trimmed": int((pos.lengths > length).sum() + (neg.lengths > length).sum()),
            "padded": int((pos.lengths < length).sum() + (neg.lengths < length).sum())}
    return codes, labels, pos.names + neg.names, info, None


def _model_factory(args, length: int, preset_flank: int | None) -> tuple[str, dict[str, Any], Callable[[], nn.Module]]:
    from bsp_fast.models import build_model

    name = args.model or ("bigru-small" if args.preset else "cnn")
    flank = args.flank if args.flank is not None else (preset_flank or 0)
    if flank < 0 or length - 2 * flank < 1:
        raise UserError(f"{PROG}: --flank {flank} leaves no region in {length} bp sequences")
    opts: dict[str, Any] = {}
    if args.preset:
        from bsp_fast.presets import PRESETS

        pre = PRESETS[args.preset]
        if name == pre.model:  # the preset's architecture, unless --model replaces it
            opts.update({k: v for k, v in pre.model_options.items() if k not in ("region", "flank")})
    opts.update({"region": length - 2 * flank, "flank": flank})
    for flag, key in (("kernel_size", "kernel_size"), ("filters", "filters"), ("hidden_size", "hidden"),
                      ("dense", "dense"), ("dropout", "dropout"), ("members", "members")):
        v = getattr(args, flag)
        if v is not None:
            opts[key] = v
    try:
        probe = build_model(name, **opts)
    except ValueError as exc:
        msg = str(exc)
        for key, flag in (("kernel_size", "--kernel-size"), ("filters", "--filters"), ("hidden", "--hidden-size"),
                          ("dense", "--dense")):
            if f"'{key}'" in msg and "no option" in msg:
                raise UserError(f"{PROG}: {flag} does not apply to model {name!r}") from None
        raise UserError(f"{PROG}: {msg}") from None
    min_len = probe.min_length() if hasattr(probe, "min_length") else 1
    if length < min_len:
        raise UserError(f"{PROG}: sequences of {length} bp are shorter than model {name!r} needs ({min_len} bp); "
                        f"use --length or a smaller --kernel-size")
    return name, opts, lambda: build_model(name, **opts)


def _write_sets(out: Path, codes: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    """``positives.fa`` and ``negatives.fa`` of a preset's generated sequences."""
    from bsp_fast.seqsets import write_fasta

    for value, fname in ((1, "positives.fa"), (0, "negatives.fa")):
        idx = np.flatnonzero(labels == value)
        write_fasta(out / fname, [names[i] for i in idx], codes[idx])


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    t_start = time.time()
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    from bsp_fast.presets import PRESETS

    pre = PRESETS.get(args.preset) if args.preset else None
    folds = args.folds if args.folds is not None else (pre.train["folds"] if pre else 5)
    epochs = args.epochs if args.epochs is not None else (pre.train["epochs"] if pre else 10)
    batch_size = args.batch_size if args.batch_size is not None else (pre.train["batch_size"] if pre else 64)
    lr = args.lr if args.lr is not None else (pre.train["lr"] if pre else 2e-3)
    warmup = args.warmup if args.warmup is not None else (pre.train.get("warmup", 0.0) if pre else 0.0)
    balance = args.balance if args.balance is not None else bool(pre.train.get("balance", False) if pre else False)
    focal = args.focal if args.focal is not None else float(pre.train.get("focal", 0.0) if pre else 0.0)
    if not 0.0 <= focal <= 10.0:
        raise UserError(f"{PROG}: --focal must be in 0..10, got {focal:g}")
    if not 0.0 <= warmup <= 0.5:
        raise UserError(f"{PROG}: --warmup must be in 0..0.5, got {warmup}")
    if folds < 2:
        raise UserError(f"{PROG}: --folds must be >= 2, got {folds}")
    if epochs <= 0 or batch_size < 1 or lr <= 0:
        raise UserError(f"{PROG}: --epochs, --batch-size and --lr must be positive")
    if args.kmer < 0 or args.kmer > 8:
        raise UserError(f"{PROG}: --kmer must be in 0..8, got {args.kmer}")

    codes, labels, names, data_info, preset_flank = _load_sets(args)
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    if n_pos < folds or n_neg < folds:
        which = (f"--pos {args.pos}" if n_pos < folds else f"--neg {args.neg}") if not args.preset else "the preset"
        raise UserError(f"{PROG}: {which} has {min(n_pos, n_neg)} sequence(s), fewer than --folds {folds} "
                        f"(each fold needs at least one of each class)")
    length = codes.shape[1]
    name, opts, make_model = _model_factory(args, length, preset_flank)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{PROG}: --out {out}: cannot create the directory ({exc.strerror})") from None
    train_kw = dict(epochs=epochs, batch_size=batch_size, lr=lr, device=device, rc_augment=args.rc_augment,
                    balance=balance, warmup=warmup, focal=focal)
    log(f"{n_pos} positive and {n_neg} negative sequences of {length} bp; model {name} {opts}; "
        f"{folds}-fold CV, {epochs:g} epochs, batch {batch_size}, lr {lr:g}, device {device}")
    res = cross_validate(codes, labels, make_model, folds=folds, seed=args.seed, kmer=args.kmer,
                         train_kw=train_kw, log=log)
    net = res["network"]
    metrics: dict[str, Any] = {k: v for k, v in net.items()}
    metrics.update({"model": name, "folds": folds, "seed": args.seed, "length": length, "data": data_info,
                    "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup": warmup,
                                 "rc_augment": bool(args.rc_augment), "balance": balance, "focal": focal,
                                 "device": str(device)},
                    "std": "sample standard deviation over folds (ddof=1)"})
    if "baseline" in res:
        metrics["baseline"] = {"name": f"{args.kmer}-mer logistic regression (canonical k-mer frequencies, "
                                       f"standardised, L2, C=1)", **res["baseline"]}
    if pre:
        metrics["target"] = dict(pre.target)
        metrics["target_met"] = bool(net["auroc_mean"] >= pre.target["auroc"] and net["auprc_mean"] >= pre.target["auprc"])

    from bsp_fast.plots import plot_roc_pr

    curves = {f"{name} (out-of-fold)": (labels, res["oof"])}
    if "oof_baseline" in res:
        curves[f"{args.kmer}-mer logistic regression"] = (labels, res["oof_baseline"])
    plot_roc_pr(curves, out / "roc_pr.png", title=f"{folds}-fold cross-validation, pooled out-of-fold scores")
    fold_curves = {f"fold {f + 1}": (labels[res["fold"] == f], res["oof"][res["fold"] == f]) for f in range(folds)}
    plot_roc_pr(fold_curves, out / "roc_pr_folds.png", title=f"{name}: each fold")
    with open(out / "predictions.tsv", "w") as fh:
        fh.write("name\tlabel\tfold\tlogit" + ("\tbaseline" if "oof_baseline" in res else "") + "\n")
        for i in range(len(labels)):
            fh.write(f"{names[i]}\t{labels[i]}\t{res['fold'][i] + 1}\t{res['oof'][i]:.6g}"
                     + (f"\t{res['oof_baseline'][i]:.6g}" if "oof_baseline" in res else "") + "\n")

    if args.preset:  # the generated sets, for motifs/explain --fasta and for other tools
        _write_sets(out, codes, labels, names)
    if not args.no_final:
        t0 = time.time()
        torch.manual_seed(args.seed)
        final = make_model()
        train_model(final, codes, labels, seed=args.seed, **train_kw)
        save_final(final, out / "final.pt", {
            "config": {"command": "cv", "epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup": warmup,
                       "seed": args.seed, "balance": balance, "focal": focal,
                       "rc_augment": bool(args.rc_augment)},
            "data": data_info, "length": length,
            "cv": {k: metrics[k] for k in ("auroc_mean", "auroc_std", "auprc_mean", "auprc_std")}})
        log(f"final model trained on all {len(labels)} sequences ({time.time() - t0:.0f} s): {out / 'final.pt'}")
    metrics["seconds"] = round(time.time() - t_start, 1)
    from bsp_fast.checkpoint import atomic_write_text

    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    line = (f"{name}: auROC {net['auroc_mean']:.4f} +- {net['auroc_std']:.4f}, "
            f"auPRC {net['auprc_mean']:.4f} +- {net['auprc_std']:.4f}")
    if "baseline" in res:
        b = res["baseline"]
        line += (f" | {args.kmer}-mer baseline: auROC {b['auroc_mean']:.4f} +- {b['auroc_std']:.4f}, "
                 f"auPRC {b['auprc_mean']:.4f} +- {b['auprc_std']:.4f}")
    if pre:
        line += f" | target auROC >= {pre.target['auroc']} / auPRC >= {pre.target['auprc']}: " \
                + ("met" if metrics["target_met"] else "NOT met")
    print(line)
    print(f"wrote {out}/metrics.json, roc_pr.png, roc_pr_folds.png, predictions.tsv"
          + (", positives.fa, negatives.fa" if args.preset else "") + ("" if args.no_final else ", final.pt"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``bsp-fast cv``: exit status 0, or 2 with one line on stderr for a user's mistake."""
    threads = torch.get_num_threads()
    try:
        return guard(PROG, lambda: _main(argv))
    finally:  # --threads must not outlive an in-process call (tests, notebooks)
        torch.set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
