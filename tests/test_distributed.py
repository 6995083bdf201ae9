"""torchrun data parallel on CPU (gloo, 2 processes): train, resume, sharded predict merged in genome order."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import tempfile
import sys

import pytest

from bsp_fast.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bsp_fast.data.synthetic import ensure_builtin

    root = tmp_path_factory.getbasetemp() / "bsp_fast_builtin"
    b = ensure_builtin(root, scale=0.05)
    return b, str(tmp_path_factory.getbasetemp() / "bsp_fast_genomes")


def torchrun(module, args, n=2, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port", "0",
           "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0", "-m", module, *args]
    # cwd outside the checkout: the child must import the installed package, not the source tree
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())


def test_ddp_train_resume_predict(tiny, tmp_path):
    b, cache = tiny
    out = tmp_path / "ddp"
    data = ["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", cache,
            "--no-progress", "--batch-size", "8", "--threads", "1"]
    model = ["--model", "bigru-small", "--hidden", "8", "--region", "60", "--flank", "20"]
    r = torchrun("bsp_fast.train", data + model + ["--steps", "4", "--eval-every", "2", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test auROC") == 1  # rank 0 alone reports
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 4 and ck["sampler"]["world_size"] == 2 and len(ck["rng_per_rank"]) == 2
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["world_size"] == 2
    assert m["n_pos"] == b.stats["splits"]["test"]["B"] and m["n_neg"] == b.stats["splits"]["test"]["U"]

    r = torchrun("bsp_fast.train", data + ["--steps", "7", "--resume", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stderr
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 7

    one, two = tmp_path / "one.tsv.gz", tmp_path / "two.tsv.gz"
    pred = ["--checkpoint", str(out / "checkpoint.pt"), "--genome", str(b.fasta), "--cache-dir", cache,
            "--chroms", "chr1,chr8,chr21", "--chunk", "500", "--no-progress", "--threads", "1"]
    r = torchrun("bsp_fast.predict", pred + ["--out", str(two)])
    assert r.returncode == 0, r.stderr[-3000:]
    from bsp_fast import predict

    assert predict.main(pred + ["--out", str(one)]) == 0
    with gzip.open(one, "rt") as f1, gzip.open(two, "rt") as f2:
        a, c = f1.read().splitlines(), f2.read().splitlines()
    assert len(a) == len(c) > 1000
    assert [x.split("\t")[:3] for x in a] == [x.split("\t")[:3] for x in c]  # merged in genome order
    for x, y in zip(a, c):
        assert float(x.split("\t")[3]) == pytest.approx(float(y.split("\t")[3]), rel=1e-4, abs=1e-6)

    # bigWig and narrowPeak: rank 0 replays the ranks' parts in genome order through the writers
    pytest.importorskip("pyBigWig")
    import pyBigWig

    bw2, pk2, bw1, pk1 = (tmp_path / n for n in ("two.bw", "two.narrowPeak", "one.bw", "one.narrowPeak"))
    thr = ["--threshold", "0.5"]
    r = torchrun("bsp_fast.predict", pred + ["--out", str(bw2), "--peaks-out", str(pk2), *thr])
    assert r.returncode == 0, r.stderr[-3000:]
    assert predict.main(pred + ["--out", str(bw1), "--peaks-out", str(pk1), *thr]) == 0
    assert [x.split("\t")[:3] for x in pk1.read_text().splitlines()] == \
        [x.split("\t")[:3] for x in pk2.read_text().splitlines()]
    f1, f2 = pyBigWig.open(str(bw1)), pyBigWig.open(str(bw2))
    for c in ("chr1", "chr8", "chr21"):
        i1, i2 = f1.intervals(c), f2.intervals(c)
        assert [x[:2] for x in i1] == [x[:2] for x in i2] and len(i1) > 100
        assert max(abs(x[2] - y[2]) for x, y in zip(i1, i2)) < 1e-4
    assert not list(tmp_path.glob(".two*"))  # no parts left behind
