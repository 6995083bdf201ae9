"""One training (or inference) step of FusedBiGRU beside nn.GRU's, interleaved in one process.

    python benchmarks/step_ratio.py --shape small --kind train --rounds 12

Each round times one nn.GRU step and then four fused steps (same model, same data, as in
benchmarks/test_bench_gru.py: 2 layers, one-hot DNA, loss = mean of squares of the output and h_n,
Adam); prints the medians and their ratio. Interleaving keeps both under the same machine load, so
the ratio is steadier than the pytest-benchmark means on a noisy machine. To compare two commits,
run this alternately from both checkouts (``PYTHONPATH=<checkout> python .../step_ratio.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bsp_fast.gru import FusedBiGRU

SHAPES = {"small": (64, 80, 32), "large": (32, 400, 128)}


def make_step(model: nn.Module, x: torch.Tensor, kind: str):
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def train():
        opt.zero_grad(set_to_none=True)
        out, hn = model(x)
        (out.square().mean() + hn.square().mean()).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    return train if kind == "train" else infer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=SHAPES, default="small")
    p.add_argument("--kind", choices=("train", "infer"), default="train")
    p.add_argument("--rounds", type=int, default=12)
    args = p.parse_args()
    B, T, H = SHAPES[args.shape]
    torch.manual_seed(0)
    codes = torch.randint(0, 4, (B, T), dtype=torch.uint8)
    ref = nn.GRU(4, H, 2, batch_first=True, bidirectional=True)
    fused = FusedBiGRU(4, H, 2)
    fused.load_state_dict(ref.state_dict())
    a = make_step(ref, F.one_hot(codes.long(), 4).float(), args.kind)
    b = make_step(fused, codes, args.kind)
    for _ in range(3):
        a(), b()
    ta, tb = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t)
        for _ in range(4):
            t = time.perf_counter()
            b()
            tb.append(time.perf_counter() - t)
    ma, mb = statistics.median(ta), statistics.median(tb)
    print(f"{args.kind} {args.shape} B={B} T={T} H={H}, {torch.get_num_threads()} threads: nn.GRU {ma * 1e3:.2f} ms, "
          f"FusedBiGRU {mb * 1e3:.2f} ms (min {min(tb) * 1e3:.2f}), ratio {ma / mb:.2f}x")


if __name__ == "__main__":
    main()
