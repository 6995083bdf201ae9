"""FusedBiGRU on CUDA vs cuDNN nn.GRU (2-layer bidirectional, one-hot input of 4 channels).

    BSP_BENCH_GRU_JSON=out.json python -m pytest -q -s benchmarks/test_bench_gru_cuda.py

Shapes (B, T, H): (512, 400, 128), (4096, 400, 32), (512, 1000, 256); forward only (inference,
no_grad) and forward + backward (training step without the optimizer). Implementations:

- ``fused``      FusedBiGRU (bsp_fast.gru) in fp32 (exact FFMA), bf16 (tensor-core kernels for H <= 128)
                 and bf16_ffma (BSP_FAST_GRU_MMA=0: the bf16 FFMA kernels),
- ``cudnn``      nn.GRU fp32 with TF32 off, fp32 with TF32 on (cuDNN's best fp32 mode), and bf16
                 (whether bf16 reaches cuDNN in this torch build is recorded: a profiler looks for
                 cuDNN RNN kernels in one bf16 forward),
- ``kernel``     the CUDA recurrence alone (bsp_fast.gru.cuda_backend.forward / backward of one
                 layer, gi given), to separate the kernel from the model around it.

Each figure is the median of CUDA-event timings after warm-up. Reported per figure: ms, time per
recurrent step (ms / T), achieved FLOP/s (model FLOPs: input projections + recurrent matmuls, x3 for
forward + backward) and its fraction of the device's measured matrix rate for that dtype (a large
torch.mm). Without a GPU the module is skipped. With BSP_BENCH_GRU_JSON set the records are written
there as JSON. benchmarks/gpu_speed.py measures the same table step by step under a time budget
(the `speed` call of benchmarks/gpu_checks.py).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import pytest
import torch

pytestmark = [pytest.mark.cuda]
if not torch.cuda.is_available():  # pragma: no cover - CPU machines
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

DEV = "cuda"
SHAPES = [(512, 400, 128), (4096, 400, 32), (512, 1000, 256)]
LAYERS = 2
IN = 4
RECORDS: list[dict] = []
CMD = "python -m pytest -q -s benchmarks/test_bench_gru_cuda.py"


def cuda_ms(fn, warmup=2, reps=7) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def model_flops(B, T, H, fwd_bwd: bool) -> float:
    f = 0.0
    for layer in range(LAYERS):
        i = IN if layer == 0 else 2 * H
        f += 2 * (2 * T * B * i * 3 * H)  # input projections, both directions
        f += 2 * (2 * T * B * H * 3 * H)  # recurrent matmuls, both directions
    return f * (3 if fwd_bwd else 1)


_MATRIX_RATE: dict[str, float] = {}


def matrix_rate(kind: str) -> float:
    """Measured FLOP/s of a 8192^3 torch.mm: 'fp32' (TF32 off), 'tf32', 'bf16'."""
    if kind not in _MATRIX_RATE:
        dt = torch.bfloat16 if kind == "bf16" else torch.float32
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = kind == "tf32"
        n = 8192
        a = torch.randn(n, n, device=DEV, dtype=dt)
        b = torch.randn(n, n, device=DEV, dtype=dt)
        ms = cuda_ms(lambda: torch.mm(a, b), warmup=2, reps=5)
        torch.backends.cuda.matmul.allow_tf32 = old
        _MATRIX_RATE[kind] = 2 * n**3 / (ms * 1e-3)
        del a, b
    return _MATRIX_RATE[kind]


def bf16_reaches_cudnn() -> dict:
    gru = torch.nn.GRU(IN, 32, num_layers=1, bidirectional=True, batch_first=True).to(DEV, torch.bfloat16)
    x = torch.randn(8, 16, IN, device=DEV, dtype=torch.bfloat16)
    names: list[str] = []
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            gru(x)
            torch.cuda.synchronize()
        names = sorted({e.key for e in prof.key_averages()})
    except Exception as exc:  # profiler unavailable: keep the version evidence only
        names = [f"profiler failed: {exc!r}"]
    rnn_like = [n for n in names if any(s in n.lower() for s in ("cudnn", "rnn", "persist", "elemwise"))]
    return {
        "cudnn_version": torch.backends.cudnn.version(),
        "reaches_cudnn": any(("cudnn" in n.lower() or "rnn" in n.lower()) for n in names),
        "kernels": rnn_like[:12] or names[:12],
    }


def make_inputs(B, T, dt):
    codes = torch.randint(0, 4, (B, T), device=DEV)
    return torch.nn.functional.one_hot(codes, 4).to(dt)


def record(**kw):
    B, T, H = kw["B"], kw["T"], kw["H"]
    ms = kw["ms"]
    kw["per_step_us"] = ms * 1e3 / T
    if "flops" in kw:
        kw["tflops"] = kw["flops"] / (ms * 1e-3) / 1e12
        rate = matrix_rate(kw["rate_kind"])
        kw["matrix_tflops"] = rate / 1e12
        kw["frac_of_matrix_rate"] = kw["flops"] / (ms * 1e-3) / rate
    kw.setdefault("cmd", CMD)
    RECORDS.append(kw)
    print(f"  {kw['name']:<44} B={B:<5} T={T:<5} H={H:<4} {ms:9.3f} ms  {kw['per_step_us']:8.2f} us/step"
          + (f"  {kw['tflops']:7.2f} TFLOP/s ({100 * kw['frac_of_matrix_rate']:.1f}% of {kw['rate_kind']} mm)"
             if "tflops" in kw else ""), file=sys.stderr)


def run_model(model, x, fwd_bwd):
    if fwd_bwd:
        def step():
            for p in model.parameters():
                p.grad = None
            out, hn = model(x)
            (out.float().sum() + hn.float().sum()).backward()
    else:
        def step():
            with torch.no_grad():
                model(x)
    return step


def fused_model(H, dt):
    from bsp_fast.gru import FusedBiGRU

    return FusedBiGRU(IN, H, num_layers=LAYERS, batch_first=True).to(DEV, dt)


def cudnn_model(H, dt):
    return torch.nn.GRU(IN, H, num_layers=LAYERS, bidirectional=True, batch_first=True).to(DEV, dt)


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    meta = {
        "device": torch.cuda.get_device_name(),
        "capability": list(torch.cuda.get_device_capability()),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "matrix_tflops": {k: v / 1e12 for k, v in _MATRIX_RATE.items()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        meta["bf16_cudnn"] = bf16_reaches_cudnn()
    except Exception as exc:
        meta["bf16_cudnn"] = {"error": repr(exc)}
    try:
        import bsp_fast_gru_cuda as _gru_cuda

        meta["gru_cuda_runtime"] = _gru_cuda.runtime_version()
        meta["driver"] = _gru_cuda.driver_version()
    except Exception as exc:
        meta["gru_cuda_runtime"] = repr(exc)
    # ratios fused / cudnn for each (shape, mode)
    ratios = []
    by = {(r["B"], r["T"], r["H"], r.get("mode"), r["impl"], r.get("variant")): r for r in RECORDS if "ms" in r}
    for (B, T, H, mode, impl, var), r in by.items():
        if impl != "fused":
            continue
        for base in ("fp32_tf32_off", "fp32_tf32_on", "bf16"):
            b = by.get((B, T, H, mode, "cudnn", base))
            if b:
                ratios.append({"B": B, "T": T, "H": H, "mode": mode, "fused": var, "cudnn": base,
                               "speedup": b["ms"] / r["ms"]})
    out = {"meta": meta, "records": RECORDS, "speedups": ratios}
    path = os.environ.get("BSP_BENCH_GRU_JSON")
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    print("\nspeedups (cuDNN ms / fused ms):", file=sys.stderr)
    for s in ratios:
        print(f"  B={s['B']} T={s['T']} H={s['H']} {s['mode']:<7} fused {s['fused']:<5} vs cudnn {s['cudnn']:<14}"
              f" {s['speedup']:6.2f}x", file=sys.stderr)


VARIANTS = {
    # variant: (dtype, tf32 for cuDNN, matrix rate to compare with)
    "fp32_tf32_off": (torch.float32, False, "fp32"),
    "fp32_tf32_on": (torch.float32, True, "tf32"),
    "bf16": (torch.bfloat16, False, "bf16"),
}


def _measure_model(impl: str, label: str, var: str, mode: str, B: int, T: int, H: int, build, dt, rk: str) -> None:
    """Times one whole-model case and records it, or records (and prints) why it could not run."""
    name = f"{label} {var} {mode}"
    try:
        torch.manual_seed(0)
        model = build(H, dt)
        x = make_inputs(B, T, dt)
        ms = cuda_ms(run_model(model, x, mode == "fwd_bwd"))
        record(name=name, impl=impl, variant=var, mode=mode, B=B, T=T, H=H, ms=ms,
               flops=model_flops(B, T, H, mode == "fwd_bwd"), rate_kind=rk)
    except Exception as exc:
        RECORDS.append({"name": name, "impl": impl, "variant": var, "mode": mode, "B": B, "T": T, "H": H,
                        "error": repr(exc)[:500]})
        print(f"  {name} B={B} T={T} H={H}: {exc!r}", file=sys.stderr)


@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("B,T,H", SHAPES)
def test_bench_cudnn(B, T, H, mode):
    for var, (dt, tf32, rk) in VARIANTS.items():
        old = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = tf32
        try:
            _measure_model("cudnn", "cudnn nn.GRU", var, mode, B, T, H, cudnn_model, dt, rk)
        finally:
            torch.backends.cudnn.allow_tf32 = old
            torch.cuda.empty_cache()


@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("B,T,H", SHAPES)
def test_bench_fused(B, T, H, mode):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for var, dt, rk in (("fp32", torch.float32, "fp32"), ("bf16", torch.bfloat16, "bf16"),
                        ("bf16_ffma", torch.bfloat16, "bf16")):
        os.environ["BSP_FAST_GRU_MMA"] = "0" if var == "bf16_ffma" else "1"
        try:
            _measure_model("fused", "FusedBiGRU", var, mode, B, T, H, fused_model, dt, rk)
        finally:
            os.environ["BSP_FAST_GRU_MMA"] = "1"
            torch.cuda.empty_cache()


@pytest.mark.parametrize("B,T,H", SHAPES)
def test_bench_kernel_only(B, T, H):
    """One layer's recurrence (both directions), forward and backward kernels alone."""
    from bsp_fast.gru import cuda_backend as cb

    for var, dt, rk in (("fp32", torch.float32, "fp32"), ("bf16", torch.bfloat16, "bf16"),
                        ("bf16_ffma", torch.bfloat16, "bf16")):
        os.environ["BSP_FAST_GRU_MMA"] = "0" if var == "bf16_ffma" else "1"
        gi = torch.randn(T, B, 6 * H, device=DEV).to(dt)
        w_hh = (torch.rand(2, 3 * H, H, device=DEV) * 2 - 1) / H**0.5
        b_hh = torch.zeros(2, 3 * H, device=DEV)
        h0 = torch.zeros(2, B, H, device=DEV)
        y, saved = cb.forward(gi, w_hh, b_hh, h0)
        gy = torch.randn_like(y)
        flops = 2 * (2 * T * B * H * 3 * H)
        ms_f = cuda_ms(lambda: cb.forward(gi, w_hh, b_hh, h0))
        record(name=f"kernel fwd {var}", impl="kernel", variant=var, mode="fwd", B=B, T=T, H=H, ms=ms_f,
               flops=flops, rate_kind=rk, plan=cb.plan(dt, B, H))
        ms_b = cuda_ms(lambda: cb.backward(gy, y, saved, w_hh, h0))
        record(name=f"kernel bwd {var}", impl="kernel", variant=var, mode="bwd", B=B, T=T, H=H, ms=ms_b,
               flops=flops, rate_kind=rk, plan=cb.plan(dt, B, H, backward=True))
        del gi, y, saved, gy
        torch.cuda.empty_cache()
    os.environ["BSP_FAST_GRU_MMA"] = "1"
