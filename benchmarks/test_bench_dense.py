"""Scoring throughput of the default model: dense (2 hybrid-dense, one pass per stretch) against the
windowed default it replaced (5 occupancy hybrids, one 400 bp window per bin), side by side.

    pytest benchmarks/test_bench_dense.py -s -q

Measured through ``python -m bsp_fast.predict`` (FASTA -> TSV, output included) over the whole
built-in genome for the dense model, and over chr21 for the windowed one (it is ~50x slower),
both with the same torch threads. Weights are untrained: the cost of a pass does not depend on
them; a short warm-up command runs first. Also: the reverse-strand average's share of the dense
pass (``rc_average`` on vs off: the convolution is shared between the strands, the BiGRU and head
run twice), one member against the default's two, and a cuda case when a GPU is at hand. Targets: >= 20,000 bins/s on this CPU (floor
10,000); >= 2 M bins/s on one H100/H200.
"""

from __future__ import annotations

import gzip
import os
import time

import pytest
import torch

from bsp_fast import predict
from bsp_fast.checkpoint import atomic_save
from bsp_fast.models import build_model

RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def builtin():
    from bsp_fast.data.synthetic import ensure_builtin

    return ensure_builtin()


def _checkpoint(path, name: str, **options) -> str:
    torch.manual_seed(0)
    model = build_model(name, **options)
    atomic_save({"format": "bsp_fast.checkpoint", "version": 1, "kind": "best", "model_config": dict(model.config),
                 "model": model.state_dict(), "bin_size": 200}, path)
    return str(path)


def _predict(ckpt: str, builtin, out, extra=(), device="cpu") -> tuple[int, float]:
    argv = ["--checkpoint", ckpt, "--genome", str(builtin.fasta), "--out", str(out), "--no-progress",
            "--device", device, *extra]
    if os.environ.get("BSP_BENCH_THREADS"):
        argv += ["--threads", os.environ["BSP_BENCH_THREADS"]]
    t0 = time.perf_counter()
    assert predict.main(argv) == 0
    dt = time.perf_counter() - t0
    with (gzip.open(out, "rt") if str(out).endswith(".gz") else open(out)) as fh:
        n = sum(1 for _ in fh)
    return n, dt


def test_predict_dense_vs_windowed_cpu(benchmark, builtin, tmp_path):
    from bsp_fast.train import BUILTIN_DENSE_DEFAULTS

    k = BUILTIN_DENSE_DEFAULTS["members"]
    dense = _checkpoint(tmp_path / "dense.pt", "hybrid-dense", members=k)
    dense_fwd = _checkpoint(tmp_path / "dense_fwd.pt", "hybrid-dense", members=k, rc_average=False)
    dense1 = _checkpoint(tmp_path / "dense1.pt", "hybrid-dense")
    windowed = _checkpoint(tmp_path / "windowed.pt", "hybrid", head="occupancy", flank=100, members=5)
    holder = {}
    # warm-up (the genome's pages, torch's thread pool, allocator): otherwise the first command
    # measured, the default's, pays for them (~15 % of its time here)
    _predict(dense, builtin, tmp_path / "warm.tsv.gz", ["--chroms", "chr21"])

    def run():
        holder["dense"] = _predict(dense, builtin, tmp_path / "d.tsv.gz")

    benchmark.pedantic(run, rounds=1, iterations=1)
    n, dt = holder["dense"]
    RESULTS[f"predict hybrid-dense x {k} (the default), both strands, whole genome"] = n / dt
    n1, dt1 = _predict(dense_fwd, builtin, tmp_path / "f.tsv.gz")
    RESULTS[f"predict hybrid-dense x {k}, forward strand only"] = n1 / dt1
    n2, dt2 = _predict(dense1, builtin, tmp_path / "e.tsv.gz")
    RESULTS["predict hybrid-dense x 1, both strands"] = n2 / dt2
    nw, dtw = _predict(windowed, builtin, tmp_path / "w.tsv.gz", ["--chroms", "chr21"])
    RESULTS["predict hybrid occupancy x 5 (windowed, the earlier default), chr21"] = nw / dtw
    benchmark.extra_info.update({k: round(v) for k, v in RESULTS.items()})
    RESULTS["ratio dense / windowed"] = (n / dt) / (nw / dtw)
    RESULTS["strand average: cost of both strands / one strand"] = dt / dt1 * n1 / n
    assert n == n1 == n2 and n > 100_000


@pytest.mark.cuda
def test_predict_dense_cuda(benchmark, builtin, tmp_path):
    from bsp_fast.train import BUILTIN_DENSE_DEFAULTS

    dense = _checkpoint(tmp_path / "dense.pt", "hybrid-dense", members=BUILTIN_DENSE_DEFAULTS["members"])
    holder = {}

    def run():
        holder["r"] = _predict(dense, builtin, tmp_path / "d.tsv", ["--batch-size", "64"], device="cuda")

    benchmark.pedantic(run, rounds=1, iterations=1)
    n, dt = holder["r"]
    RESULTS[f"predict hybrid-dense, {torch.cuda.get_device_name()}, whole genome"] = n / dt


def teardown_module(module):
    if RESULTS:
        print(f"\n\ndense scoring ({torch.get_num_threads()} torch threads):")
        for name, v in RESULTS.items():
            print(f"  {name}: {v:,.2f}" if v < 100 else f"  {name}: {v:,.0f} bins/s")
