"""kill -9 then --resume, and Ctrl-C (SIGINT) saving a checkpoint, on a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import sys
import time

import pytest
import torch

from bsp_fast import train
from bsp_fast.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bsp_fast.data.synthetic import ensure_builtin

    b = ensure_builtin(tmp_path_factory.getbasetemp() / "bsp_fast_builtin", scale=0.05)
    return b, str(tmp_path_factory.getbasetemp() / "bsp_fast_genomes")


def _start(b, cache, out):
    argv = [sys.executable, "-m", "bsp_fast.train", "--genome", str(b.fasta), "--labels", str(b.labels),
            "--cell", b.cell, "--cache-dir", cache, "--model", "bigru-small", "--hidden", "8", "--region", "60",
            "--flank", "20", "--batch-size", "16", "--threads", "1", "--no-progress", "--steps", "100000",
            "--eval-every", "100000", "--checkpoint-minutes", "0.002", "--out", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tempfile.gettempdir())  # installed package


def _wait_for_checkpoint(proc, path, min_step=3, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        if path.exists():
            try:
                if load_checkpoint(path)["step"] >= min_step:
                    return
            except Exception:
                pass
        time.sleep(0.2)
    raise AssertionError("no checkpoint written")


def test_kill9_resume_and_ctrl_c(tiny, tmp_path):
    b, cache = tiny
    out = tmp_path / "run"
    proc = _start(b, cache, out)
    _wait_for_checkpoint(proc, out / "checkpoint.pt")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_checkpoint(out / "checkpoint.pt")["step"]  # intact after kill -9 (atomic writes)
    rc = train.main(["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", cache,
                     "--threads", "1", "--no-progress", "--resume", "--out", str(out), "--steps", str(step + 3)])
    assert rc == 0
    assert load_checkpoint(out / "checkpoint.pt")["step"] == step + 3
    assert (out / "metrics.json").is_file()



def test_ctrl_c_saves_checkpoint(tiny, tmp_path, capsys):
    """SIGINT to this process while train.main runs in it: stops at a step boundary, saves, exit 130."""
    import threading

    b, cache = tiny
    out = tmp_path / "ctrlc"
    path = out / "checkpoint.pt"

    def interrupt():
        t0 = time.time()
        while time.time() - t0 < 60:
            if path.exists():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the shell started this in the background
    threading.Thread(target=interrupt, daemon=True).start()
    rc = train.main(["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", cache,
                     "--model", "bigru-small", "--hidden", "8", "--region", "60", "--flank", "20",
                     "--batch-size", "16", "--threads", "1", "--no-progress", "--steps", "100000",
                     "--eval-every", "100000", "--checkpoint-minutes", "0.002", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 130, err
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    ck = load_checkpoint(path)
    assert ck["step"] >= 1 and ck["optimizer"] and ck["sampler"]["position"] >= 0
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_dense_kill9_mid_epoch_resume_is_exact(tiny, tmp_path):
    """hybrid-dense, killed (-9) mid-epoch after a checkpoint and resumed: the same weights as a run
    that was never stopped (stretch sampler position, RNG and optimizer state all restored)."""
    b, cache = tiny
    common = ["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", cache,
              "--model", "hybrid-dense", "--filters", "4", "--hidden", "8", "--bins-per-stretch", "6",
              "--batch-size", "4", "--threads", "1", "--no-progress", "--eval-every", "100000",
              "--lr-schedule", "constant"]
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "bsp_fast.train", *common, "--steps", "100000", "--checkpoint-minutes", "0.002",
            "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tempfile.gettempdir())
    _wait_for_checkpoint(proc, out / "checkpoint.pt", min_step=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = load_checkpoint(out / "checkpoint.pt")
    step = ck["step"]
    assert ck["sampler"]["kind"] == "stretches" and ck["sampler"]["position"] > 0  # mid-epoch
    target = step + 4
    # the kill -9'd run was set to 100000 steps (constant lr): resume it to `target` steps ...
    assert train.main(common + ["--resume", "--out", str(out), "--steps", str(target)]) == 0
    # ... and compare with a run that trained `target` steps without a stop
    ref = tmp_path / "ref"
    assert train.main(common + ["--steps", str(target), "--out", str(ref)]) == 0
    wa, wb = load_checkpoint(out / "checkpoint.pt")["model"], load_checkpoint(ref / "checkpoint.pt")["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
