"""How much a dense model's bin scores move with where their stretch starts (and with the margin).

    python benchmarks/dense_offsets.py --checkpoint runs/x/best.pt [--genome G.fa] [--chrom chr21]

Scores one chromosome's bin grid with the default tiling, then with tilings shifted by 1, 7, 19
and 101 bins, and with margins of 300 and 1000 bp, and prints the largest and the 99.9th percentile
|difference| in logit over the shared bins, and the same for the one-bin windows (the GRU's
context is all that differs). Without --genome: the built-in data set.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from bsp_fast.checkpoint import load_checkpoint, model_from_checkpoint
    from bsp_fast.data import Genome
    from bsp_fast.dense import DEFAULT_BINS_PER_STRETCH, DEFAULT_MARGIN, score_grid, score_grid_windowed

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--genome")
    ap.add_argument("--chrom", default="chr21")
    ap.add_argument("--max-bins", type=int, default=20_000)
    a = ap.parse_args()
    if a.genome is None:
        from bsp_fast.data.synthetic import ensure_builtin

        a.genome = str(ensure_builtin().fasta)
    model = model_from_checkpoint(load_checkpoint(a.checkpoint), a.checkpoint)
    g = Genome(a.genome)
    cid = g.chrom_id(a.chrom)
    n = min(a.max_bins, (dict(g.chromosomes)[a.chrom] - 200) // 50 + 1)
    base = score_grid(model, g, cid, 0, n)
    print(f"{a.checkpoint}: {a.chrom}, {n:,} bins; default tiling: {DEFAULT_BINS_PER_STRETCH}-bin stretches, margin {DEFAULT_MARGIN} bp")
    for shift in (1, 7, 19, 101):
        d = np.abs(score_grid(model, g, cid, shift * 50, n - shift) - base[shift:])
        print(f"  tiles shifted by {shift:>3} bins: max |d logit| {d.max():.2e}, 99.9 % {np.quantile(d, 0.999):.2e}")
    for margin in (300, 1000):
        d = np.abs(score_grid(model, g, cid, 0, n, margin=margin) - base)
        print(f"  margin {margin:>4} bp:               max |d logit| {d.max():.2e}, 99.9 % {np.quantile(d, 0.999):.2e}")
    d = np.abs(score_grid_windowed(model, g, cid, 0, n) - base)
    print(f"  one-bin windows (400 bp):      max |d logit| {d.max():.2e}, 99.9 % {np.quantile(d, 0.999):.2e}, "
          f"median {np.median(d):.2e}")


if __name__ == "__main__":
    main()
