"""End-to-end training and prediction throughput (data loading included).

    pytest benchmarks/test_bench_train.py -s --benchmark-columns=mean,rounds

- ``bigru-small`` (the thesis' small net: 20 + 40 + 20 = 80 bp, H=32) trained by
  ``python -m bsp_fast.train`` on the built-in genome on CPU: sequences/s as the run itself reports
  it (``metrics.json: train_sequences_per_second``: samples / seconds inside training steps,
  including the wait for the prefetching loader) and ``data_wait_fraction`` (share of step time
  spent waiting for data). Target >= 5,000/s on the 2-core CPU (the thesis laptop: ~256/s).
- ``bigru`` (400 bp, H=128) on one GPU (``cuda`` marker), target >= 100,000/s (the thesis: ~360/s on a P100).
- genome-wide prediction (``python -m bsp_fast.predict``): bins/s over the test chromosomes.

Settings by environment: ``BSP_BENCH_STEPS`` (default 300 CPU, 300 GPU), ``BSP_BENCH_BATCH``
(default 256 CPU, 512 GPU), ``BSP_BENCH_THREADS`` (torch threads, default torch's).
"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from bsp_fast import predict, train

RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def builtin():
    from bsp_fast.data.synthetic import ensure_builtin

    return ensure_builtin()


def _train(tmp_path, model_args, steps, batch, device):
    out = tmp_path / "run"
    argv = [*model_args, "--steps", str(steps), "--batch-size", str(batch), "--device", device,
            "--eval-every", str(10 * steps), "--valid-max-bins", "2000", "--no-progress", "--out", str(out)]
    if os.environ.get("BSP_BENCH_THREADS"):
        argv += ["--threads", os.environ["BSP_BENCH_THREADS"]]
    assert train.main(argv) == 0
    return out, json.loads((out / "metrics.json").read_text())


def _bench_train(benchmark, tmp_path, model: str, batch_default: str, device: str, label: str, where: str):
    """One timed training run through the command; records seq/s, data wait and test predict bins/s."""
    steps = int(os.environ.get("BSP_BENCH_STEPS", "300"))
    batch = int(os.environ.get("BSP_BENCH_BATCH", batch_default))
    holder = {}

    def run():
        holder["out"], holder["m"] = _train(tmp_path, ["--model", model], steps, batch, device)

    benchmark.pedantic(run, rounds=1, iterations=1)
    m = holder["m"]
    benchmark.extra_info.update(sequences_per_s=m["train_sequences_per_second"],
                                data_wait_fraction=m["data_wait_fraction"], batch=batch, steps=steps, device=where,
                                threads=torch.get_num_threads())
    RESULTS[f"train {label}, {where}"] = {"seq/s": m["train_sequences_per_second"],
                                          "data wait": m["data_wait_fraction"], "batch": batch}
    RESULTS[f"predict ({model}), {where}, test chromosomes"] = {"bins/s": m["predict_bins_per_second"]}
    return holder["out"]


def test_train_bigru_small_80bp_cpu(benchmark, builtin, tmp_path):
    out = _bench_train(benchmark, tmp_path, "bigru-small", "256", "cpu", "bigru-small 80 bp", "CPU")

    # genome-wide prediction through the command (bins/s, streaming gzip output included)
    preds = tmp_path / "preds.tsv.gz"
    t0 = time.perf_counter()
    assert predict.main(["--checkpoint", str(out / "checkpoint.pt"), "--genome", str(builtin.fasta),
                         "--out", str(preds), "--no-progress", "--batch-size", "2048"]) == 0
    dt = time.perf_counter() - t0
    n = sum(1 for _ in __import__("gzip").open(preds, "rt"))
    RESULTS["predict command (bigru-small), CPU, whole genome"] = {"bins/s": n / dt, "bins": n}
    benchmark.extra_info["predict_bins_per_s"] = n / dt


@pytest.mark.cuda
def test_train_bigru_gpu(benchmark, builtin, tmp_path):
    _bench_train(benchmark, tmp_path, "bigru", "512", "cuda", "bigru 400 bp", torch.cuda.get_device_name())


def teardown_module(module):
    if RESULTS:
        print("\n\nend-to-end throughput (data loading included):")
        for name, vals in RESULTS.items():
            print(f"  {name}: " + ", ".join(
                f"{k} {v:,.0f}" if k not in ("data wait",) else f"{k} {v:.1%}" for k, v in vals.items()))
