"""``python -m bsp_fast.evaluate``: score a predictions file against labels (also ``bsp-fast evaluate``).

::

    python -m bsp_fast.evaluate --predictions preds.tsv.gz --labels GABPA.train.labels.tsv.gz \\
        --cell H1-hESC --out metrics.json

Predictions: ``chr start stop probability`` rows (ENCODE-DREAM submission format, plain or gzip,
an optional header line). Every non-ambiguous label bin of the scored chromosomes (default: those
present in the predictions; ``--chroms`` to choose) must have a prediction with the same start; A
bins are left out, so the metrics are at the true prevalence. Writes ``metrics.json`` (auroc,
auprc, recall_at_fdr10, recall_at_fdr50, n_pos, n_neg, prevalence, chroms, paths) and, with
``--plot``, a ROC + PR figure with the prevalence chance line.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from bsp_fast.cli import ArgumentParser, UserError, guard

PROG = "bsp-fast evaluate"


def build_parser() -> ArgumentParser:
    import argparse

    p = ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", required=True, help="chr start stop probability (.tsv or .tsv.gz)")
    p.add_argument("--labels", required=True, help="ENCODE-DREAM label file")
    p.add_argument("--cell", default=None, help="cell column of --labels (may be omitted for a single-cell file)")
    p.add_argument("--chroms", default=None, help="comma-separated chromosomes to score (default: predicted ones)")
    p.add_argument("--out", default="metrics.json", help="metrics file to write (default metrics.json)")
    p.add_argument("--plot", default=None, help="also write ROC + PR curves to this PNG")
    return p


def read_predictions(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{chrom: (starts int64 sorted, probabilities float64)} from a submission file."""
    rows: dict[str, tuple[list[int], list[float]]] = {}
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt") as fh:
            for ln, line in enumerate(fh, 1):
                f = line.split()
                if not f:
                    continue
                if len(f) < 4:
                    raise UserError(f"--predictions {path}:{ln}: expected 4 fields chr, start, stop, probability; "
                                    f"got {line.strip()[:80]!r}")
                try:
                    start, prob = int(f[1]), float(f[3])
                except ValueError:
                    if ln == 1:  # a header
                        continue
                    raise UserError(f"--predictions {path}:{ln}: start must be an integer and probability a number; "
                                    f"got {line.strip()[:80]!r}") from None
                if not np.isfinite(prob):
                    raise UserError(f"--predictions {path}:{ln}: probability is not finite ({f[3]})")
                r = rows.setdefault(f[0], ([], []))
                r[0].append(start)
                r[1].append(prob)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"--predictions {path}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    if not rows:
        raise UserError(f"--predictions {path}: no prediction rows")
    out = {}
    for c, (s, p) in rows.items():
        s_a, p_a = np.asarray(s, np.int64), np.asarray(p, np.float64)
        order = np.argsort(s_a, kind="stable")
        out[c] = (s_a[order], p_a[order])
    return out


def match(preds: dict[str, tuple[np.ndarray, np.ndarray]], labels, chroms: Sequence[str], path: str
          ) -> tuple[np.ndarray, np.ndarray]:
    """(labels int8, scores) of every non-ambiguous bin of ``chroms``; UserError for a missing prediction."""
    ys, ss = [], []
    for c in chroms:
        track = labels.tracks[c]
        starts = np.asarray(track.starts)
        lab = np.asarray(track.labels)
        keep = lab >= 0
        starts, lab = starts[keep], lab[keep]
        if c not in preds:
            raise UserError(f"--predictions {path}: no predictions for chromosome {c}")
        ps, pp = preds[c]
        idx = np.searchsorted(ps, starts)
        ok = (idx < ps.size) & (ps[np.minimum(idx, ps.size - 1)] == starts)
        if not ok.all():
            miss = int((~ok).sum())
            first = int(starts[~ok][0])
            raise UserError(f"--predictions {path}: {miss} labelled bin(s) of {c} have no prediction "
                            f"(e.g. {c}:{first}-{first + labels.bin_size})")
        ys.append(lab.astype(np.int8))
        ss.append(pp[idx])
    return np.concatenate(ys), np.concatenate(ss)


def main(argv: Sequence[str] | None = None) -> int:
    return guard(PROG, lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    from bsp_fast.checkpoint import atomic_write_text
    from bsp_fast.data.labels import read_dream_labels
    from bsp_fast.metrics import binary_metrics
    from bsp_fast.train import _one_line

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory (expected a file name such as metrics.json)")
    try:
        labels = read_dream_labels(args.labels, args.cell)
    except (ValueError, OSError, KeyError) as exc:
        flag = f"--cell {args.cell}" if "cell" in str(exc) else f"--labels"
        raise UserError(f"{flag}: {_one_line(exc)}") from None
    preds = read_predictions(args.predictions)
    if args.chroms:
        chroms = [c.strip() for c in args.chroms.split(",") if c.strip()]
        bad = [c for c in chroms if c not in labels.tracks]
        if bad:
            raise UserError(f"--chroms: {', '.join(bad)} not in the labels {args.labels}")
    else:
        chroms = [c for c in labels.tracks if c in preds]
        if not chroms:
            raise UserError(f"--predictions {args.predictions}: none of its chromosomes "
                            f"({', '.join(list(preds)[:8])}) is in the labels {args.labels}")
    y, s = match(preds, labels, chroms, args.predictions)
    try:
        metrics = binary_metrics(y, s)
    except ValueError as exc:
        raise UserError(f"cannot score {', '.join(chroms)}: {_one_line(exc)}") from None
    metrics.update({"prevalence": metrics["n_pos"] / (metrics["n_pos"] + metrics["n_neg"]), "chroms": chroms,
                    "cell": labels.cell, "predictions": str(Path(args.predictions).resolve()),
                    "labels": str(Path(args.labels).resolve())})
    atomic_write_text(out, json.dumps(metrics, indent=2) + "\n")
    if args.plot:
        from bsp_fast.plots import plot_roc_pr

        plot_roc_pr({Path(args.predictions).name: (y, s)}, args.plot, title=f"{labels.cell}: {', '.join(chroms)}")
    print(f"auROC {metrics['auroc']:.4f}  auPRC {metrics['auprc']:.4f}  recall@FDR10 {metrics['recall_at_fdr10']:.3f}  "
          f"recall@FDR50 {metrics['recall_at_fdr50']:.3f}  {metrics['n_pos']:,} bound / {metrics['n_neg']:,} unbound "
          f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
