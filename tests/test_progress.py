"""bsp_fast.progress: tqdm on a terminal, a few plain lines anywhere else."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from bsp_fast.progress import PlainProgress, progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_lines_every_tenth():
    buf, clock = io.StringIO(), Clock()
    bar = PlainProgress(total=1000, desc="predict", unit="bin", file=buf, clock=clock)
    for _ in range(1000):
        clock.t += 0.001
        bar.update(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10, lines  # one per 10 %, no extra line at close (nothing new since)
    assert "\r" not in buf.getvalue()
    assert lines[0].startswith("predict: 100/1,000 (10 %) bin, ") and "bin/s" in lines[0]
    assert lines[-1].startswith("predict: 1,000/1,000 (100 %)")


def test_plain_lines_every_interval_without_total():
    buf, clock = io.StringIO(), Clock()
    bar = PlainProgress(total=None, desc="train", unit="step", file=buf, clock=clock, interval=30)
    for _ in range(100):
        clock.t += 1.0
        bar.update(1)
        bar.set_postfix(loss="0.1234", seq_s="1,000")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4, lines  # at 30, 60, 90 s and the close at 100 s
    assert re.match(r"train: 30 step, 1\.0 step/s, 0:30 elapsed, loss=0\.1234, seq_s=1,000$", lines[0]), lines[0]
    assert lines[-1].startswith("train: 100 step")


def test_rate_and_eta_count_from_initial():
    buf, clock = io.StringIO(), Clock()
    bar = PlainProgress(total=200, initial=100, desc="train", unit="step", file=buf, clock=clock)
    clock.t = 10.0
    bar.update(20)  # 10 % of 200
    assert "2.0 step/s" in buf.getvalue() and "~0:40 left" in buf.getvalue()


def test_disabled_prints_nothing():
    buf = io.StringIO()
    with PlainProgress(total=10, file=buf, disable=True) as bar:
        for _ in range(10):
            bar.update()
    assert buf.getvalue() == ""


def test_progress_picks_plain_off_a_terminal():
    buf = io.StringIO()
    assert isinstance(progress(total=5, file=buf), PlainProgress)


def test_train_log_has_plain_lines_not_carriage_returns(tmp_path):
    """A command writing to a log file: a few plain lines, no carriage-return updates."""
    from bsp_fast.data.synthetic import ensure_builtin

    b = ensure_builtin(tmp_path / "builtin", scale=0.05)
    argv = ["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", str(tmp_path / "c"),
            "--model", "bigru-small", "--hidden", "8", "--region", "60", "--flank", "20", "--batch-size", "16",
            "--steps", "40", "--eval-every", "20", "--eval-batch-size", "512", "--threads", "1",
            "--out", str(tmp_path / "run")]
    with open(tmp_path / "log", "w") as log:
        res = subprocess.run([sys.executable, "-m", "bsp_fast.train", *argv], stderr=log, stdout=subprocess.PIPE,
                             text=True, cwd=tmp_path, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    text = (tmp_path / "log").read_text()
    assert res.returncode == 0, text[-2000:]
    assert "\r" not in text
    train_lines = [x for x in text.splitlines() if x.startswith("train: ")]
    assert 1 <= len(train_lines) <= 12, train_lines
    assert any("/40 (" in x and "step/s" in x for x in train_lines), train_lines
