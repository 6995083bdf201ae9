"""score_grid alone, tile layouts side by side: the default model (2 untrained hybrid-dense) over
chr2 of the built-in genome, two rounds of every (tiles per pass, bins per tile) in one process.

    python benchmarks/score_grid_tiles.py [--bins 32000] [--layouts 8x200,4x400,2x800]

This is what chose the defaults of bsp_fast.dense (DEFAULT_BATCH, DEFAULT_BINS_PER_STRETCH).
"""

from __future__ import annotations

import argparse
import time

import torch

from bsp_fast import dense
from bsp_fast.data import Genome
from bsp_fast.data.synthetic import ensure_builtin
from bsp_fast.models import build_model
from bsp_fast.train import BUILTIN_DENSE_DEFAULTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bins", type=int, default=32_000)
    ap.add_argument("--layouts", default="8x200,16x200,32x200,4x400,8x400,2x800,4x800")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    layouts = [tuple(int(v) for v in x.split("x")) for x in a.layouts.split(",")]
    torch.manual_seed(0)
    model = build_model("hybrid-dense", members=BUILTIN_DENSE_DEFAULTS["members"]).eval()
    g = Genome(str(ensure_builtin().fasta))
    cid = g.chrom_id("chr2")
    dense.score_grid(model, g, cid, 0, 4000)  # warm-up
    print(f"score_grid, {a.bins:,} bins of chr2, {torch.get_num_threads()} torch threads (bins/s per round):")
    for batch, tile in layouts:
        rates = []
        for _ in range(a.rounds):
            t = time.perf_counter()
            dense.score_grid(model, g, cid, 0, a.bins, batch_size=batch, bins_per_stretch=tile)
            rates.append(a.bins / (time.perf_counter() - t))
        print(f"  {batch:3d} x {tile:4d}: " + " / ".join(f"{r:,.0f}" for r in rates))


if __name__ == "__main__":
    main()
