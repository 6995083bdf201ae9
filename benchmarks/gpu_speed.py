#!/usr/bin/env python3
"""The speed table: FusedBiGRU vs cuDNN nn.GRU (2 layers, bidirectional, one-hot input of 4 channels).

    python benchmarks/gpu_speed.py --device cuda --jsonl speed.jsonl --budget 140   (step `speed` of gpu_checks.py)
    python benchmarks/gpu_speed.py --device cpu --quick                             (CPU smoke run of the tests)

Same figures as benchmarks/test_bench_gru_cuda.py, but each written (one JSON line, flushed) as soon
as it is measured and under a time budget, so that a run cut at its limit keeps what it measured:

- ceilings first: the device's measured matrix rate (8192^3 torch.mm in fp32 with TF32 off, TF32,
  bf16; random data) and device-to-device copy bandwidth;
- shapes (B, T, H): (512, 400, 128), (4096, 400, 32), (512, 1000, 256); modes fwd (inference,
  no_grad) and fwd_bwd (training step without the optimizer);
- implementations: FusedBiGRU fp32, bf16 (tensor-core kernels for H <= 128), bf16_ffma
  (BSP_FAST_GRU_MMA=0); cuDNN nn.GRU fp32 TF32 off, fp32 TF32 on, bf16 (whether bf16 reached cuDNN
  is recorded); the kernel alone (cuda_backend.forward / backward of one layer, gi given).

Per figure: ms (median of CUDA-event timings after warm-up; fewer repetitions when one run is
long), us per recurrent step (ms / T, whole model), model FLOP/s (input projections + recurrent
matmuls, x3 for fwd_bwd) and its fraction of the measured matrix rate of that dtype, and the
command that reproduces that one figure (``--only NAME --shapes BxTxH``). Cases that do not fit in
the budget are recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

SHAPES = [(512, 400, 128), (4096, 400, 32), (512, 1000, 256)]
QUICK_SHAPES = [(4, 12, 32)]
LAYERS, IN = 2, 4


class Out:
    def __init__(self, path):
        self.f = open(path, "a") if path else None

    def write(self, obj):
        if self.f:
            self.f.write(json.dumps(obj) + "\n")
            self.f.flush()
            os.fsync(self.f.fileno())


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, dev, warmup=2, reps=7, long_ms=150.0) -> tuple[float, int]:
    """Median ms of ``fn``; after one warm-up, a run longer than ``long_ms`` gets 3 repetitions."""
    t0 = time.perf_counter()
    fn()
    sync(dev)
    first = (time.perf_counter() - t0) * 1e3
    if first > long_ms:
        warmup, reps = 0, 3
    for _ in range(max(0, warmup - 1)):
        fn()
    sync(dev)
    times = []
    for _ in range(reps):
        if dev == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), reps


def model_flops(B, T, H, fwd_bwd: bool) -> float:
    f = 0.0
    for layer in range(LAYERS):
        i = IN if layer == 0 else 2 * H
        f += 2 * (2 * T * B * i * 3 * H) + 2 * (2 * T * B * H * 3 * H)
    return f * (3 if fwd_bwd else 1)


def ceilings(dev, quick) -> dict:
    n = 512 if quick else 8192
    res = {"mm_n": n}
    for kind, dt in (("fp32", torch.float32), ("tf32", torch.float32), ("bf16", torch.bfloat16)):
        if dev == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = kind == "tf32"
        a = torch.randn(n, n, device=dev).to(dt)
        b = torch.randn(n, n, device=dev).to(dt)
        ms, _ = time_ms(lambda: torch.mm(a, b), dev, warmup=3, reps=10)
        res[f"matrix_tflops_{kind}"] = 2 * n ** 3 / (ms * 1e-3) / 1e12
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    nbytes = (1 << 20) if quick else (1 << 31)  # 2 GiB copied: read + written
    src = torch.empty(nbytes, dtype=torch.uint8, device=dev).random_()
    dst = torch.empty_like(src)
    ms, _ = time_ms(lambda: dst.copy_(src), dev, warmup=2, reps=10)
    res["copy_tb_per_s"] = 2 * nbytes / (ms * 1e-3) / 1e12
    del src, dst
    return res


def bf16_reaches_cudnn(dev) -> dict:
    if dev != "cuda":
        return {"reaches_cudnn": None, "note": "cpu"}
    gru = torch.nn.GRU(IN, 32, num_layers=1, bidirectional=True, batch_first=True).to(dev, torch.bfloat16)
    x = torch.randn(8, 16, IN, device=dev, dtype=torch.bfloat16)
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            gru(x)
            torch.cuda.synchronize()
        names = sorted({e.key for e in prof.key_averages()})
    except Exception as exc:  # noqa: BLE001
        names = [f"profiler failed: {exc!r}"]
    rnn = [n for n in names if any(s in n.lower() for s in ("cudnn", "rnn", "persist", "elemwise"))]
    return {"cudnn_version": torch.backends.cudnn.version(),
            "reaches_cudnn": any(("cudnn" in n.lower() or "rnn" in n.lower()) for n in names), "kernels": (rnn or names)[:12]}


def fused_model(H, dt, dev):
    from bsp_fast.gru import FusedBiGRU

    return FusedBiGRU(IN, H, num_layers=LAYERS, batch_first=True).to(dev, dt)


def cudnn_model(H, dt, dev):
    return torch.nn.GRU(IN, H, num_layers=LAYERS, bidirectional=True, batch_first=True).to(dev, dt)


def step_fn(model, x, fwd_bwd):
    if fwd_bwd:
        def f():
            for p in model.parameters():
                p.grad = None
            out, hn = model(x)
            (out.float().sum() + hn.float().sum()).backward()
    else:
        def f():
            with torch.no_grad():
                model(x)
    return f


# name -> (impl, variant, dtype, cudnn tf32, BSP_FAST_GRU_MMA, rate kind)
MODEL_VARIANTS = [
    ("fused", "fp32", torch.float32, False, "1", "fp32"),
    ("fused", "bf16", torch.bfloat16, False, "1", "bf16"),
    ("fused", "bf16_ffma", torch.bfloat16, False, "0", "bf16"),
    ("cudnn", "fp32_tf32_off", torch.float32, False, "1", "fp32"),
    ("cudnn", "fp32_tf32_on", torch.float32, True, "1", "tf32"),
    ("cudnn", "bf16", torch.bfloat16, False, "1", "bf16"),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--jsonl", help="append one JSON line per figure here, as measured")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds: no case starts after this")
    ap.add_argument("--quick", action="store_true", help="one tiny shape, small ceilings (CPU smoke run)")
    ap.add_argument("--shapes", help="comma-separated BxTxH (default the three of the table)")
    ap.add_argument("--only", help="comma-separated figure names (e.g. 'fused bf16 fwd_bwd,kernel fwd fp32')")
    args = ap.parse_args(argv)
    dev = args.device
    t_end = time.monotonic() + args.budget
    out = Out(args.jsonl)
    shapes = ([tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes
              else (QUICK_SHAPES if args.quick else SHAPES))
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    base_cmd = f"python benchmarks/gpu_speed.py --device {dev}"
    if dev == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    ceil = ceilings(dev, args.quick) if only is None else {}
    out.write({"kind": "ceilings", "ceilings": ceil, "cmd": base_cmd})
    print("ceilings:", json.dumps({k: round(v, 2) for k, v in ceil.items()}), flush=True)
    try:
        info = bf16_reaches_cudnn(dev)
    except Exception as exc:  # noqa: BLE001
        info = {"error": repr(exc)[:300]}
    out.write({"kind": "bf16_cudnn", "bf16_cudnn": info})
    rate = {k: ceil.get(f"matrix_tflops_{k}") for k in ("fp32", "tf32", "bf16")}

    def record(rec):
        if "ms" in rec:
            rec["per_step_us"] = rec["ms"] * 1e3 / rec["T"]
            if "flops" in rec:
                rec["tflops"] = rec["flops"] / (rec["ms"] * 1e-3) / 1e12
                if rate.get(rec["rate_kind"]):
                    rec["matrix_tflops"] = rate[rec["rate_kind"]]
                    rec["frac_of_matrix_rate"] = rec["tflops"] / rate[rec["rate_kind"]]
        rec["kind"] = "record"
        out.write(rec)
        if "ms" in rec:
            print(f"  {rec['name']:<30} B={rec['B']:<5} T={rec['T']:<5} H={rec['H']:<4} {rec['ms']:9.3f} ms "
                  f"{rec['per_step_us']:8.2f} us/step {rec.get('tflops', 0):7.2f} TFLOP/s"
                  + (f" ({100 * rec['frac_of_matrix_rate']:.1f}% of {rec['rate_kind']} mm)" if "frac_of_matrix_rate" in rec else ""),
                  flush=True)
        else:
            print(f"  {rec['name']:<30} B={rec['B']} T={rec['T']} H={rec['H']}: {rec.get('error') or rec.get('skipped')}",
                  flush=True)

    cases = []
    for (B, T, H) in shapes:
        for mode in ("fwd", "fwd_bwd"):
            for impl, var, dt, tf32, mma, rk in MODEL_VARIANTS:
                if dev != "cuda" and (dt == torch.bfloat16 or impl == "cudnn" and tf32):
                    continue  # the CPU kernel is fp32 / fp64; TF32 is a GPU mode
                cases.append(("model", B, T, H, mode, impl, var, dt, tf32, mma, rk))
        if dev == "cuda":
            for var, dt, mma, rk in (("fp32", torch.float32, "1", "fp32"), ("bf16", torch.bfloat16, "1", "bf16"),
                                     ("bf16_ffma", torch.bfloat16, "0", "bf16")):
                cases.append(("kernel", B, T, H, "fwd+bwd", "kernel", var, dt, False, mma, rk))

    for (what, B, T, H, mode, impl, var, dt, tf32, mma, rk) in cases:
        name = f"{impl} {var} {mode}" if what == "model" else f"kernel {var}"
        if only is not None and name not in only:
            continue
        cmd = f"{base_cmd} --shapes {B}x{T}x{H} --only '{name}'"
        common = {"name": name, "impl": impl, "variant": var, "mode": mode, "B": B, "T": T, "H": H, "cmd": cmd}
        if time.monotonic() > t_end:
            record({**common, "skipped": "skipped: speed step budget spent"})
            continue
        os.environ["BSP_FAST_GRU_MMA"] = mma
        try:
            torch.manual_seed(0)
            if what == "model":
                if dev == "cuda":
                    torch.backends.cudnn.allow_tf32 = tf32
                model = (fused_model if impl == "fused" else cudnn_model)(H, dt, dev)
                codes = torch.randint(0, 4, (B, T), device=dev)
                x = torch.nn.functional.one_hot(codes, 4).to(dt)
                ms, reps = time_ms(step_fn(model, x, mode == "fwd_bwd"), dev)
                record({**common, "ms": ms, "reps": reps, "flops": model_flops(B, T, H, mode == "fwd_bwd"), "rate_kind": rk})
                del model, x
            else:
                from bsp_fast.gru import cuda_backend as cb

                gi = torch.randn(T, B, 6 * H, device=dev).to(dt)
                w_hh = ((torch.rand(2, 3 * H, H, device=dev) * 2 - 1) / H ** 0.5).to(dt)
                b_hh = torch.randn(2, 3 * H, device=dev) * 0.1
                h0 = torch.randn(2, B, H, device=dev) * 0.5
                y, saved = cb.forward(gi, w_hh, b_hh, h0)
                gy = torch.randn_like(y)
                flops = 2 * (2 * T * B * H * 3 * H)
                ms_f, reps = time_ms(lambda: cb.forward(gi, w_hh, b_hh, h0), dev)
                record({**common, "name": f"kernel fwd {var}", "mode": "fwd", "ms": ms_f, "reps": reps, "flops": flops,
                        "rate_kind": rk, "plan": cb.plan(dt, B, H)})
                ms_i, reps = time_ms(lambda: cb.forward_inference(gi, w_hh, b_hh, h0), dev)
                record({**common, "name": f"kernel fwd_inference {var}", "mode": "fwd", "ms": ms_i, "reps": reps,
                        "flops": flops, "rate_kind": rk, "plan": cb.plan(dt, B, H)})
                ms_b, reps = time_ms(lambda: cb.backward(gy, y, saved, w_hh, h0), dev)
                record({**common, "name": f"kernel bwd {var}", "mode": "bwd", "ms": ms_b, "reps": reps, "flops": flops,
                        "rate_kind": rk, "plan": cb.plan(dt, B, H, backward=True)})
                # the weight-gradient GEMMs after the backward kernel (docs/gpu-kernel-leads.md, lead 1)
                from bsp_fast.gru.op import recurrent_weight_grads

                g_gi, g_gh, _ = cb.backward(gy, y, saved, w_hh, h0)
                h0c = h0.to(g_gh.dtype)
                ms_w, reps = time_ms(lambda: recurrent_weight_grads(g_gh, y, h0c), dev)
                record({**common, "name": f"dW_hh gemm {var}", "mode": "bwd", "ms": ms_w, "reps": reps, "flops": flops,
                        "rate_kind": rk})
                del g_gi, g_gh
                del gi, y, saved, gy
        except Exception as exc:  # noqa: BLE001  (record it, go on)
            record({**common, "error": repr(exc)[:400]})
        finally:
            os.environ["BSP_FAST_GRU_MMA"] = "1"
            if dev == "cuda":
                torch.backends.cudnn.allow_tf32 = False
                torch.cuda.empty_cache()
    print("speed done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
