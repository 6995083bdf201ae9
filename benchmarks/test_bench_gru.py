"""FusedBiGRU vs nn.GRU(bidirectional=True) on CPU: training step and inference.

    pytest benchmarks/test_bench_gru.py

2 layers, one-hot DNA input (4 features): nn.GRU gets the float one-hot [B, T, 4], FusedBiGRU the
uint8 base codes [B, T] ("fused") and, for comparison, the same float one-hot ("fused_float").
Shapes (B, T, H): small = (64, 80, 32) (the thesis' small net), large = (32, 400, 128) (its large net).

- training step: zero_grad + forward + loss (mean of squared outputs) + backward + Adam step
  (torch.optim.Adam with its defaults, the same for both),
- inference: forward under torch.no_grad().

Threads: torch.get_num_threads() as set (BSP_BENCH_THREADS to override). Pairs share a
pytest-benchmark group (``train-small`` ...), so they print side by side; each test records
``seq_per_s`` in extra_info, and a summary with the ratios is printed at the end of the module.
Other processes on the machine move the absolute numbers: compare ratios from one run. Rounds:
BSP_BENCH_GRU_ROUNDS scales them (default 1.0).
"""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bsp_fast.gru import FusedBiGRU

SHAPES = {"small": (64, 80, 32), "large": (32, 400, 128)}
LAYERS = 2
# rounds per (shape, kind) for the fused op; nn.GRU gets fewer at the large shape (it is slow)
ROUNDS = {("small", "train"): 30, ("small", "infer"): 60, ("large", "train"): 5, ("large", "infer"): 10}
RESULTS: dict[tuple[str, str, str], float] = {}

if os.environ.get("BSP_BENCH_THREADS"):
    torch.set_num_threads(int(os.environ["BSP_BENCH_THREADS"]))


def _rounds(shape: str, kind: str, impl: str) -> int:
    n = ROUNDS[(shape, kind)]
    if impl == "nn" and shape == "large":
        n = max(2, n // 3)
    scale = float(os.environ.get("BSP_BENCH_GRU_ROUNDS", "1"))
    return max(1, round(n * scale))


def _make(impl: str, shape: str):
    B, T, H = SHAPES[shape]
    torch.manual_seed(0)
    codes = torch.randint(0, 4, (B, T), dtype=torch.uint8)
    onehot = F.one_hot(codes.long(), 4).float()
    ref = nn.GRU(4, H, LAYERS, batch_first=True, bidirectional=True)
    if impl == "nn":
        return ref, onehot
    fused = FusedBiGRU(4, H, LAYERS)
    fused.load_state_dict(ref.state_dict())
    return fused, (codes if impl == "fused" else onehot)


def step_flops(B: int, T: int, H: int, kind: str, layers: int = LAYERS, input_size: int = 4) -> float:
    """Multiply-adds x 2 that any exact GRU must do per step (one-hot layer-0 projection ignored).

    Forward: per layer and direction T x (B x H) @ (H x 3H) for the recurrence, and for layers > 0
    the input projection (B*T x 2H) @ (2H x 3H). Training adds, per GEMM, the two backward GEMMs
    (input gradient and weight gradient), i.e. 3x the forward work.
    """
    rec = layers * 2 * T * 2 * B * H * 3 * H
    proj = (layers - 1) * 2 * T * 2 * B * (2 * H) * 3 * H
    fwd = rec + proj
    return float(fwd if kind == "infer" else 3 * fwd)


def gemm_rate() -> float:
    """FLOP/s of one large float32 torch.mm here, now (about what a well-blocked GEMM reaches)."""
    a, b = torch.randn(1536, 1536), torch.randn(1536, 1536)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * 1536**3 / best


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    if not RESULTS:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    write = tr.write_line if tr is not None else print
    rate = gemm_rate()
    write("")
    write(f"==== FusedBiGRU vs nn.GRU, CPU, {torch.get_num_threads()} threads (sequences/s) ====")
    write(f"  (at mm rate: the step's GEMM FLOPs at the {rate / 1e9:.0f} GFLOP/s of one large torch.mm, measured"
          " now -- a rough bound; mm-rate/nn: what an implementation running every GEMM at that rate would gain)")
    for shape, (B, T, H) in SHAPES.items():
        for kind in ("train", "infer"):
            row = {impl: RESULTS.get((shape, kind, impl)) for impl in ("nn", "fused", "fused_float")}
            if row["nn"] is None:
                continue
            parts = [f"{impl} {v:9.1f}" for impl, v in row.items() if v is not None]
            ratios = [f"{impl}/nn {v / row['nn']:5.1f}x" for impl, v in row.items() if v is not None and impl != "nn"]
            bound_s = step_flops(B, T, H, kind) / rate
            best = B / bound_s
            write(f"  {kind:5s} {shape:5s} B={B:<3d} T={T:<3d} H={H:<3d} " + "  ".join(parts) + "   " + "  ".join(ratios)
                  + f"   at mm rate {bound_s * 1e3:.1f} ms = {best:9.1f} seq/s, mm-rate/nn {best / row['nn']:5.1f}x")


def _record(benchmark, shape, kind, impl):
    B = SHAPES[shape][0]
    seq_per_s = B / benchmark.stats.stats.mean
    benchmark.extra_info["seq_per_s"] = round(seq_per_s, 2)
    benchmark.extra_info["threads"] = torch.get_num_threads()
    RESULTS[(shape, kind, impl)] = seq_per_s


@pytest.mark.parametrize("impl", ["nn", "fused", "fused_float"])
@pytest.mark.parametrize("shape", ["small", "large"])
def test_train_step(benchmark, shape, impl):
    benchmark.group = f"train-{shape}"
    model, x = _make(impl, shape)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        out, hn = model(x)
        loss = out.square().mean() + hn.square().mean()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=_rounds(shape, "train", impl), warmup_rounds=1)
    _record(benchmark, shape, "train", impl)


@pytest.mark.parametrize("impl", ["nn", "fused", "fused_float"])
@pytest.mark.parametrize("shape", ["small", "large"])
def test_inference(benchmark, shape, impl):
    benchmark.group = f"infer-{shape}"
    model, x = _make(impl, shape)
    model.eval()

    def infer():
        with torch.no_grad():
            return model(x)

    benchmark.pedantic(infer, rounds=_rounds(shape, "infer", impl), warmup_rounds=1)
    _record(benchmark, shape, "infer", impl)
