"""``python -m bsp_fast.train``: genome-wide training with honest evaluation (also ``bsp-fast train``).

With no arguments: trains the default model (``hybrid``: conv -> pool -> FusedBiGRU -> per-position
site logits pooled the way bins are labelled, on 100 + 200 + 100 bp; an ensemble of 5) on the
built-in synthetic genome (generated on first use, its cache directory is
printed) within a 10-minute budget on a 2-core CPU, and scores every bin of the test chromosomes.
The weights validated, saved in ``best.pt`` and tested are an exponential moving average (``--ema``).

Real data::

    python -m bsp_fast.train --genome hg19.fa --labels GABPA.train.labels.tsv.gz --cell H1-hESC \\
        --model bigru --steps 200000 --out runs/gabpa

Data parallel: ``torchrun --nproc_per_node N -m bsp_fast.train ...`` (nccl on GPUs, gloo on CPU):
the sampler is sharded by rank, rank 0 logs and checkpoints, evaluation is gathered.

Writes into ``--out``: ``metrics.json``, ``history.jsonl``, ``checkpoint.pt`` (latest: model,
optimizer, sampler, RNG states, config), ``best.pt`` (best validation auPRC), ``loss.png``,
``valid.png``, ``roc_pr.png``. ``--resume`` continues from ``checkpoint.pt`` exactly (batches,
dropout masks and optimizer state as if never stopped). Ctrl-C saves a checkpoint; a NaN loss stops
with a message and the last good checkpoint left as it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bsp_fast.checkpoint import (CheckpointError, atomic_save, atomic_write_text, capture_rng, load_checkpoint,
                                 restore_rng)
from bsp_fast.cli import ArgumentParser, UserError, guard
from bsp_fast import distributed as D
from bsp_fast.models import HEADS

PROG = "bsp-fast train"
DEFAULT_MODEL = "hybrid-dense"
# `--model hybrid` (the windowed default before hybrid-dense): the occupancy head with 100 bp flanks,
# and an ensemble of 5 on the built-in data, unless --head / --flank / --members say otherwise
HYBRID_OPTIONS = dict(head="occupancy", flank=100)
BIN_SIZE = 200

# The default run (no data flags): an ensemble of 2 hybrid-dense trained side by side on stretches of
# 40 bins (16 per batch, every bin of the training chromosomes once per epoch, ~7.7 epochs in 1500
# steps; bound bins weigh as in 10:1 balanced batches), scored densely. One member reached 0.957 /
# 0.922 / 0.943x the oracle's test auPRC (seeds 0-2), two 0.946 / 0.946 / 0.935 (README), at half
# the scoring speed. max_minutes caps it on slower machines (the learning rate then decays with the
# clock).
BUILTIN_DENSE_DEFAULTS = dict(steps=1500, max_minutes=3.0, batch_size=16, bins_per_stretch=40, lr=3e-3,
                              negatives_per_positive=10.0, ema=0.998, members=2, eval_every=500)
# windowed models on the built-in data (`--model hybrid` is the earlier default run: 5 members, test
# auPRC 0.702 / 0.703 for seeds 0 / 1, 0.94x the oracle's, in 4.5-5.5 min scoring 300-500 bins/s)
BUILTIN_DEFAULTS = dict(steps=1500, max_minutes=7.0, batch_size=64, lr=3e-3, negatives_per_positive=10.0, jitter=10,
                        ema=0.998, members=5, eval_every=500)
REAL_DEFAULTS = dict(steps=None, max_minutes=None, batch_size=64, lr=1e-3, negatives_per_positive=1.0, ema=0.999)
# The recipe for real data with the default model (no --steps / --epochs): the built-in run's
# ensemble, strand flips and schedule, stretches shifted by up to +-10 bp, with the run's length from the data: every bin (so every
# training positive) seen `epochs` times, at least `min_steps`, within `max_minutes` (the cosine
# decay follows the clock where that comes first); validation `evals` times per run (and at least
# every budget / `evals` of the clock), stopping once `patience` validations in a row have not
# improved on the best (the best-validated weights are what is tested). Dropout 0.3 (the model's
# default is 0.1): with a few hundred training positives validation loss rose from epoch 5-7 on
# 4 of the 5 panel genomes; 0.3 lifted all five (foxa-humanX 0.328 -> 0.348, hnf4-yeast 0.799 ->
# 0.808; 0.5: 0.348 / 0.798; AdamW weight decay 0.05 instead: 0.326 / 0.790, so it stays off;
# benchmarks/results/2026-12-02-panel-dropout.md). Not with --init-motifs (see build_run_model).
# 16 epochs: 32 rescued rest-pfalciparum plain (0.402 -> 0.660 in one pair of runs; 16 gave 0.639 and
# 0.649 before) but sank foxa-humanX (0.377 -> 0.338) and max-bjaponicum (0.555 -> 0.539), and the
# plateau schedule did no better (benchmarks/results/2026-12-06-panel-32epochs.md, -panel-plateau.md).
REAL_DENSE_DEFAULTS = dict(steps=None, epochs=16.0, min_steps=3000, max_minutes=15.0, batch_size=16, bins_per_stretch=40,
                           lr=3e-3, negatives_per_positive=10.0, ema=0.998, members=2, evals=20, patience=6, jitter=10,
                           dropout=0.3)


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0],
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    d = p.add_argument_group("data (none: the built-in synthetic data set)")
    d.add_argument("--genome", help="genome FASTA (plain/gzip/bgzip)")
    d.add_argument("--labels", help="ENCODE-DREAM label file <TF>.train.labels.tsv[.gz]")
    d.add_argument("--cell", help="cell column of --labels (e.g. H1-hESC)")
    d.add_argument("--peaks", help="BED/narrowPeak of bound regions (instead of --labels): 200/50 bins, "
                   "bound when peaks cover >= half the bin")
    d.add_argument("--test-chroms", default=None, help="comma-separated (default chr1,chr8,chr21)")
    d.add_argument("--valid-chroms", default=None, help="comma-separated (default chr11)")
    d.add_argument("--cache-dir", help="cache for the encoded genome / built-in data set")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=None,
                   help=f"bigru, bigru-small, cnn, hybrid or hybrid-dense (default {DEFAULT_MODEL}: scores every bin "
                        "of a stretch in one pass, trained on stretches)")
    m.add_argument("--region", type=int, help="bp scored per sample (default: model's, bigru 200, bigru-small 40)")
    m.add_argument("--flank", type=int, help="bp read on each side of the region (bigru 100, bigru-small 20, "
                   "hybrid 50; the default model: 100)")
    m.add_argument("--hidden", type=int, help="GRU hidden size (bigru 128, bigru-small 32, hybrid 64)")
    m.add_argument("--filters", type=int, help="convolution filters (cnn 64, hybrid 32)")
    m.add_argument("--kernel-size", type=int, help="convolution width in bp (cnn 24, hybrid 19)")
    m.add_argument("--head", choices=HEADS, default=None,
                   help="cnn, hybrid: 'occupancy' scores every position as a binding site and pools them "
                        "the way bins are labelled (bound: a site in the bin's middle half; unbound: none in "
                        "the bin); 'dense' pools features into a dense layer (default: occupancy for the "
                        "default model hybrid, dense for cnn)")
    m.add_argument("--center-max", action="store_true", default=None,
                   help="hybrid: also pool each filter's best match over the middle half of the region")
    m.add_argument("--members", type=int,
                   help="train an ensemble of this many models side by side, averaged at evaluation "
                        "(default 1; on the built-in data 2 for the default model, 5 for --model hybrid)")
    m.add_argument("--dropout", type=float, help="drop probability (default 0.1; the default model on real data without --init-motifs 0.3)")
    m.add_argument("--init-motifs", metavar="FILE",
                   help="JASPAR or MEME file: the first filters start as these motifs (both strands), the rest "
                        "random; the filter width grows to the longest motif (cnn, hybrid, hybrid-dense)")
    m.add_argument("--freeze-motifs", action="store_true",
                   help="with --init-motifs: keep the motif filters as given in training (default: they train too)")
    m.add_argument("--rc-average", action="store_true",
                   help="at evaluation average the scores of both strands (reverse complement)")
    t = p.add_argument_group("training")
    t.add_argument("--negatives-per-positive", type=float, default=None,
                   help="windowed models: unbound bins drawn per bound bin each epoch (default 1; built-in data 10); "
                        "dense models: bound bins weigh as in batches of this ratio (default 10)")
    t.add_argument("--batch-size", type=int, default=None, help="per process: windows (default 64) or, for dense models, stretches (default 16)")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3; built-in 3e-3)")
    t.add_argument("--weight-decay", type=float, default=None,
                   help="decoupled (AdamW) weight decay of the weight matrices, not biases (default 0: plain Adam)")
    t.add_argument("--lr-schedule", choices=("cosine", "constant", "plateau"), default=None,
                   help="cosine: decay to 5%% of --lr over the run's steps (default when the step count is "
                        "known); constant otherwise; plateau: constant until validation stops improving "
                        f"({PLATEAU_EVALS} validations without a new best, or {PLATEAU_LATE:.0%} of the steps or "
                        "the time budget), then the cosine decay over a third of the steps so far, then stop")
    t.add_argument("--ema", type=float, default=None,
                   help="decay of an exponential moving average of the weights, which is what is validated, "
                        "saved in best.pt and tested (default 0.999; 0 = off)")
    t.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping (default 1.0; 0 = off)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=float, help="training epochs (one epoch = every positive once; dense models: every bin once)")
    g.add_argument("--steps", type=int, help="training steps (built-in default 1500)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="training time budget in minutes, summed over resumes (built-in default 3; 7 for windowed models)")
    t.add_argument("--no-rc-augment", action="store_true", help="no random reverse-complement strand flips")
    t.add_argument("--bins-per-stretch", type=int, default=None,
                   help="dense models (hybrid-dense): consecutive bins per training stretch (default 40)")
    t.add_argument("--jitter", type=int, default=None,
                   help="random shift of the sequence read by up to +-N bp, labels kept (default 0; windowed models on "
                        "the built-in data 10; the default model on real data 10)")
    t.add_argument("--eval-every", type=int, default=None,
                   help="validate every N steps (default: 10 times per run)")
    t.add_argument("--patience", type=int, default=None,
                   help="stop after N validations in a row without a new best (default 6 for the real-data "
                        "recipe, none otherwise; 0 = never)")
    t.add_argument("--extend", type=int, default=None,
                   help="cosine runs: up to N more cycles of the same length, the rate restarted, while validation "
                        f"is still rising at the end of one (its best up {EXTEND_RISE:.0%} over the last 3 validations, "
                        f"{EXTEND_TIME_LEFT:.0%} of --max-minutes left; default 0)")
    t.add_argument("--valid-max-bins", type=int, default=200_000,
                   help="validate on a fixed uniform subset of at most N bins (prevalence kept; 0 = all)")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0, help="also checkpoint every N minutes")
    t.add_argument("--eval-batch-size", type=int, default=256)
    o = p.add_argument_group("run")
    o.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    o.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--out", default=None, help="output directory (default runs/<model>-<time>)")
    o.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    o.add_argument("--overwrite", action="store_true", help="allow writing into an --out that holds a run")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


# --------------------------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is available here (expected auto, cpu or cuda on a GPU machine)")
        return torch.device(name)
    raise UserError(f"--device {name!r}: expected auto, cpu or cuda")


class Data:
    """Genome, labels, split, the paths, and the oracle of the built-in data set (if any)."""

    def __init__(self, args: Any, log) -> None:
        from bsp_fast.data import Genome
        from bsp_fast.data.labels import labels_from_peaks, read_dream_labels
        from bsp_fast.data.sampler import ChromSplit

        self.builtin = None
        self.oracle = None
        if args.genome is None:
            if args.labels or args.peaks or args.cell:
                raise UserError("--labels/--peaks/--cell need --genome FA (or give no data flags for the built-in set)")
            from bsp_fast.data.synthetic import ensure_builtin

            b = ensure_builtin(args.cache_dir) if args.cache_dir else ensure_builtin()
            self.builtin = b
            log(f"built-in synthetic data set: {Path(b.fasta).parent}")
            fasta, labels_path, cell, peaks = b.fasta, b.labels, b.cell, None
        else:
            fasta, labels_path, cell, peaks = args.genome, args.labels, args.cell, args.peaks
            if (labels_path is None) == (peaks is None):
                raise UserError("give exactly one of --labels TSV (with --cell) or --peaks BED along with --genome")
        self.paths = {"genome": str(Path(fasta).resolve())}
        try:
            self.genome = Genome(fasta, cache_dir=args.cache_dir)
        except (ValueError, OSError) as exc:
            raise UserError(f"--genome {fasta}: {_one_line(exc)}") from None
        try:
            if labels_path is not None:
                self.paths["labels"] = str(Path(labels_path).resolve())
                self.labels = read_dream_labels(labels_path, cell, genome=self.genome)
            else:
                self.paths["peaks"] = str(Path(peaks).resolve())
                self.labels = labels_from_peaks(peaks, self.genome)
        except (ValueError, OSError, KeyError) as exc:
            flag = "--labels" if labels_path is not None else "--peaks"
            if "cell" in str(exc):
                flag = f"--cell {cell}"
            raise UserError(f"{flag}: {_one_line(exc)}") from None
        self.cell = getattr(self.labels, "cell", cell)
        test = _csv(args.test_chroms) or ("chr1", "chr8", "chr21")
        valid = _csv(args.valid_chroms) or ("chr11",)
        if self.builtin is not None and args.test_chroms is None:
            test = tuple(getattr(self.builtin, "test_chroms", test))
        if self.builtin is not None and args.valid_chroms is None:
            valid = tuple(getattr(self.builtin, "valid_chroms", valid))
        genome_names = [c[0] for c in self.genome.chromosomes]
        for flag, group in (("--test-chroms", test), ("--valid-chroms", valid)):
            missing = [c for c in group if c not in genome_names]
            if missing:
                raise UserError(f"{flag}: chromosome(s) {', '.join(missing)} not in the genome {fasta} "
                                f"(it has {_short(genome_names)})")
            unlabelled = [c for c in group if c not in self.labels.tracks]
            if unlabelled:
                raise UserError(f"{flag}: chromosome(s) {', '.join(unlabelled)} have no labels in "
                                f"{labels_path or peaks} (labelled: {_short(list(self.labels.tracks))})")
        try:
            self.train_chroms, self.valid_chroms, self.test_chroms = ChromSplit(test=test, valid=valid).resolve(self.labels)
        except ValueError as exc:
            raise UserError(f"--test-chroms/--valid-chroms: {_one_line(exc)}") from None
        self.bin_size = int(getattr(self.labels, "bin_size", BIN_SIZE))

    def oracle_scores(self, es: "EvalSet") -> np.ndarray | None:
        """The built-in data set's oracle log-odds for the bins of ``es`` (matched by chromosome and
        start), or None without an oracle."""
        if self.builtin is None:
            return None
        try:
            from bsp_fast.data.synthetic import read_oracle

            table = read_oracle(self.builtin.oracle)
            names = [c[0] for c in self.genome.chromosomes]
            out = np.empty(len(es), dtype=np.float64)
            for cid in np.unique(es.ids):
                sel = np.flatnonzero(es.ids == cid)
                o_starts, _, o_scores = table[names[cid]]
                idx = np.searchsorted(o_starts, es.starts[sel])
                idx = np.minimum(idx, o_starts.size - 1)
                if not np.array_equal(o_starts[idx], es.starts[sel]):
                    raise ValueError(f"oracle bins of {names[cid]} do not match the labels")
                out[sel] = o_scores[idx]
            return out
        except Exception as exc:  # the oracle is a bonus, never a failure
            print(f"{PROG}: note: oracle scores unavailable ({_one_line(exc)})", file=sys.stderr)
            return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg.strip("'\"") if isinstance(exc, KeyError) else msg


def _short(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def model_options(args: Any) -> dict[str, Any]:
    opts = {"region": args.region, "flank": args.flank, "hidden": args.hidden, "dropout": args.dropout,
            "filters": args.filters, "kernel_size": args.kernel_size, "members": args.members,
            "center_max": args.center_max, "head": args.head}
    if args.rc_average:
        opts["rc_average"] = True
    return {k: v for k, v in opts.items() if v is not None}


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


class EvalSet:
    """Bins to score (chrom ids in the genome, bin starts, labels), optionally a fixed subset."""

    def __init__(self, data: Data, chroms: Sequence[str], max_bins: int = 0, seed: int = 0) -> None:
        from bsp_fast.data.sampler import eval_bins

        eb = eval_bins(data.labels, chroms, 4096, chrom_order=data.genome)
        ids, starts = eb.positions()
        labels = eb.labels()
        self.n_total = int(labels.size)
        if max_bins and labels.size > max_bins:
            keep = np.sort(np.random.default_rng([seed, 0xE7A1]).choice(labels.size, size=max_bins, replace=False))
            ids, starts, labels = ids[keep], starts[keep], labels[keep]
        self.chroms = tuple(chroms)
        self.ids, self.starts, self.labels = ids, starts, labels.astype(np.int8)

    def __len__(self) -> int:
        return int(self.labels.size)


def evaluate_model(model: torch.nn.Module, data: Data, es: EvalSet, device: torch.device,
                   batch_size: int, dist_info: D.DistInfo, autocast: bool, desc: str = "",
                   show: bool = True) -> np.ndarray:
    """Scores of every bin of ``es`` (each rank scores a round-robin shard; gathered on all ranks)."""
    from bsp_fast.dense import is_dense
    from bsp_fast.loader import score_windows
    from bsp_fast.models import seq_len, window_offset

    if is_dense(model):
        return _evaluate_dense(model, data, es, device, dist_info, autocast, desc, show)
    mcfg = model.config
    length, offset = seq_len(mcfg), window_offset(mcfg, data.bin_size)
    r, w = dist_info.rank, dist_info.world_size
    ids, starts = es.ids[r::w], es.starts[r::w] + offset
    bar = _bar(total=len(ids), desc=desc, disable=not show or not dist_info.is_main, unit="bin", leave=False)
    try:
        scores = score_windows(model, data.genome, ids, starts, length, batch_size, device, autocast,
                               progress=bar.update)
    finally:
        bar.close()
    return D.gather_sharded(scores, dist_info)


def _evaluate_dense(model: torch.nn.Module, data: Data, es: EvalSet, device: torch.device, dist_info: D.DistInfo,
                    autocast: bool, desc: str, show: bool) -> np.ndarray:
    """Scores of the bins of ``es`` from dense passes over their chromosomes' bin grids (each rank
    scores a round-robin share of the stretches; gathered on all ranks)."""
    from bsp_fast.data.stretches import grid_labels
    from bsp_fast.dense import score_grid

    names = [c for c, _ in data.genome.chromosomes]
    out = np.empty(len(es), dtype=np.float32)
    cids = [int(c) for c in dict.fromkeys(es.ids.tolist())]
    total = sum(grid_labels(data.labels.tracks[names[c]], data.labels.step)[1].size for c in cids)
    bar = _bar(total=total, desc=desc, disable=not show or not dist_info.is_main, unit="bin", leave=False)
    try:
        for cid in cids:
            s0, grid = grid_labels(data.labels.tracks[names[cid]], data.labels.step)
            tiles = score_grid(model, data.genome, cid, s0, grid.size, device=device, autocast=autocast,
                               tiles=slice(dist_info.rank, None, dist_info.world_size),
                               progress=lambda m: bar.update(m * dist_info.world_size))
            logits = D.gather_sharded(tiles, dist_info).reshape(-1)[:grid.size]
            sel = np.flatnonzero(es.ids == cid)
            out[sel] = logits[(es.starts[sel] - s0) // data.labels.step]
    finally:
        bar.close()
    return (1.0 / (1.0 + np.exp(-out.astype(np.float64)))).astype(np.float32)


def _bar(**kw):
    # tqdm on a terminal; plain lines every ~30 s / 10 % in a log (bsp_fast.progress)
    from bsp_fast.progress import progress

    return progress(file=sys.stderr, **kw)


def stretch_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float) -> tuple[torch.Tensor, int]:
    """Weighted BCE over every labelled bin of a batch of stretches, and the number of such bins.

    ``logits`` [B, n] (or [members, B, n]: the mean of the members' own losses), ``labels`` [B, n]
    1 / 0 / -1 (ambiguous or outside the grid: masked out); bound bins weigh ``pos_weight``.
    """
    mask = labels >= 0
    y = labels.clamp(min=0)
    w = torch.where(y > 0, float(pos_weight), 1.0) * mask
    per = F.binary_cross_entropy_with_logits(logits.float(), y.expand_as(logits), reduction="none")
    members = logits.shape[0] if logits.dim() == 3 else 1
    n = int(mask.sum())
    return (per * w).sum() / (w.sum().clamp(min=1.0) * members), n


def _bce(labels: np.ndarray, scores: np.ndarray) -> float:
    p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    y = labels.astype(np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


class NonFiniteLoss(RuntimeError):
    pass


def _history_truncate(path: Path, step: int) -> None:
    """Drop history lines written after ``step`` (they belong to the part of the run that is redone)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                keep.append(line)
        except (ValueError, AttributeError):
            continue
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def main(argv: Sequence[str] | None = None) -> int:
    return guard(PROG, lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    device = resolve_device(args.device)
    dist_info = D.setup(device.type)
    try:
        rc = _run(args, device, dist_info)
        # ranks > 0 are done after the test gather while rank 0 still writes the outputs: leave
        # together, so that no rank tears its process group down under a peer that still holds it
        D.barrier(dist_info)
        return rc
    finally:
        D.teardown(dist_info)


def _logger(dist_info: D.DistInfo) -> Callable[[str], None]:
    """``log(msg)``: a ``bsp-fast train: msg`` line on stderr, on the main rank only."""
    def log(msg: str) -> None:
        if dist_info.is_main:
            print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    return log


def _write_history(path: Path, rec: dict[str, Any], dist_info: D.DistInfo) -> None:
    """Append one line to ``history.jsonl`` (main rank only)."""
    if dist_info.is_main:
        with open(path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


# ---- the run's settings -----------------------------------------------------------------------


# the plateau schedule: decay once this many validations in a row bring no new best, or once this
# share of the steps or of the time budget is gone
PLATEAU_EVALS = 3
PLATEAU_LATE = 0.8
# --extend: another cosine cycle only while validation still rises this much (its best over the last
# 3 validations, relative), and with at least this share of the time budget left
EXTEND_RISE = 0.05
EXTEND_TIME_LEFT = 0.25


@dataclass(frozen=True)
class LrDecay:
    """A decay of the learning rate that the loop started: where (step, training seconds) and how many
    steps it lasts. The plateau schedule's decay, or a cosine cycle added by ``--extend``."""

    start_step: int
    start_s: float
    steps: int

    def to_json(self) -> list:
        return [self.start_step, self.start_s, self.steps]

    @classmethod
    def from_json(cls, v: list | None) -> "LrDecay | None":
        return None if v is None else cls(int(v[0]), float(v[1]), int(v[2]))


@dataclass(frozen=True)
class RunConfig:
    """Every resolved setting of a run (flags, else the checkpoint's when resuming, else the defaults
    for the model and data), validated once by :func:`resolve_config`. ``to_json()`` is the ``config``
    recorded in checkpoints and ``metrics.json``."""

    model_name: str
    model_config: dict[str, Any]
    batch_size: int
    lr: float
    weight_decay: float  # decoupled, on weight matrices only (0: plain Adam)
    negatives_per_positive: float
    clip: float
    lr_schedule: str
    total_steps: int | None  # None: the time budget only
    max_minutes: float | None
    eval_every: int | None  # None: time-based (eval_every_s), or no validation cadence at all
    eval_every_s: float | None
    ema: float  # 0: off
    frozen_motif_filters: int  # first filters kept as --init-motifs set them (0: none)
    patience: int | None  # stop after this many validations in a row without a new best (None: never)
    extend: int  # cosine cycles that may be added while validation still rises at the end of one (0: none)
    seed: int
    device: str
    world_size: int
    rc_augment: bool
    jitter: int
    test_chroms: tuple[str, ...]
    valid_chroms: tuple[str, ...]
    train_chroms: tuple[str, ...]
    cell: Any
    bin_size: int
    window_length: int
    window_offset: int
    dense: bool
    bins_per_stretch: int
    positive_weight: float
    valid_max_bins: int
    builtin: bool
    checkpoint_minutes: float
    eval_batch_size: int
    out: Path
    resumed: bool
    show_progress: bool  # main rank and not --no-progress

    def lr_at(self, k: int, elapsed_s: float | None = None, decay: "LrDecay | None" = None) -> float:
        """Learning rate of step ``k`` (0-based): cosine decay to 5 % of ``lr`` over ``total_steps``.

        With a time budget too (``max_minutes``), the decay follows whichever runs out first, steps or
        time (``elapsed_s``): a run cut by the clock on a slow machine still ends at the low rate
        instead of mid-schedule. ``plateau``: ``lr`` until ``decay`` (set by the loop when validation
        stops improving) has started, then the same cosine over :meth:`decay_fraction`. ``cosine``
        with ``decay`` (a cycle added by ``--extend``): the cosine restarted over that cycle.
        """
        if self.lr_schedule == "plateau":
            frac = 0.0 if decay is None else self.decay_fraction(k, elapsed_s, decay)
        elif self.lr_schedule != "cosine" or not self.total_steps:
            return self.lr
        elif decay is not None:
            frac = self.decay_fraction(k, elapsed_s, decay)
        else:
            frac = k / max(self.total_steps, 1)
            if self.max_minutes and elapsed_s is not None:
                frac = max(frac, elapsed_s / (self.max_minutes * 60))
        frac = min(1.0, frac)
        return self.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    def decay_fraction(self, k: int, elapsed_s: float | None, decay: "LrDecay") -> float:
        """How far ``decay`` (the plateau decay or an --extend cycle) has come at step ``k``: by steps, or by the time left
        at its start where the clock would end the run sooner (1.0: done, the run stops)."""
        frac = (k - decay.start_step) / max(decay.steps, 1)
        if self.max_minutes and elapsed_s is not None:
            left = self.max_minutes * 60 - decay.start_s
            frac = max(frac, (elapsed_s - decay.start_s) / left if left > 0 else 1.0)
        return max(0.0, frac)

    def plateau_decay(self, step: int, elapsed_s: float, plateaued: bool) -> "LrDecay | None":
        """The plateau schedule's decay, if it starts at ``step``: validation has stopped improving
        (``plateaued``: ``PLATEAU_EVALS`` validations in a row without a new best), or
        ``PLATEAU_LATE`` of the steps or of the time budget is gone. It lasts a third of the steps
        so far, cut to the steps left."""
        late = bool(self.total_steps and step >= PLATEAU_LATE * self.total_steps) or bool(
            self.max_minutes and elapsed_s >= PLATEAU_LATE * self.max_minutes * 60)
        if self.lr_schedule != "plateau" or not (late or plateaued):
            return None
        steps = max(1, step // 3)
        if self.total_steps:
            steps = max(1, min(steps, self.total_steps - step))
        return LrDecay(step, float(elapsed_s), steps)

    def extension(self, step: int, elapsed_s: float, valid_auprcs: list[float], cycles: int) -> "LrDecay | None":
        """``--extend``: at the end of a cosine run (or of a cycle added before), one more cycle of
        ``total_steps`` steps with the rate restarted, if validation is still rising: the last
        validation is the best so far and lifts the best of all but the last three by more than
        ``EXTEND_RISE`` of itself; and at least ``EXTEND_TIME_LEFT`` of the time budget is left.
        A run whose validation has levelled off ends as it would have without the flag."""
        if self.lr_schedule != "cosine" or not self.total_steps or cycles >= self.extend or len(valid_auprcs) < 4:
            return None
        if self.max_minutes and elapsed_s > (1 - EXTEND_TIME_LEFT) * self.max_minutes * 60:
            return None
        last, before = valid_auprcs[-1], max(valid_auprcs[:-3])
        if last < max(valid_auprcs) or last - before <= EXTEND_RISE * last:
            return None
        return LrDecay(step, float(elapsed_s), self.total_steps)

    def to_json(self) -> dict[str, Any]:
        """The ``config`` of checkpoints and metrics.json (keys, order and values are a file format)."""
        return {
            "model": self.model_name, "model_config": dict(self.model_config), "batch_size": self.batch_size,
            "lr": self.lr, "weight_decay": self.weight_decay, "negatives_per_positive": self.negatives_per_positive, "clip": self.clip,
            "lr_schedule": self.lr_schedule, "total_steps": self.total_steps, "max_minutes": self.max_minutes,
            "eval_every": self.eval_every, "ema": self.ema, "frozen_motif_filters": self.frozen_motif_filters,
            "patience": self.patience, "extend": self.extend, "seed": self.seed, "device": self.device,
            "world_size": self.world_size, "no_rc_augment": not self.rc_augment, "jitter": self.jitter,
            "test_chroms": list(self.test_chroms), "valid_chroms": list(self.valid_chroms),
            "train_chroms": list(self.train_chroms), "cell": self.cell, "bin_size": self.bin_size,
            "window_length": self.window_length, "window_offset": self.window_offset, "dense": self.dense,
            "bins_per_stretch": self.bins_per_stretch, "positive_weight": self.positive_weight,
            "valid_max_bins": self.valid_max_bins, "builtin": self.builtin,
        }


def check_flags(args: Any) -> None:
    """The checks that need nothing but the flags: done before anything is loaded, so that a bad
    number fails at once (the rest of the validation is in :func:`resolve_config`)."""
    for flag, value in (("--batch-size", args.batch_size), ("--steps", args.steps), ("--eval-batch-size", args.eval_batch_size),
                        ("--bins-per-stretch", args.bins_per_stretch)):
        if value is not None and value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    for flag, value in (("--lr", args.lr), ("--epochs", args.epochs), ("--max-minutes", args.max_minutes)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag}: expected a positive number, got {value}")
    if args.weight_decay is not None and not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise UserError(f"--weight-decay: expected a number >= 0 (0 = off), got {args.weight_decay}")
    if args.patience is not None and args.patience < 0:
        raise UserError(f"--patience: expected an integer >= 0 (0 = never stop early), got {args.patience}")
    if args.negatives_per_positive is not None and not (math.isfinite(args.negatives_per_positive)
                                                        and args.negatives_per_positive >= 0):
        raise UserError(f"--negatives-per-positive: expected a number >= 0, got {args.negatives_per_positive}")


def load_resume_checkpoint(args: Any) -> dict[str, Any] | None:
    """The training checkpoint of ``--out`` with ``--resume`` (checked to be one), else None."""
    if not args.resume:
        return None
    if not args.out:
        raise UserError("--resume needs --out DIR (the run to continue)")
    out = Path(args.out)
    try:
        ckpt = load_checkpoint(out / "checkpoint.pt")
    except CheckpointError as exc:
        raise UserError(f"--resume: {exc}") from None
    if ckpt.get("kind") != "train" or "optimizer" not in ckpt or "sampler" not in ckpt:
        raise UserError(f"--resume: checkpoint {out / 'checkpoint.pt'} is not a training checkpoint")
    return ckpt


def run_seed(args: Any, ckpt: dict[str, Any] | None) -> int:
    """The run's seed: the checkpoint's when resuming (the seed a run started with is kept)."""
    return int(ckpt["config"].get("seed", args.seed) if ckpt else args.seed)


def build_run_model(args: Any, ckpt: dict[str, Any] | None) -> tuple[str, torch.nn.Module]:
    """The model's name and the model: from the flags, or the checkpoint's (with its weights) when
    resuming, where model flags given again must agree with it."""
    from bsp_fast.models import MODEL_NAMES, build_model, model_from_config

    model_name = args.model or (ckpt["model_config"]["name"] if ckpt else DEFAULT_MODEL)
    if model_name not in MODEL_NAMES:
        raise UserError(f"--model {model_name!r}: unknown model; expected one of {', '.join(MODEL_NAMES)}")
    options = model_options(args)
    if ckpt is None and model_name == "hybrid":
        # the occupancy head reads 100 bp flanks (the context of sites at the bin's edges); an explicit
        # --head dense keeps the hybrid's own 50 bp flanks
        if "head" not in options:
            options.update({k: v for k, v in HYBRID_OPTIONS.items() if k not in options})
        if args.genome is None and "members" not in options:
            options["members"] = BUILTIN_DEFAULTS["members"]  # on the built-in data: an ensemble
    if ckpt is None and model_name == DEFAULT_MODEL and "members" not in options:
        # the default run and the real-data recipe: see BUILTIN_DENSE_DEFAULTS / REAL_DENSE_DEFAULTS
        options["members"] = (BUILTIN_DENSE_DEFAULTS if args.genome is None else REAL_DENSE_DEFAULTS)["members"]
    if (ckpt is None and model_name == DEFAULT_MODEL and args.genome is not None and not args.init_motifs
            and "dropout" not in options):
        # filters learnt from scratch: see REAL_DENSE_DEFAULTS; started from known motifs the model
        # keeps its 0.1 (0.3 there moved the panel both ways and lost 0.027 on ctcf in a second seed)
        options["dropout"] = REAL_DENSE_DEFAULTS["dropout"]
    motifs = None
    if args.init_motifs and ckpt is None:
        from bsp_fast.motif_init import kernel_size_for, read_init_motifs

        try:
            motifs = read_init_motifs(args.init_motifs)
        except (ValueError, OSError) as exc:
            raise UserError(f"--init-motifs {args.init_motifs}: {_one_line(exc)}") from None
        if model_name in ("cnn", "hybrid", DEFAULT_MODEL):
            from bsp_fast.models import DEFAULTS

            k = int(options.get("kernel_size", DEFAULTS[model_name]["kernel_size"]))
            k_fit = kernel_size_for(motifs, k)
            if model_name != "cnn" and k_fit != k:
                if "kernel_size" in options:
                    raise UserError(f"--init-motifs {args.init_motifs}: its longest motif needs filters of "
                                    f"{k_fit} bp, --kernel-size is {k}")
                options["kernel_size"] = k_fit
            elif model_name == "cnn" and k_fit > k:
                options["kernel_size"] = k_fit
    try:
        model = build_model(model_name, **options)
    except ValueError as exc:
        raise UserError(f"--model {model_name}: {_one_line(exc)}") from None
    if motifs is not None:
        from bsp_fast.motif_init import init_model_from_motifs

        try:
            init_model_from_motifs(model, motifs)
        except ValueError as exc:
            raise UserError(f"--init-motifs {args.init_motifs}: {_one_line(exc)}") from None
    if ckpt is not None:
        path = Path(args.out) / "checkpoint.pt"
        mine = dict(model.config)
        saved = dict(ckpt["model_config"])
        given = {k for k, v in model_options(args).items()} | ({"name"} if args.model else set())
        if any(mine.get(k) != saved.get(k) for k in given if k != "rc_average"):
            raise UserError(f"--resume: checkpoint {path} holds model {saved}, "
                            f"which the model flags given now contradict ({ {k: mine[k] for k in given} })")
        saved["rc_average"] = bool(args.rc_average or saved.get("rc_average", False))
        model = model_from_config(saved)
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise UserError(f"--resume: checkpoint {path}: weights do not fit its model "
                            f"({_one_line(exc)[:160]})") from None
    return model_name, model


def set_gc_norm_from_genome(model: torch.nn.Module, data: Data, seed: int, log: Callable[[str], None],
                            reads: int = 400, length: int = 10_000) -> None:
    """Centre and scale the GC inputs of every member with ``gc_windows`` on the training chromosomes
    (``reads`` random ``length`` bp reads of them, placed by chromosome length)."""
    members = [m for m in getattr(model, "members", [model]) if getattr(m, "gc_windows", ())]
    if not members:
        return
    g = data.genome
    ids = np.array([g.names.index(c) for c in data.train_chroms])
    lengths = g.lengths[ids].astype(np.float64)
    rng = np.random.default_rng([seed, 0x6C])
    pick = rng.choice(ids, size=reads, p=lengths / lengths.sum())
    starts = (rng.random(reads) * np.maximum(1, g.lengths[pick] - length)).astype(np.int64)
    codes = torch.from_numpy(np.ascontiguousarray(g.codes(pick, starts, length)))
    members[0].set_gc_norm(codes)
    norm = members[0].gc_norm
    for m in members[1:]:  # an ensemble's members share one config: the same statistics
        m.gc_norm.copy_(norm)
    log("GC inputs centred on the training chromosomes: " + ", ".join(
        f"{w} bp {norm[0, j]:.3f} +- {norm[1, j]:.3f}" for j, w in enumerate(members[0].gc_windows)))


def frozen_motif_filters(args: Any, ckpt: dict[str, Any] | None) -> int:
    """How many first filters stay as ``--init-motifs`` set them: the checkpoint's when resuming."""
    if ckpt is not None:
        return int(ckpt.get("config", {}).get("frozen_motif_filters", 0))
    if not args.init_motifs or not args.freeze_motifs:
        return 0
    from bsp_fast.motif_init import read_init_motifs

    return len(read_init_motifs(args.init_motifs))


def data_args(args: Any, ckpt: dict[str, Any] | None) -> Any:
    """The data flags for :class:`Data`: with ``--resume``, the data of the run being continued
    unless given again (a copy; ``args`` is left as parsed)."""
    args = argparse.Namespace(**vars(args))
    if ckpt is not None:
        cfg0, paths0 = ckpt.get("config", {}), ckpt.get("data", {})
        if args.genome is None and not cfg0.get("builtin", True):
            args.genome = paths0.get("genome")
            if args.labels is None and args.peaks is None:
                args.labels, args.peaks = paths0.get("labels"), paths0.get("peaks")
            if args.cell is None and args.labels is not None:
                args.cell = cfg0.get("cell")
        if args.test_chroms is None and cfg0.get("test_chroms"):
            args.test_chroms = ",".join(cfg0["test_chroms"])
        if args.valid_chroms is None and cfg0.get("valid_chroms"):
            args.valid_chroms = ",".join(cfg0["valid_chroms"])
    return args


def resolve_config(args: Any, ckpt: dict[str, Any] | None, data: Data, model: torch.nn.Module, model_name: str,
                   device: torch.device, dist_info: D.DistInfo) -> tuple[RunConfig, Any]:
    """Resolve and validate every setting of the run; also build the training sampler, whose size
    the run's length (``--epochs``) and the dense models' positive weight depend on.

    A setting is the flag's value if given, else (``--resume``) the checkpoint's, else the default
    for the model kind (dense or windowed) and the data (built-in or real). Raises UserError with
    the message for the first bad setting. Returns the config and the sampler (not yet resumed).
    """
    from bsp_fast.data.sampler import BalancedSampler
    from bsp_fast.data.stretches import StretchSampler, positive_weight
    from bsp_fast.dense import is_dense, stretch_length
    from bsp_fast.models import seq_len, window_offset

    dense = is_dense(model)
    if dense:
        defaults = BUILTIN_DENSE_DEFAULTS if data.builtin is not None else REAL_DENSE_DEFAULTS
    else:
        defaults = BUILTIN_DEFAULTS if data.builtin is not None else REAL_DEFAULTS
    prev = ckpt["config"] if ckpt else {}

    def setting(name: str) -> Any:
        value = getattr(args, name)
        if value is not None:
            return value
        return prev.get(name, defaults.get(name))

    batch_size = int(setting("batch_size"))
    lr = float(setting("lr"))
    weight_decay = float(setting("weight_decay") or 0.0)
    npp = float(setting("negatives_per_positive"))
    jitter = int(setting("jitter") or 0)
    ema_decay = float(setting("ema") or 0.0)
    if not 0.0 <= ema_decay < 1.0:
        raise UserError(f"--ema {ema_decay}: expected a decay in [0, 1) (0 = off)")
    seed = run_seed(args, ckpt)

    mcfg = model.config
    rc_augment = not (args.no_rc_augment or prev.get("no_rc_augment", False))
    try:
        if dense:
            # every bin of the training chromosomes once per epoch, in stretches of consecutive bins;
            # the prevalence is handled by weighing bound bins in the loss
            if data.labels.step != mcfg["step"] or data.bin_size != mcfg["region"]:
                raise UserError(f"--model {model_name}: scores {mcfg['region']} bp bins every {mcfg['step']} bp, "
                                f"the labels have {data.bin_size} bp bins every {data.labels.step} bp")
            bins_per_stretch = int(setting("bins_per_stretch"))
            length, offset = stretch_length(mcfg, bins_per_stretch), -int(mcfg["flank"])
            sampler = StretchSampler(data.labels, data.train_chroms, batch_size, bins_per_stretch, seed=seed,
                                     rank=dist_info.rank, world_size=dist_info.world_size, rc_augment=rc_augment,
                                     chrom_order=data.genome, jitter=jitter)
            pos_weight = positive_weight(sampler.n_pos, sampler.n_neg, npp)
        else:
            bins_per_stretch, pos_weight = 1, 1.0
            length, offset = seq_len(mcfg), window_offset(mcfg, data.bin_size)
            sampler = BalancedSampler(data.labels, data.train_chroms, batch_size, negatives_per_positive=npp, seed=seed,
                                      rank=dist_info.rank, world_size=dist_info.world_size, rc_augment=rc_augment,
                                      jitter=jitter, chrom_order=data.genome)
    except ValueError as exc:
        raise UserError(f"empty training set: {_one_line(exc)} (labels {data.paths.get('labels') or data.paths.get('peaks')}; "
                        f"held out: {', '.join(data.test_chroms + data.valid_chroms)})") from None
    if len(sampler) == 0:
        raise UserError("empty training set: fewer training samples than processes")

    # ---- the length of the run --------------------------------------------------------------
    if args.steps is not None:
        total_steps = int(args.steps)
    elif args.epochs is not None:
        total_steps = max(1, int(math.ceil(args.epochs * len(sampler))))
    elif ckpt is not None:
        total_steps = prev.get("total_steps")
    elif defaults.get("steps"):
        total_steps = int(defaults["steps"])
    elif defaults.get("epochs"):
        total_steps = max(int(defaults["min_steps"]), int(math.ceil(defaults["epochs"] * len(sampler))))
    elif args.max_minutes is not None:
        total_steps = None  # time budget only
    else:
        total_steps = len(sampler)  # one epoch
    max_minutes = setting("max_minutes")
    if ckpt is None and args.max_minutes is None and (args.steps is not None or args.epochs is not None):
        max_minutes = None  # a length asked for is not cut by the recipe's default clock
    patience = None if (args.steps is not None or args.epochs is not None) else defaults.get("patience")
    if args.patience is not None:
        patience = int(args.patience) or None
    elif ckpt is not None:
        patience = prev.get("patience", patience)
    extend = int(args.extend) if args.extend is not None else int(prev.get("extend", 0))
    schedule = args.lr_schedule or prev.get("lr_schedule") or ("cosine" if total_steps else "constant")
    if args.eval_every:
        eval_every = int(args.eval_every)
    elif ckpt is not None and "eval_every" in prev:
        eval_every = prev["eval_every"]
    elif total_steps and defaults.get("eval_every"):
        eval_every = int(defaults["eval_every"])
    elif total_steps:
        eval_every = max(1, total_steps // int(defaults.get("evals", 10)))
    else:
        eval_every = None  # time-based: every tenth of the budget
    eval_every_s = (max_minutes * 60 / 10) if (eval_every is None and max_minutes) else None
    if defaults.get("evals") and max_minutes and not args.eval_every:
        eval_every_s = max_minutes * 60 / int(defaults["evals"])  # and by the clock, whichever comes first

    # ---- the output directory: checked before anything is written --------------------------
    out = Path(args.out) if args.out else Path("runs") / f"{model_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if ckpt is None and dist_info.is_main and (out / "checkpoint.pt").exists() and not args.overwrite:
        raise UserError(f"--out {out}: already holds a run (checkpoint.pt); pass --resume to continue it, "
                        f"--overwrite to replace it, or choose another --out")

    cfg = RunConfig(
        model_name=model_name, model_config=dict(mcfg), batch_size=batch_size, lr=lr, weight_decay=weight_decay, negatives_per_positive=npp,
        clip=args.clip, lr_schedule=schedule, total_steps=total_steps, max_minutes=max_minutes,
        eval_every=eval_every, eval_every_s=eval_every_s, ema=ema_decay, frozen_motif_filters=frozen_motif_filters(args, ckpt), patience=patience, extend=extend, seed=seed, device=str(device),
        world_size=dist_info.world_size, rc_augment=rc_augment, jitter=jitter,
        test_chroms=tuple(data.test_chroms), valid_chroms=tuple(data.valid_chroms),
        train_chroms=tuple(data.train_chroms), cell=data.cell, bin_size=data.bin_size, window_length=length,
        window_offset=offset, dense=dense, bins_per_stretch=bins_per_stretch, positive_weight=pos_weight,
        valid_max_bins=args.valid_max_bins, builtin=data.builtin is not None,
        checkpoint_minutes=args.checkpoint_minutes, eval_batch_size=args.eval_batch_size, out=out,
        resumed=ckpt is not None, show_progress=not args.no_progress and dist_info.is_main)
    return cfg, sampler


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """Adam; with ``weight_decay``, AdamW whose decay pulls the weight matrices towards zero: not
    biases, and not the first convolution when --freeze-motifs holds some of its filters fixed
    (decoupled decay would shrink them although their gradient is zeroed)."""
    if not cfg.weight_decay:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    frozen = {id(m.conv.weight) for m in getattr(model, "members", [model])} if cfg.frozen_motif_filters else set()
    decay, rest = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 and id(p) not in frozen else rest).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


# ---- checkpoints ------------------------------------------------------------------------------


class Checkpointer:
    """Writes ``checkpoint.pt`` (model, optimizer, EMA, sampler, RNG states, config) and ``best.pt``
    (the weights scored at the best validation) on the main rank. The loop's progress (step,
    sampler state, ...) is passed in by the caller at each save."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: torch.nn.Module | None,
                 config: dict[str, Any], data: Data, cfg: RunConfig, dist_info: D.DistInfo) -> None:
        self.model, self.optimizer, self.ema = model, optimizer, ema
        self.config, self.data, self.dist_info = config, data, dist_info
        self.window_offset = cfg.window_offset
        self.path = cfg.out / "checkpoint.pt"
        self.best_path = cfg.out / "best.pt"
        self.evals_since_best = 0  # the early stop's count, kept across resumes
        self.decay: LrDecay | None = None  # the plateau decay or --extend's cycle once started, kept across resumes
        self.cycles = 0  # cycles added by --extend
        self.valid_auprcs: list[float] = []  # every validation's auPRC (main rank), for --extend

    def payload(self, rng_all: list | None, sampler_state: dict[str, Any], *, step: int, epoch: int,
                train_seconds: float, best: float | None) -> dict[str, Any]:
        """The checkpoint's contents (the keys are a file format)."""
        return {
            "format": "bsp_fast.checkpoint", "version": 1, "kind": "train",
            "model_config": dict(self.model.config),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "sampler": sampler_state, "rng": capture_rng(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "rng_per_rank": rng_all, "step": step, "epoch": epoch, "train_seconds": train_seconds,
            "best_valid_auprc": best, "evals_since_best": self.evals_since_best,
            "lr_decay": None if self.decay is None else self.decay.to_json(), "extend_cycles": self.cycles,
            "valid_auprcs": list(self.valid_auprcs), "config": self.config, "data": self.data.paths, "bin_size": self.data.bin_size,
            "window_offset": self.window_offset, "time": time.time(),
        }

    def save(self, sampler_state: dict[str, Any], *, step: int, epoch: int, train_seconds: float,
             best: float | None, collective: bool = True) -> None:
        """``checkpoint.pt``. ``collective``: gather every rank's RNG state (all ranks must call)."""
        rng_all = D.gather_objects(capture_rng(), self.dist_info) if collective else None
        if self.dist_info.is_main:
            atomic_save(self.payload(rng_all, sampler_state, step=step, epoch=epoch, train_seconds=train_seconds,
                                     best=best), self.path)

    def save_best(self, scored: torch.nn.Module, *, step: int, epoch: int, train_seconds: float, best: float) -> None:
        """``best.pt``: the weights scored (the EMA's where on), without the resume state."""
        ck = self.payload(None, {}, step=step, epoch=epoch, train_seconds=train_seconds, best=best)
        ck["kind"] = "best"
        ck["model"] = {k: v.detach().cpu() for k, v in scored.state_dict().items()}
        for k in ("optimizer", "sampler", "rng", "rng_per_rank", "ema"):
            ck.pop(k, None)
        atomic_save(ck, self.best_path)


# ---- the run ----------------------------------------------------------------------------------


def _run(args: Any, device: torch.device, dist_info: D.DistInfo) -> int:
    """One training run: settings, the loop, the final evaluation. Returns the exit status."""
    log = _logger(dist_info)
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    if args.threads:
        torch.set_num_threads(int(args.threads))
    check_flags(args)
    ckpt = load_resume_checkpoint(args)

    # seeds first: the model's initial weights are the same on every rank and in every repeat
    init_seed = run_seed(args, ckpt)
    torch.manual_seed(init_seed)
    np.random.seed(init_seed % 2**32)
    import random as _random

    _random.seed(init_seed)

    model_name, model = build_run_model(args, ckpt)
    data = Data(data_args(args, ckpt), log)
    cfg, sampler = resolve_config(args, ckpt, data, model, model_name, device, dist_info)
    if ckpt is None:  # resuming, the checkpoint's weights hold them
        set_gc_norm_from_genome(model, data, init_seed, log)
    out = cfg.out
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not cfg.resumed:  # a fresh run (or --overwrite): no stale history or best model from before
            for name in ("history.jsonl", "best.pt", "metrics.json"):
                (out / name).unlink(missing_ok=True)
    D.barrier(dist_info)

    # ---- optimiser, DDP, restoring state -----------------------------------------------------
    model.to(device)
    if cfg.frozen_motif_filters:
        from bsp_fast.motif_init import freeze_motif_filters

        freeze_motif_filters(model, cfg.frozen_motif_filters)
    optimizer = make_optimizer(model, cfg)
    # the weight average is what gets validated and tested: it generalises better and makes the best
    # checkpoint less of a lottery over noisy validation scores
    ema = None
    if cfg.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    step, train_seconds, best, evals_since_best, decay, cycles, valid_auprcs = 0, 0.0, None, 0, None, 0, []
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
            sampler.load_state_dict(ckpt["sampler"])
            if ema is not None:
                if "ema" not in ckpt:
                    raise KeyError("it was trained without --ema")
                ema.load_state_dict(ckpt["ema"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"--resume: checkpoint {out / 'checkpoint.pt'} does not fit this run ({_one_line(exc)})") from None
        step = int(ckpt["step"])
        train_seconds = float(ckpt.get("train_seconds", 0.0))
        best = ckpt.get("best_valid_auprc")
        evals_since_best = int(ckpt.get("evals_since_best", 0))
        decay = LrDecay.from_json(ckpt.get("lr_decay"))
        cycles, valid_auprcs = int(ckpt.get("extend_cycles", 0)), [float(v) for v in ckpt.get("valid_auprcs", [])]
        rngs = ckpt.get("rng_per_rank") or [ckpt.get("rng")]
        if rngs and len(rngs) == dist_info.world_size and rngs[dist_info.rank] is not None:
            restore_rng(rngs[dist_info.rank])
        if dist_info.is_main:
            _history_truncate(out / "history.jsonl", step)
        log(f"resuming {out} at step {step} (epoch {sampler.epoch}, batch {sampler.position})")
    elif dist_info.enabled:  # same initial weights everywhere, different dropout masks per rank
        torch.manual_seed(init_seed + 7919 * (dist_info.rank + 1))
    train_model = model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    checkpointer = Checkpointer(model, optimizer, ema, cfg.to_json(), data, cfg, dist_info)
    checkpointer.evals_since_best = evals_since_best
    checkpointer.decay, checkpointer.cycles, checkpointer.valid_auprcs = decay, cycles, valid_auprcs
    valid_set = EvalSet(data, data.valid_chroms, cfg.valid_max_bins, cfg.seed) if data.valid_chroms else None
    log(f"model {model_name} ({sum(p.numel() for p in model.parameters()):,} parameters, {cfg.window_length} bp "
        + (f"stretches of {cfg.bins_per_stretch} bins, bound bins weighted {cfg.positive_weight:.1f}), " if cfg.dense
           else "windows), ")
        + f"train {len(data.train_chroms)} chromosomes ({sampler.n_pos:,} positives, {len(sampler):,} batches/epoch), "
        f"valid {', '.join(data.valid_chroms)} ({len(valid_set) if valid_set else 0:,} bins), "
        f"test {', '.join(data.test_chroms)}; device {device}"
        + (f" x {dist_info.world_size} processes ({dist_info.backend})" if dist_info.enabled else "")
        + f"; output {out}")

    scored = ema.module if ema is not None else model
    result = train_loop(model, train_model, scored, optimizer, ema, sampler, cfg, data, valid_set, device,
                        dist_info, checkpointer, step=step, train_seconds=train_seconds, best=best, log=log)
    if result.failed:
        return 1
    if result.interrupted:
        return 130
    return final_evaluation(scored, data, valid_set, cfg, device, dist_info, checkpointer, result, len(sampler), log)


# ---- the training loop ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopResult:
    """Where the training loop stopped, and what the final evaluation reports of it."""

    step: int
    epoch: int
    sampler_state: dict[str, Any]  # the sampler after the last step taken (what a checkpoint records)
    train_seconds: float  # summed over resumes
    best: float | None  # best validation auPRC so far
    stats: dict[str, float]  # this session: samples, labelled bins, seconds in steps
    data_wait_seconds: float  # this session: the loop's wait for batches
    stop_reason: str  # "steps", "time", "early stop" or "schedule" (the plateau decay done)
    interrupted: bool = False  # Ctrl-C: checkpoint saved, no final evaluation
    failed: bool = False  # non-finite loss: stopped without saving
    validated_at_end: bool = False  # the last step was validated already (--extend's check)


def train_loop(model: torch.nn.Module, train_model: torch.nn.Module, scored: torch.nn.Module,
               optimizer: torch.optim.Optimizer, ema: torch.nn.Module | None, sampler: Any,
               cfg: RunConfig, data: Data, valid_set: EvalSet | None, device: torch.device, dist_info: D.DistInfo,
               checkpointer: Checkpointer, *, step: int, train_seconds: float, best: float | None,
               log: Callable[[str], None]) -> LoopResult:
    """Train from ``step`` until ``cfg.total_steps`` or the time budget, validating (``scored``: the
    weights validated) and checkpointing on the way. Batches come from a PrefetchLoader over
    ``sampler`` (restored to where a resumed run stopped), opened and closed here.

    ``train_model`` is ``model`` or its DDP wrapper. Every rank takes the same decisions (stop,
    validate, checkpoint) from flags summed over the ranks at each step. Ctrl-C saves a checkpoint
    and returns ``interrupted``; a non-finite loss prints the error and returns ``failed``.
    """
    main_rank = dist_info.is_main
    out = cfg.out
    history_path = out / "history.jsonl"
    dense, pos_weight, lr = cfg.dense, cfg.positive_weight, cfg.lr
    total_steps, max_minutes = cfg.total_steps, cfg.max_minutes
    eval_every, eval_every_s = cfg.eval_every, cfg.eval_every_s
    autocast = device.type == "cuda"
    # taken before the loader's threads start drawing from the sampler: a run that stops before its
    # first step records the sampler where it was
    last_state = {"sampler": sampler.state_dict(), "epoch": sampler.epoch}

    def save_checkpoint(collective: bool = True) -> None:
        checkpointer.save(last_state["sampler"], step=step, epoch=last_state["epoch"], train_seconds=train_seconds,
                          best=best, collective=collective)

    from bsp_fast.loader import PrefetchLoader

    loader = PrefetchLoader(sampler, data.genome, cfg.window_length, cfg.window_offset, depth=6,
                            pin_memory=device.type == "cuda")
    show = cfg.show_progress
    bar = _bar(total=total_steps, initial=step, desc="train", unit="step", disable=not show)
    base_elapsed = train_seconds  # wall time of earlier sessions' loops (budget is summed over resumes)
    loop_start = time.perf_counter()
    t_last_ckpt = t_last_eval = loop_start
    # validations fall on multiples of eval_every unless the clock brought one forward
    last_eval_step = (step // eval_every) * eval_every if eval_every else step
    stats = {"samples": 0, "bins": 0, "step_s": 0.0}  # this session: samples, labelled bins, seconds in steps
    log_every = max(1, min(50, (total_steps or 10_000) // 100))
    run_loss, run_n = 0.0, 0
    t_window, samples_window = time.perf_counter(), 0
    stop_reason = "steps"
    interrupted = False
    collective_ok = False
    validated_at = -1  # the step of the last validation

    def elapsed() -> float:
        return base_elapsed + time.perf_counter() - loop_start

    def end_step() -> int | None:
        """The last step: total_steps, or the end of a cosine cycle added by --extend."""
        d = checkpointer.decay
        return total_steps if (d is None or cfg.lr_schedule != "cosine") else d.start_step + d.steps

    # Ctrl-C: the first one asks the loop to stop at the end of the step (checkpoint saved, all ranks
    # agree through the step's flags); a second one interrupts at once.
    sigint = {"n": 0}
    old_handler = None

    def on_sigint(signum, frame):
        sigint["n"] += 1
        if sigint["n"] > 1:
            raise KeyboardInterrupt

    import threading

    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, on_sigint)

    try:
        while total_steps is None or step < end_step():
            t0 = time.perf_counter()
            batch = loader.next()
            codes = batch.codes.to(device, non_blocking=True)
            labels = batch.labels.to(device, non_blocking=True)
            if autocast:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = train_model(codes)
            else:
                logits = train_model(codes)
            # an ensemble returns [members, B] in training: the mean of the members' own losses
            if dense:
                loss, n_labelled = stretch_loss(logits, labels, pos_weight)
            else:
                loss, n_labelled = F.binary_cross_entropy_with_logits(logits.float(), labels.expand_as(logits)), labels.numel()
            loss_value = float(loss.detach())
            nonfinite = 0.0 if math.isfinite(loss_value) else 1.0
            if not nonfinite:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                       cfg.clip if cfg.clip > 0 else float("inf"))
                if not torch.isfinite(gnorm):
                    nonfinite = 1.0
            time_up = 1.0 if (max_minutes and elapsed() / 60 >= max_minutes) else 0.0
            # every eval_every steps since the last validation, or eval_every_s seconds, whichever first
            eval_due = 1.0 if ((eval_every is not None and step + 1 - last_eval_step >= eval_every) or (
                eval_every_s is not None and time.perf_counter() - t_last_eval >= eval_every_s)) else 0.0
            ckpt_due = 1.0 if time.perf_counter() - t_last_ckpt >= cfg.checkpoint_minutes * 60 else 0.0
            stop_now = 1.0 if sigint["n"] else 0.0
            # the elapsed time too, so that every rank decays the learning rate alike
            flags = D.all_reduce_sum([nonfinite, time_up, eval_due, ckpt_due, stop_now, elapsed()], dist_info,
                                     torch.device("cpu"))
            elapsed_all = flags[5] / dist_info.world_size
            if flags[0] > 0:
                raise NonFiniteLoss(f"loss became {loss_value} at step {step + 1} (lr {lr}); stopped without "
                                    f"saving, last good checkpoint: {out / 'checkpoint.pt'}"
                                    + ("" if (out / "checkpoint.pt").exists() else " (none written yet)")
                                    + "; try a lower --lr or --clip")
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(step, elapsed_all, checkpointer.decay)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            last_state = {"sampler": batch.sampler_state, "epoch": batch.epoch}
            n = int(codes.shape[0])
            stats["samples"] += n
            stats["bins"] += int(n_labelled)
            samples_window += n
            run_loss += loss_value * n
            run_n += n
            stats["step_s"] += time.perf_counter() - t0
            if show:
                bar.update(1)
            if step % log_every == 0 or step == total_steps:
                now = time.perf_counter()
                sps = samples_window * dist_info.world_size / max(now - t_window, 1e-9)
                t_window, samples_window = now, 0
                if show:
                    bar.set_postfix(loss=f"{run_loss / max(run_n, 1):.4f}", seq_s=f"{sps:,.0f}", refresh=False)
                _write_history(history_path, {"kind": "train", "step": step, "epoch": batch.epoch,
                                              "loss": run_loss / max(run_n, 1), "seq_per_s": sps,
                                              "lr": cfg.lr_at(step - 1, None, checkpointer.decay), "elapsed_s": elapsed()}, dist_info)
                run_loss, run_n = 0.0, 0
            if flags[4] > 0:
                raise KeyboardInterrupt
            decayed = (cfg.lr_schedule == "plateau" and checkpointer.decay is not None
                       and cfg.decay_fraction(step, elapsed_all, checkpointer.decay) >= 1.0)
            finished = (total_steps is not None and step >= end_step()) or flags[1] > 0 or decayed
            if finished and flags[1] == 0 and not decayed and valid_set is not None and checkpointer.cycles < cfg.extend:
                # the end of a cosine cycle: validate here, and go on for another if validation still rises
                prev_best = best
                best = _validate(scored, data, valid_set, device, cfg, dist_info, autocast, step, batch.epoch, best,
                                 train_seconds, checkpointer, log)
                checkpointer.evals_since_best = 0 if best != prev_best else checkpointer.evals_since_best + 1
                ext = cfg.extension(step, elapsed_all, checkpointer.valid_auprcs, checkpointer.cycles) if main_rank else None
                go_on = D.all_reduce_sum([1.0 if ext is not None else 0.0], dist_info, torch.device("cpu"))[0] > 0
                t_last_eval, last_eval_step, validated_at = time.perf_counter(), step, step
                if go_on:
                    checkpointer.decay = LrDecay(step, float(elapsed_all), int(total_steps))
                    checkpointer.cycles += 1
                    finished = False
                    log(f"validation still rising at step {step}: another {total_steps} steps, the learning rate "
                        f"restarted (--extend, cycle {checkpointer.cycles} of {cfg.extend})")
            early = plateaued = False
            if valid_set is not None and flags[2] > 0 and not finished and validated_at != step:
                validated_at = step
                new_best = _validate(scored, data, valid_set, device, cfg, dist_info, autocast, step, batch.epoch, best,
                                     train_seconds, checkpointer, log)
                checkpointer.evals_since_best = 0 if new_best != best else checkpointer.evals_since_best + 1
                best = new_best
                # the main rank's count decides (it alone scores); every rank learns it here
                stop = 1.0 if (main_rank and cfg.patience and checkpointer.evals_since_best >= cfg.patience) else 0.0
                flat = 1.0 if (main_rank and checkpointer.evals_since_best >= PLATEAU_EVALS) else 0.0
                votes = D.all_reduce_sum([stop, flat], dist_info, torch.device("cpu"))
                early, plateaued = votes[0] > 0, votes[1] > 0
                t_last_eval = time.perf_counter()
                last_eval_step = step
                t_window, samples_window = time.perf_counter(), 0
            if checkpointer.decay is None and not finished and not early:
                checkpointer.decay = cfg.plateau_decay(step, elapsed_all, plateaued)
                if checkpointer.decay is not None:
                    # the decay gets its validations before the early stop may end the run
                    checkpointer.evals_since_best = 0
                    log(f"learning rate decays from step {step} over {checkpointer.decay.steps} steps "
                        + ("(validation stopped improving)" if plateaued else "(late in the run)"))
            if (flags[2] > 0 or flags[3] > 0) and not finished:
                train_seconds = elapsed()
                save_checkpoint()
                t_last_ckpt = time.perf_counter()
            if decayed and flags[1] == 0 and not (total_steps is not None and step >= total_steps):
                stop_reason = "schedule"
                log(f"learning rate decay done at step {step}")
                break
            if flags[1] > 0:
                stop_reason = "time"
                log(f"time budget of {max_minutes} min reached at step {step}")
                break
            if early:
                stop_reason = "early stop"
                log(f"early stop at step {step}: {cfg.patience} validations in a row without a new best "
                    f"(best valid auPRC {best:.4f})")
                break
    except KeyboardInterrupt:
        interrupted = True
        collective_ok = sigint["n"] == 1  # every rank stopped at the same step boundary
    except NonFiniteLoss as exc:
        if main_rank:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
        return LoopResult(step, last_state["epoch"], last_state["sampler"], train_seconds, best, stats,
                          loader.wait_seconds, stop_reason, failed=True)
    finally:
        loader.close()
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    train_seconds = elapsed()
    if interrupted:
        save_checkpoint(collective=collective_ok)
        log(f"interrupted at step {step}; checkpoint saved to {out / 'checkpoint.pt'} "
            f"(continue with --resume --out {out})")
    return LoopResult(step, last_state["epoch"], last_state["sampler"], train_seconds, best, stats,
                      loader.wait_seconds, stop_reason, interrupted=interrupted, validated_at_end=validated_at == step)


# ---- the final evaluation ---------------------------------------------------------------------


def final_evaluation(scored: torch.nn.Module, data: Data, valid_set: EvalSet | None, cfg: RunConfig,
                     device: torch.device, dist_info: D.DistInfo, checkpointer: Checkpointer, result: LoopResult,
                     batches_per_epoch: int, log: Callable[[str], None]) -> int:
    """After the loop: the final validation and checkpoint, then every bin of the test chromosomes
    scored with the best validated weights (all ranks), and on the main rank metrics.json, the plots
    and the printed test line. Returns the exit status."""
    out, model_name = cfg.out, cfg.model_name
    autocast = device.type == "cuda"
    best = result.best
    if valid_set is not None and result.stop_reason != "early stop" and not result.validated_at_end:
        # (an early stop, and --extend's check at the end of a cycle, have just validated)
        best = _validate(scored, data, valid_set, device, cfg, dist_info, autocast, result.step, result.epoch,
                         best, result.train_seconds, checkpointer, log)
    checkpointer.save(result.sampler_state, step=result.step, epoch=result.epoch,
                      train_seconds=result.train_seconds, best=best)

    # the model scored on the test chromosomes: best validation auPRC where validation ran
    if (out / "best.pt").exists() and valid_set is not None:
        try:
            scored.load_state_dict(load_checkpoint(out / "best.pt")["model"])
        except CheckpointError as exc:
            log(f"note: {exc}; testing the last model instead")
    test_set = EvalSet(data, data.test_chroms, 0, cfg.seed)
    log(f"scoring every bin of {', '.join(data.test_chroms)}: {len(test_set):,} bins "
        f"({int(test_set.labels.sum()):,} bound, prevalence {test_set.labels.mean():.4f})")
    t_test = time.perf_counter()
    scores = evaluate_model(scored, data, test_set, device, cfg.eval_batch_size, dist_info, autocast,
                            desc="test", show=cfg.show_progress)
    predict_s = time.perf_counter() - t_test
    if not dist_info.is_main:
        return 0
    from bsp_fast.metrics import binary_metrics
    from bsp_fast.plots import plot_lines, plot_roc_pr

    try:
        metrics: dict[str, Any] = binary_metrics(test_set.labels, scores)
    except ValueError as exc:
        raise UserError(f"--test-chroms: cannot score the test chromosomes ({_one_line(exc)})") from None
    curves_in = {model_name: (test_set.labels, scores)}
    oracle = data.oracle_scores(test_set)
    if oracle is not None:
        om = binary_metrics(test_set.labels, oracle)
        metrics["oracle_auroc"], metrics["oracle_auprc"] = om["auroc"], om["auprc"]
        curves_in["oracle"] = (test_set.labels, oracle)
    stats, step_s = result.stats, max(result.stats["step_s"], 1e-9)
    metrics.update({
        "train_sequences_per_second": stats["samples"] * dist_info.world_size / step_s,
        "train_bins_per_second": stats["bins"] * dist_info.world_size / step_s,
        "data_wait_fraction": result.data_wait_seconds / step_s,
        "predict_bins_per_second": len(test_set) / max(predict_s, 1e-9),
        "steps": result.step, "epochs": result.step / max(batches_per_epoch, 1), "train_seconds": result.train_seconds,
        "stopped_by": result.stop_reason, "best_valid_auprc": best, "model": model_name,
        "prevalence": float(test_set.labels.mean()), "test_chroms": list(data.test_chroms),
        "config": checkpointer.config, "data": data.paths, "output": str(out.resolve()),
    })
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=_json_default) + "\n")
    _plots(out, out / "history.jsonl", curves_in, model_name, plot_lines, plot_roc_pr)
    line = (f"test auROC {metrics['auroc']:.4f}  auPRC {metrics['auprc']:.4f}"
            + (f"  (oracle auROC {metrics['oracle_auroc']:.4f}  auPRC {metrics['oracle_auprc']:.4f})" if oracle is not None else "")
            + f"  recall@FDR10 {metrics['recall_at_fdr10']:.3f}  {metrics['n_pos']:,} bound / {metrics['n_neg']:,} unbound;"
            f"  {metrics['train_sequences_per_second']:,.0f} seq/s, data wait {metrics['data_wait_fraction']:.1%}")
    print(line)
    log(f"wrote {out}/metrics.json, history.jsonl, checkpoint.pt, best.pt, loss.png, roc_pr.png")
    return 0


def _validate(model: torch.nn.Module, data: Data, valid_set: EvalSet, device: torch.device, cfg: RunConfig,
              dist_info: D.DistInfo, autocast: bool, step: int, epoch: int, best: float | None, train_seconds: float,
              checkpointer: Checkpointer, log: Callable[[str], None]) -> float | None:
    """Score the validation bins; history line; best.pt when the auPRC improves. Returns the best auPRC.

    ``train_seconds`` is what the best checkpoint records (the loop's last recorded training time)."""
    from bsp_fast.metrics import binary_metrics

    scores = evaluate_model(model, data, valid_set, device, cfg.eval_batch_size, dist_info, autocast,
                            desc="valid", show=cfg.show_progress)
    if not dist_info.is_main:
        return best
    labels = valid_set.labels
    try:
        m = binary_metrics(labels, scores)
    except ValueError as exc:
        log(f"note: validation at step {step} not scored ({_one_line(exc)})")
        return best
    rec = {"kind": "valid", "step": step, "epoch": epoch, "loss": _bce(labels, scores),
           **{k: m[k] for k in ("auroc", "auprc", "recall_at_fdr10", "recall_at_fdr50", "n_pos", "n_neg")}}
    improved = best is None or m["auprc"] > best
    checkpointer.valid_auprcs.append(float(m["auprc"]))
    if improved:
        best = m["auprc"]
        checkpointer.save_best(model, step=step, epoch=epoch, train_seconds=train_seconds, best=best)
    rec["best"] = bool(improved)
    _write_history(cfg.out / "history.jsonl", rec, dist_info)
    log(f"step {step}: valid auROC {m['auroc']:.4f} auPRC {m['auprc']:.4f} loss {rec['loss']:.4f}"
        + (" (best)" if improved else ""))
    return best


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _plots(out: Path, history_path: Path, curves_in, model_name: str, plot_lines, plot_roc_pr) -> None:
    recs = []
    if history_path.exists():
        for line in history_path.read_text().splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue
    train = [r for r in recs if r.get("kind") == "train"]
    valid = [r for r in recs if r.get("kind") == "valid"]
    series = {}
    if train:
        series["train loss (balanced batches)"] = ([r["step"] for r in train], [r["loss"] for r in train])
    if valid:
        series["valid loss (true prevalence)"] = ([r["step"] for r in valid], [r["loss"] for r in valid])
    if series:
        plot_lines(series, out / "loss.png", "step", "binary cross-entropy", title=f"{model_name}: loss")
    if valid:
        plot_lines({"valid auROC": ([r["step"] for r in valid], [r["auroc"] for r in valid]),
                    "valid auPRC": ([r["step"] for r in valid], [r["auprc"] for r in valid])},
                   out / "valid.png", "step", "score", title=f"{model_name}: validation")
    plot_roc_pr(curves_in, out / "roc_pr.png", title=f"{model_name}: test chromosomes, every bin")


if __name__ == "__main__":
    sys.exit(main())
