"""One training (or inference) step of FusedBiGRU beside nn.GRU's, interleaved in one process.

    python benchmarks/step_ratio.py --shape small --kind train --rounds 12

Each round times one nn.GRU step and then four fused steps (same model, same data, as in
benchmarks/test_bench_gru.py: 2 layers, one-hot DNA, loss = mean of squares of the output and h_n,
Adam); prints the medians and their ratio. Interleaving keeps both under the same machine load, so
the ratio is steadier than the pytest-benchmark means on a noisy machine. To compare two commits,
run this alternately from both checkouts (``PYTHONPATH=<checkout> python .../step_ratio.py``).
``--profile`` then prints torch.profiler's per-op self CPU time of 20 fused steps (with input
shapes): where the step's time goes, kernels, torch GEMMs, the loss and Adam included.
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
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops of 20 fused steps")
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
    if args.profile:
        from torch.profiler import profile

        n = 20
        with profile(record_shapes=True) as prof:
            for _ in range(n):
                b()
        events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
        print(f"torch.profiler, fused step (profiling adds overhead), ms per step: {n} steps")
        for e in events[:15]:
            print(f"  {e.self_cpu_time_total / n / 1e3:7.3f}  {e.count / n:4.1f}x  {e.key:45.45s} {str(e.input_shapes)[:70]}")
        if args.kind == "train":
            # the step's work that is not the GRU's (the same for nn.GRU): the loss on the outputs, its
            # backward, and Adam (its op's total includes its children)
            total = sum(e.self_cpu_time_total for e in events)
            outs = ([B, T, 2 * H], [4, B, H])
            loss = sum(e.self_cpu_time_total for e in events
                       if e.key in ("aten::pow", "aten::mul", "aten::div", "aten::mean", "aten::add", "aten::sum")
                       and e.input_shapes and e.input_shapes[0] in outs)
            adam = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer."))
            print(f"  loss on the outputs + its backward {loss / n / 1e3:.2f} ms, Adam {adam / n / 1e3:.2f} ms: "
                  f"{100 * (loss + adam) / total:.0f} % of the profiled step ({total / n / 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
