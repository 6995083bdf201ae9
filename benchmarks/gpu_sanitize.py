#!/usr/bin/env python3
"""Small shapes of every CUDA bi-GRU kernel family, for compute-sanitizer (memcheck, racecheck, synccheck).

    compute-sanitizer --tool memcheck --error-exitcode 7 python3 benchmarks/gpu_sanitize.py

(steps `memcheck` / `racecheck` / `synccheck` of benchmarks/gpu_checks.py, which puts the repository
root on PYTHONPATH, so ``import bsp_fast`` works from this file's folder). Inputs are drawn on the
CPU and copied over, so few of torch's own kernels run under the tool. Covers fp32 / bf16 / fp64,
the tensor-core and FFMA bf16 kernels (BSP_FAST_GRU_MMA), W_hh in shared memory and read through
L1/L2 (H=256), partial blocks (odd B), and one FusedBiGRU forward + backward through the custom op.
``--device cpu`` runs the same calls through the CPU backend (a smoke run of this file, no tool).
Prints "sanitize driver done" at the end (gpu_checks.py checks that the driver finished).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

# (dtype, T, B, H, BSP_FAST_GRU_MMA)
CASES = [(torch.float32, 5, 11, 32, "1"), (torch.float32, 3, 19, 64, "1"), (torch.float32, 3, 3, 256, "1"),
         (torch.float32, 2, 9, 128, "1"), (torch.bfloat16, 4, 7, 64, "1"), (torch.bfloat16, 3, 21, 128, "1"),
         (torch.bfloat16, 3, 300, 32, "1"), (torch.bfloat16, 4, 7, 64, "0"), (torch.bfloat16, 2, 5, 256, "1"),
         (torch.float64, 3, 5, 32, "1"), (torch.float32, 2, 4, 40, "1")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    dev = args.device
    if dev == "cuda":
        from bsp_fast.gru import cuda_backend as be
    else:
        from bsp_fast.gru import cpu_backend as be
    torch.manual_seed(0)
    for dt, T, B, H, mma in CASES:
        if dev != "cuda" and dt == torch.bfloat16:
            continue  # the CPU kernel is fp32 / fp64
        os.environ["BSP_FAST_GRU_MMA"] = mma
        acc = torch.float64 if dt == torch.float64 else torch.float32
        gi = torch.randn(T, B, 6 * H).to(dt).to(dev)
        w = ((torch.rand(2, 3 * H, H) * 2 - 1) / H ** 0.5).to(dt).to(dev)
        b = (torch.randn(2, 3 * H, dtype=acc) * 0.1).to(dev)
        h0 = torch.randn(2, B, H, dtype=acc).to(dev)
        gy = torch.randn(T, B, 2 * H).to(dt).to(dev)
        y, s = be.forward(gi, w, b, h0)
        yi = be.forward_inference(gi, w, b, h0)
        g = be.backward(gy, y, s, w, h0)
        if dev == "cuda":
            torch.cuda.synchronize()
        ok = all(bool(torch.isfinite(t.float().cpu()).all()) for t in (y, s, *g)) and torch.equal(yi.cpu(), y.cpu())
        plan = (be.plan(dt, B, be.padded_hidden(H)), be.plan(dt, B, be.padded_hidden(H), backward=True)) \
            if dev == "cuda" else ""
        print(dt, T, B, H, "mma" if mma == "1" else "ffma", plan, "ok", ok, flush=True)
        if not ok:
            print("sanitize driver: non-finite or inference != training forward", flush=True)
            return 3
    os.environ["BSP_FAST_GRU_MMA"] = "1"
    from bsp_fast.gru import FusedBiGRU

    m = FusedBiGRU(4, 32, 2, batch_first=True).to(dev)
    x = torch.randn(3, 6, 4).to(dev).requires_grad_(True)
    out, hn = m(x)
    (out.sum() + hn.sum()).backward()
    if dev == "cuda":
        torch.cuda.synchronize()
    print("FusedBiGRU fwd+bwd ok", bool(torch.isfinite(x.grad.cpu()).all()), flush=True)
    print("sanitize driver done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
