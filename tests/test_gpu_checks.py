"""benchmarks/gpu_checks.py, the GPU-checks driver, without a GPU.

- ``test_gpu_checks_dry_run``: prepare (``--offline``: no download; a hand-made wheel stands in for
  the downloaded ones), the correctness and speed phases with ``--dry-run`` (every GPU step "skipped:
  no GPU"), and the merge of both calls' returned files -- the real argument parsing, step runner,
  incremental writing, merge and summary, in well under a minute.
- the step runner's time limits, the phase budget, and results written after every step.
- ``test_gpu_checks_cpu_smoke`` (slow): the GPU steps' own scripts (parity, speed, sanitize driver,
  train, predict) run on the CPU with tiny sizes through the driver (``--cpu-smoke``).
- ``test_build_with_oldest_setuptools`` (slow, needs the package index): pyproject.toml's
  ``setuptools>=61`` is honest: a fresh venv with setuptools 61.0 builds and installs the package.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "benchmarks" / "gpu_checks.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_checks", DRIVER)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_checks", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _tiny_wheel(d: Path) -> Path:
    """A minimal pure-Python wheel (what `prepare` downloads is the same kind of file)."""
    name = "bsp_gpu_probe-1.0-py3-none-any.whl"
    files = {"bsp_gpu_probe/__init__.py": b"VALUE = 42\n",
             "bsp_gpu_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bsp-gpu-probe\nVersion: 1.0\n",
             "bsp_gpu_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for n, b in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
        record.append(f"{n},sha256={h},{len(b)}")
    record.append("bsp_gpu_probe-1.0.dist-info/RECORD,,")
    p = d / name
    with zipfile.ZipFile(p, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
        z.writestr("bsp_gpu_probe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return p


def _driver(*args, env=None, timeout=120):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    e.pop("OUT", None)
    return subprocess.run([sys.executable, str(DRIVER), *args], cwd=str(ROOT), env=e, capture_output=True,
                          text=True, timeout=timeout)


def test_gpu_checks_dry_run(tmp_path):
    t0 = time.monotonic()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    common = ["--work", str(tmp_path / "work"), "--wheel-dir", str(wheels), "--no-merge"]

    r = _driver("prepare", "--offline", "--wheel-dir", str(wheels))
    assert r.returncode == 0, r.stdout + r.stderr
    commit = json.loads((wheels / "commit.json").read_text())
    assert "source_hash" in commit and set(commit["source_hash"]) >= {"bsp_fast_gru_cuda", "bsp_fast_gru_cpu"}

    outs = {}
    for phase in ("correctness", "speed"):
        out = tmp_path / f"out-{phase}"
        extra = ["--data-scale", "0.02", "--cache-dir", str(tmp_path / "cache")] if phase == "speed" else []
        r = _driver(phase, "--dry-run", "--out", str(out), *common, *extra)
        text = r.stdout + r.stderr
        assert r.returncode == 0, text
        assert "summary of the " + phase in text and "no step failed" in text
        # the output folder holds what the run tool brings back: the record (.json, .md) and the log
        names = sorted(p.name for p in out.iterdir())
        assert len(names) <= 8 and all(n.replace(".", "").replace("-", "").replace("_", "").isalnum() for n in names)
        recs = list(out.glob("*-no-gpu.json"))
        assert len(recs) == 1 and recs[0].with_suffix(".md").exists()
        assert (out / f"gpu_checks-{phase}.log").exists()
        rec = json.loads(recs[0].read_text())
        steps = {s["name"]: s for s in rec["steps"].values()}
        drv = _load()
        expect = [s.name for s in drv.STEPS if phase in s.phases]
        assert list(steps) == expect  # every step of the phase, in order
        for name, s in steps.items():
            if drv.STEP_BY_NAME[name].gpu:
                assert s["status"] == "skipped" and s["note"] == "skipped: no GPU", (name, s)
            else:
                assert s["status"] == "passed", (name, s)
        assert steps["wheels"]["results"]["wheels"] == ["bsp_gpu_probe-1.0-py3-none-any.whl"]
        assert (tmp_path / "work" / "site" / "bsp_gpu_probe" / "__init__.py").exists()
        assert rec["meta"]["git"].get("source_hash") and rec["meta"]["torch"]
        assert rec["calls"][0]["phase"] == phase and rec["calls"][0]["seconds"] is not None
        outs[phase] = out
    assert list((tmp_path / "cache").glob("builtin-v1*/genome.fa"))  # the data step ran for real

    # merge both calls' returned files (plus a build archive like call 1's) as on the CPU machine
    so = tmp_path / "bsp_fast_gru_cuda.cpython-312-x86_64-linux-gnu.so"
    so.write_bytes(b"\x7fELF")
    with tarfile.open(outs["correctness"] / "build-sm90.tgz", "w:gz") as tf:
        tf.add(so, arcname=so.name)
    res, build = tmp_path / "results", tmp_path / "gpu_build"
    for _ in range(2):  # merging twice changes nothing
        r = _driver("merge", str(outs["correctness"]), str(outs["speed"]), "--results-dir", str(res),
                    "--build-dir", str(build))
        assert r.returncode == 0, r.stdout + r.stderr
    assert (build / so.name).exists()
    merged = json.loads(next(res.glob("*-no-gpu.json")).read_text())
    keys = set(merged["steps"])
    assert {"correctness:tests", "correctness:racecheck", "speed:speed", "speed:train-default"} <= keys
    assert [c["phase"] for c in merged["calls"]] == ["correctness", "speed"]
    md = next(res.glob("*-no-gpu.md")).read_text()
    assert "## Steps" in md and "## Budgets" in md and "skipped: no GPU" in md
    assert time.monotonic() - t0 < 120  # ~15 s on an idle 2-core machine; the margin is for loaded CI hosts


def test_step_runner_limits_and_incremental_writes(tmp_path):
    drv = _load()
    rec = drv.new_record("correctness")
    r = drv.Runner("correctness", tmp_path / "out", tmp_path / "work", budget_s=40, gpu=True, env={}, record=rec,
                   results_dir=None, argv=["correctness"])
    py = sys.executable
    t0 = time.monotonic()
    res = r.run("tests", [py, "-c", "import time; print('started', flush=True); time.sleep(60)"], timeout=2,
                display="sleeper")
    assert res["status"] == "timeout" and time.monotonic() - t0 < 15
    assert res["tail"] == ["started"]  # output up to the kill is kept
    on_disk = json.loads((tmp_path / "out" / f"{r.base()}.json").read_text())
    assert on_disk["steps"]["correctness:tests"]["status"] == "timeout"  # written as soon as the step ended
    res = r.run("parity", [py, "-c", "import sys; sys.exit(3)"])
    assert res["status"] == "failed" and res["rc"] == 3
    res = r.run("memcheck", [py, "-c", "print('========= ERROR SUMMARY: 0 errors'); print('sanitize driver done')"],
                parse=drv.parse_sanitizer)
    assert res["status"] == "passed" and "0 errors" in res["note"]
    res = r.run("racecheck", [py, "-c", "print('========= Error: Device not supported'); raise SystemExit(1)"],
                parse=drv.parse_sanitizer)
    assert res["status"] == "not supported here"
    r.deadline = time.monotonic() + drv.MIN_STEP_S - 1  # the phase budget is spent: no step starts
    res = r.run("synccheck", [py, "-c", "pass"])
    assert res["status"] == "skipped" and "budget" in res["note"]
    assert r.failed
    r.done()
    log = (tmp_path / "out" / "gpu_checks-correctness.log").read_text()
    assert "TIMEOUT" in log and "sleeper" in log
    md = (tmp_path / "out" / f"{r.base()}.md").read_text()
    assert "not supported here" in md


def test_merge_records_and_budget_table():
    drv = _load()
    a = drv.new_record("correctness")
    a["steps"]["correctness:tests"] = {"phase": "correctness", "name": "tests", "status": "failed", "started": "2026-01-01T00:00:00Z"}
    a["calls"].append({"phase": "correctness", "started": "2026-01-01T00:00:00Z"})
    b = drv.new_record("speed")
    b["steps"]["speed:speed"] = {"phase": "speed", "name": "speed", "status": "passed", "started": "2026-01-01T00:10:00Z"}
    b["steps"]["correctness:tests"] = {"phase": "correctness", "name": "tests", "status": "passed", "started": "2026-01-01T00:09:00Z"}
    b["calls"].append({"phase": "speed", "started": "2026-01-01T00:10:00Z"})
    m = drv.merge_records(a, b)
    assert m["steps"]["correctness:tests"]["status"] == "passed"  # the later run wins
    assert drv.merge_records(m, b) == m and len(m["calls"]) == 2
    assert drv.merge_records(b, a)["steps"]["correctness:tests"]["status"] == "passed"
    # every phase's step limits fit its budget, which fits the run tool's 7 minutes
    for ph, budget in drv.PHASE_BUDGET_S.items():
        assert budget <= 420
        assert sum(s.expect for s in drv.STEPS if ph in s.phases) <= budget
    assert sum(s.timeout for s in drv.STEPS if "correctness" in s.phases) <= drv.PHASE_BUDGET_S["correctness"] + 30
    assert "| build |" in drv.budget_table_md()
    assert drv.slug_of("NVIDIA H200") == "h200" and drv.slug_of("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"


@pytest.mark.slow
def test_gpu_checks_cpu_smoke(tmp_path):
    """The GPU steps' scripts and parsers, run on the CPU through the driver with tiny sizes."""
    cache = Path.home() / ".cache" / "bsp_fast"
    cache = cache if (cache / "builtin-v1" / "genome.fa").exists() else tmp_path / "cache"
    for phase in ("correctness", "speed"):
        out = tmp_path / phase
        r = _driver(phase, "--cpu-smoke", "--out", str(out), "--work", str(tmp_path / "work"), "--no-merge",
                    "--cache-dir", str(cache), timeout=600)
        text = r.stdout + r.stderr
        assert r.returncode == 0, text
        rec = json.loads(next(out.glob("*.json")).read_text())
        steps = {s["name"]: s for s in rec["steps"].values()}
        if phase == "correctness":
            assert steps["parity"]["status"] == "passed" and steps["parity"]["results"]["cases"]
            assert steps["memcheck"]["status"] == "passed" and steps["memcheck"]["results"]["driver_finished"]
        else:
            assert steps["speed"]["status"] == "passed" and steps["speed"]["results"]["records"]
            assert steps["speed"]["results"]["ceilings"]["matrix_tflops_fp32"] > 0
            for n in ("train-bigru", "train-default"):
                assert steps[n]["status"] == "passed" and steps[n]["results"]["train_sequences_per_second"] > 0, steps[n]
            assert steps["predict"]["status"] == "passed" and steps["predict"]["results"]["bins"] > 0
            md = next(out.glob("*.md")).read_text()
            assert "## Speed" in md and "## End to end" in md


OLDEST_SETUPTOOLS = "61.0.0"


@pytest.mark.slow
def test_build_with_oldest_setuptools(tmp_path):
    """A fresh venv with the oldest setuptools pyproject.toml admits builds and installs the package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    r = subprocess.run([*pip, "install", "-q", f"setuptools=={OLDEST_SETUPTOOLS}", "wheel", "pybind11", "Cython", "numpy"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        if any(s in r.stdout + r.stderr for s in ("No matching distribution", "Could not find a version",
                                                   "Failed to establish", "Network is unreachable")):
            pytest.skip(f"setuptools=={OLDEST_SETUPTOOLS} not installable here (offline?): {r.stderr.strip()[-300:]}")
        raise AssertionError(r.stdout + r.stderr)
    src = tmp_path / "src"
    src.mkdir()
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        p = ROOT / f.decode()
        if p.is_file():
            (src / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            (src / f.decode()).write_bytes(p.read_bytes())
    env = {**os.environ, "BSP_FAST_NO_CUDA": "1"}
    r = subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", "--target", str(tmp_path / "site"), "."],
                       cwd=src, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    site = tmp_path / "site"
    assert list(site.glob("bsp_fast_gru_cpu*.so")) and list(site.glob("bsp_fast_codec*.so"))
    meta = next(site.glob("bsp_fast-*.dist-info")) / "METADATA"
    assert "License: MIT" in meta.read_text()


def test_gpu_only_paths_with_a_pretend_gpu(tmp_path, monkeypatch):
    """The steps that run only where there is a GPU, with the GPU flag forced on: the build step's
    fresh-module check and the archive call 2 takes along, the sanitizer commands and their parsing
    (a stand-in compute-sanitizer), and the real pytest command of the tests step (here every cuda
    test is skipped or deselected)."""
    drv = _load()
    r = drv.Runner("correctness", tmp_path / "out", tmp_path / "work", budget_s=300, gpu=True,
                   env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, record=drv.new_record("correctness"),
                   results_dir=None, argv=["correctness"])
    monkeypatch.setattr(drv, "_native_fresh", lambda: {n: True for n in drv.NATIVE})
    # stand-ins for what build_ext --inplace leaves in the root (a clean clone with an installed package has none)
    stand_ins = []
    for n in drv.NATIVE:
        f = tmp_path / "root" / f"{n}.cpython-312-x86_64-linux-gnu.so"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"\x7fELF stand-in")
        stand_ins.append(f)
    monkeypatch.setattr(drv, "built_modules", lambda: stand_ins)
    drv.step_build(r)
    b = r.record["steps"]["correctness:build"]
    assert b["status"] == "passed" and "nothing to build" in b["note"] and "BSP_FAST_CUDA_ARCH=9.0" in b["cmd"]
    with tarfile.open(tmp_path / "out" / drv.BUILD_TGZ) as tf:
        assert any(n.startswith("bsp_fast_gru_cpu") for n in tf.getnames())

    fake = tmp_path / "compute-sanitizer"
    fake.write_text("#!/bin/sh\n"
                    "if [ \"$2\" = racecheck ]; then echo '========= Error: Device not supported'; exit 1; fi\n"
                    "echo \"tool $2\"; echo 'sanitize driver done'; echo '========= ERROR SUMMARY: 0 errors'\n")
    fake.chmod(0o755)
    drv.step_sanitizers(r, {"compute_sanitizer_path": str(fake)})
    st = {k.split(":")[1]: v for k, v in r.record["steps"].items()}
    assert st["memcheck"]["status"] == "passed" and "0 errors" in st["memcheck"]["note"]
    assert st["racecheck"]["status"] == "not supported here"
    assert st["synccheck"]["status"] == "passed"
    assert st["memcheck"]["cmd"].startswith("compute-sanitizer --tool memcheck") and "gpu_sanitize.py" in st["memcheck"]["cmd"]

    drv.step_tests(r, tmp_path / "work" / "tests.xml")
    t = r.record["steps"]["correctness:tests"]
    assert t["status"] == "passed", t
    assert "deselected" in t["results"]["summary"] or "skipped" in t["results"]["summary"]
    assert not r.failed
