#!/usr/bin/env python3
"""GPU checks of the CUDA bi-GRU that fit one short GPU loan (two calls of <= 7 minutes each).

Phases (run from the repository root; ``bash benchmarks/gpu_checks.sh PHASE`` is the same):

  prepare      on the CPU machine, before a GPU is lent: download the wheels the GPU machine lacks
               into .gpu_wheels/ (ignored) and record the git commit there. Builds nothing.
               --cpu-checks also runs here the CUDA tests that need no GPU (left out of call 1).
  correctness  call 1 on the GPU machine: build for sm_90 only with warnings as errors, the
               cuda-marked tests (minus the CPU-only ones), parity with cuDNN nn.GRU (fp32 and bf16),
               compute-sanitizer memcheck / racecheck (synccheck when time is left).
  speed        call 2: the speed table (FusedBiGRU vs cuDNN, TF32 off/on, bf16, forward and
               forward + backward, achieved FLOP/s vs the measured matrix rate, time per step) and
               the end-to-end train / predict throughput of ``bigru`` and the default model.
  merge        on the CPU machine, after a call: fold the returned files (``files_at``) into
               benchmarks/results/<date>-<gpu>.md / .json and unpack call 1's build for call 2.
  all          correctness then speed (a GPU box of one's own, no time cap).

Every step runs as a subprocess with its own time limit (the table ``STEPS`` below) inside the
phase's budget (``PHASE_BUDGET_S``), and when it ends -- passed, failed, timed out or skipped -- its
result is folded into the record and the record is rewritten at once into the output folder ($OUT
when set, else build/gpu_checks/out): ``<date>-<gpu>.json`` and ``.md``, plus ``gpu_checks-<phase>.log``
(every step's output, appended as each step ends). A run cut at its limit therefore still returns
every finished step; a failing step does not stop the next; a summary table is printed last.
Without a GPU every GPU step is recorded as "skipped: no GPU" (the dry run of
tests/test_gpu_checks.py). Exit status: 0 iff no step failed or timed out.

The device ``run`` tool (see README, section Benchmarks, **GPU**):
  call 1: bash benchmarks/gpu_checks.sh correctness     carry [".gpu_wheels"]                 timeout_s 420
  here:   python benchmarks/gpu_checks.py merge <files_at of call 1>
  call 2: bash benchmarks/gpu_checks.sh speed           carry [".gpu_wheels", ".gpu_build"]   timeout_s 420
  here:   python benchmarks/gpu_checks.py merge <files_at of call 2>; commit benchmarks/results/
Run `prepare` after the last commit (its commit.json names the commit in the record: no .git
travels; the record also holds the kernel sources' hashes, computed there). Call 2 also merges by itself into benchmarks/results/<date>-<gpu>.json when that file travels with
the working tree (``merge`` after call 1 writes it there, untracked files travel).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable or "python3"
SCHEMA = 1
WHEEL_DIR = ".gpu_wheels"      # carried: wheels + commit.json (written by `prepare`)
BUILD_DIR = ".gpu_build"       # carried into call 2: call 1's compiled modules (unpacked by `merge`)
BUILD_TGZ = "build-sm90.tgz"   # call 1 returns its compiled modules in this file of $OUT
NATIVE = ("bsp_fast_gru_cpu", "bsp_fast_codec", "bsp_fast_gru_cuda")
# What the GPU machine lacks (its image has torch, numpy, scikit-learn, matplotlib, pandas, tqdm,
# pytest, setuptools, pybind11, Cython; device README's KINDS.md): pyfaidx (a declared dependency,
# imported by nothing at run time today) and logomaker (imported by explain / motifs). Pure Python.
WHEELS = ("pyfaidx==0.9.0.3", "logomaker==0.8.7")
# CUDA tests that need no GPU (the kernels emulated on the CPU, nvcc -Werror for sm_90, launch plans):
# left out of the GPU call, run by `prepare --cpu-checks` here
CPU_ONLY_CUDA_TESTS = ("tests/test_gru_cuda_emu.py", "tests/test_cuda_compile.py", "tests/test_gru_cuda_plan.py",
                       "tests/test_gru_cuda_padding.py")
# what the end-to-end runs use: fixed small step counts so that they fit their budgets
E2E_STEPS = {"bigru": 300, "default": 150}
E2E_BATCH = {"bigru": 512, "default": 64}

# ---- the budget table (seconds; README's GPU section repeats it) ---------------------------------
# name, phases, timeout, expected on an H100/H200, needs a GPU, what it does
# Device time: machine start (~1-2 min) + call 1 + idle (30 s) + [a second start if the machine went back]
# + call 2 must stay inside the session's 15 minutes: 2 x 360 s of calls + starts + transfers ~ 14-15 min
# in the worst case, ~9-11 min as expected. The run tool's timeout_s (420) is only a backstop.
PHASE_BUDGET_S = {"correctness": 360, "speed": 360}
STEPS_TABLE = [
    # name          phases                     limit  expect gpu   what
    ("env",         ("correctness", "speed"),   20,    8,   False, "nvidia-smi, torch / CUDA / cuDNN / driver / nvcc versions, GPU properties"),
    ("wheels",      ("correctness", "speed"),   20,    4,   False, "pip install --no-index --target of .gpu_wheels/*.whl (PYTHONPATH)"),
    ("build",       ("correctness", "speed"),  100,   50,   True,  "BSP_FAST_CUDA_ARCH=9.0 BSP_FAST_CUDA_WERROR=1 setup.py build_ext --inplace -j (speed: call 1's build restored, ~2 s)"),
    ("tests",       ("correctness",),           75,   40,   True,  "pytest -m cuda tests/ (without the CPU-only emulator and nvcc tests)"),
    ("parity",      ("correctness",),           50,   25,   True,  "benchmarks/gpu_parity.py: FusedBiGRU vs cuDNN nn.GRU, fp32 and bf16, outputs / h_n / all grads"),
    ("memcheck",    ("correctness",),           45,   25,   True,  "compute-sanitizer --tool memcheck benchmarks/gpu_sanitize.py"),
    ("racecheck",   ("correctness",),           45,   25,   True,  "compute-sanitizer --tool racecheck benchmarks/gpu_sanitize.py"),
    ("synccheck",   ("correctness",),           30,   20,   True,  "compute-sanitizer --tool synccheck (only when the budget has room)"),
    ("data",        ("speed",),                 25,    8,   False, "the built-in data set (bsp_fast.data.synthetic.ensure_builtin)"),
    ("speed",       ("speed",),                140,  100,   True,  "benchmarks/gpu_speed.py: the speed table, records written as measured"),
    ("train-bigru", ("speed",),                 45,   30,   True,  f"python -m bsp_fast.train --model bigru --steps {E2E_STEPS['bigru']} --batch-size {E2E_BATCH['bigru']} --device cuda"),
    ("train-default", ("speed",),               60,   40,   True,  f"python -m bsp_fast.train --steps {E2E_STEPS['default']} --device cuda (the default model hybrid-dense; its test scoring gives dense bins/s)"),
    ("predict",     ("speed",),                 25,   12,   True,  "python -m bsp_fast.predict of the bigru run over the whole built-in genome (bins/s)"),
]
# below this many seconds left in the phase budget a step is not started
MIN_STEP_S = 8


@dataclass
class Step:
    name: str
    phases: tuple
    timeout: int
    expect: int
    gpu: bool
    what: str


STEPS = [Step(*row) for row in STEPS_TABLE]
STEP_BY_NAME = {s.name: s for s in STEPS}


def expected_s(phase: str) -> int:
    """Expected seconds of a phase (call 2's build is restored from call 1's: ~2 s)."""
    return sum((2 if (s.name == "build" and phase == "speed") else s.expect) for s in STEPS if phase in s.phases)


def budget_table_md() -> str:
    rows = ["| step | call | limit s | expected s (estimate, not yet measured) | GPU | what |", "|---|---|---|---|---|---|"]
    for s in STEPS:
        rows.append(f"| {s.name} | {'/'.join(s.phases)} | {s.timeout} | {s.expect} | {'yes' if s.gpu else 'no'} | {s.what} |")
    for ph, b in PHASE_BUDGET_S.items():
        rows.append(f"| (whole {ph} call) | {ph} | {b} | {expected_s(ph)} | | "
                    f"phase budget: no step starts or runs past it |")
    return "\n".join(rows)


# ---- small helpers --------------------------------------------------------------------------------

def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")


def slug_of(device: str | None) -> str:
    if not device:
        return "no-gpu"
    s = device.lower().replace("nvidia ", "")
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s or "gpu"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def sh(cmd: str, timeout: float = 20) -> str:
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        return (r.stdout + r.stderr).strip()
    except Exception as exc:  # noqa: BLE001
        return f"({exc!r})"


def git_info() -> dict:
    """The commit: from git where .git exists (not on the GPU machine: no .git travels), else from
    the commit.json that `prepare` wrote into .gpu_wheels/."""
    info: dict = {}
    if (ROOT / ".git").exists() and shutil.which("git"):
        head = sh(f"git -C {shlex.quote(str(ROOT))} rev-parse HEAD")
        if re.fullmatch(r"[0-9a-f]{40}", head):
            info["commit"] = head
            dirty = sh(f"git -C {shlex.quote(str(ROOT))} status --porcelain --untracked-files=no")
            info["dirty"] = bool(dirty.strip())
            info["from"] = "git"
    if not info:
        p = wheel_dir() / "commit.json"
        if p.exists():
            try:
                info = json.loads(p.read_text())
                info["from"] = f"{WHEEL_DIR}/commit.json (written by prepare)"
            except ValueError:
                pass
    try:
        sys.path.insert(0, str(ROOT))
        import build_support  # noqa: PLC0415

        info["source_hash"] = {n: build_support.source_hash(n, ROOT) for n in NATIVE}
    except Exception as exc:  # noqa: BLE001
        info["source_hash"] = repr(exc)
    finally:
        if sys.path and sys.path[0] == str(ROOT):
            sys.path.pop(0)
    return info


# ---- the record (one per date and GPU; the two calls merge into it) ----------------------------------

def new_record(phase: str) -> dict:
    return {"schema": SCHEMA, "date": today(), "gpu": None, "meta": {}, "calls": [], "steps": {},
            "budgets": {"phase_budget_s": PHASE_BUDGET_S,
                        "steps": [{"name": s.name, "phases": list(s.phases), "limit_s": s.timeout,
                                   "expect_s": s.expect, "gpu": s.gpu, "what": s.what} for s in STEPS]}}


def merge_records(base: dict, new: dict) -> dict:
    """``new`` folded into ``base``: a step (key phase:name) takes the later run's result; calls
    accumulate; meta keeps base's fields that ``new`` lacks. Idempotent (merging twice is a no-op)."""
    out = json.loads(json.dumps(base))
    out.setdefault("steps", {})
    out.setdefault("calls", [])
    for k, v in new.get("steps", {}).items():
        old = out["steps"].get(k)
        if old is None or (v.get("started") or "") >= (old.get("started") or ""):
            out["steps"][k] = v
    seen = {(c.get("phase"), c.get("started")) for c in out["calls"]}
    for c in new.get("calls", []):
        if (c.get("phase"), c.get("started")) not in seen:
            out["calls"].append(c)
    meta = dict(out.get("meta") or {})
    meta.update({k: v for k, v in (new.get("meta") or {}).items() if v not in (None, "", {}, [])})
    out["meta"] = meta
    for k in ("gpu", "date"):
        out[k] = out.get(k) or new.get(k)
    out["schema"] = SCHEMA
    out["budgets"] = new.get("budgets") or out.get("budgets")
    return out


def fmt(v, nd=2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    return str(v)


def render_md(rec: dict) -> str:
    m = rec.get("meta") or {}
    g = m.get("git") or {}
    L = [f"# CUDA bi-GRU checks on {m.get('device') or 'no GPU (dry run)'} ({rec.get('date')})", ""]
    L.append(f"- device: {m.get('device')}, capability {m.get('capability')}, {m.get('sm_count')} SMs, "
             f"{fmt(m.get('memory_gib'))} GiB; driver {m.get('driver')}")
    L.append(f"- torch {m.get('torch')}, CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, nvcc {m.get('nvcc')}, "
             f"Python {m.get('python')}, setuptools {m.get('setuptools')}")
    L.append(f"- compute-sanitizer: {m.get('compute_sanitizer')}")
    L.append(f"- git {g.get('commit')}" + (" (with uncommitted changes)" if g.get("dirty") else "")
             + f" [{g.get('from')}]; kernel sources {json.dumps(g.get('source_hash'))}")
    for c in rec.get("calls", []):
        L.append(f"- call `{c.get('cmd')}`: {c.get('started')} .. {c.get('finished')}, {fmt(c.get('seconds'), 1)} s"
                 f" (budget {c.get('budget_s')} s)")
    L += ["", "## Steps", "", "| call | step | status | s | limit s | note | command |", "|---|---|---|---|---|---|---|"]
    for k, s in rec.get("steps", {}).items():
        L.append(f"| {s.get('phase')} | {s.get('name')} | {s.get('status')} | {fmt(s.get('seconds'), 1)} | "
                 f"{s.get('limit_s')} | {str(s.get('note') or '')[:160]} | `{s.get('cmd') or ''}` |")
    steps = {s.get("name"): s for s in rec.get("steps", {}).values()}

    t = steps.get("tests")
    if t and t.get("results"):
        r = t["results"]
        L += ["", "## Tests", "", f"Command: `{t.get('cmd')}`", "", f"- {r.get('summary')}"]
        L += [f"- {x}" for x in r.get("failed", [])]

    p = steps.get("parity")
    if p and p.get("results"):
        r = p["results"]
        L += ["", "## Parity with cuDNN nn.GRU (2 layers, bidirectional)", "", f"Command: `{p.get('cmd')}`", "",
              "Tolerances: " + json.dumps(r.get("tolerances")), "",
              "| case | B | T | H | I | dtype | kernel | worst output err | worst grad err | worst tensor | pass |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in r.get("cases", []):
            if "error" in c:
                L.append(f"| {c.get('name')} | {c.get('B')} | {c.get('T')} | {c.get('H')} | {c.get('I')} | {c.get('dtype')} |"
                         f" {c.get('kernel')} | - | - | error: {c['error'][:120]} | no |")
                continue
            L.append(f"| {c.get('name')} | {c['B']} | {c['T']} | {c['H']} | {c['I']} | {c['dtype']} | {c.get('kernel')} | "
                     f"{fmt(c['worst_out'])} | {fmt(c['worst_grad'])} | {c.get('worst_tensor')} | "
                     f"{'yes' if c['ok'] else 'NO'} |")

    san = [steps[n] for n in ("memcheck", "racecheck", "synccheck") if n in steps]
    if san:
        L += ["", "## compute-sanitizer (small shapes, every kernel family)", ""]
        for s in san:
            note, stt = s.get("note") or "", s.get("status")
            L.append(f"- {s['name']}: " + (note if note.startswith(str(stt)) else f"{stt}: {note}") + f" (`{s.get('cmd')}`)")

    sp = steps.get("speed")
    if sp and sp.get("results"):
        r = sp["results"]
        L += ["", "## Speed (CUDA events, median)", "", f"Command: `{sp.get('cmd')}` (each row's own command in the .json)",
              "", "Measured ceilings: " + json.dumps(r.get("ceilings")), "",
              f"bf16 in cuDNN: {json.dumps(r.get('bf16_cudnn'))}", "",
              "| what | B | T | H | ms | us/step | TFLOP/s | % of matrix rate | note |", "|---|---|---|---|---|---|---|---|---|"]
        for x in r.get("records", []):
            if "ms" in x:
                L.append(f"| {x['name']} | {x['B']} | {x['T']} | {x['H']} | {x['ms']:.3f} | {x['per_step_us']:.2f} | "
                         f"{fmt(x.get('tflops'))} | {fmt(100 * x['frac_of_matrix_rate'], 1) if 'frac_of_matrix_rate' in x else '-'}"
                         f" ({x.get('rate_kind', '')}) | {json.dumps(x['plan']) if 'plan' in x else ''} |")
            else:
                L.append(f"| {x['name']} | {x.get('B')} | {x.get('T')} | {x.get('H')} | - | - | - | - | "
                         f"{(x.get('error') or x.get('skipped') or '')[:160]} |")
        if r.get("speedups"):
            L += ["", "Speedups (cuDNN ms / FusedBiGRU ms):", "", "| B | T | H | mode | fused | cuDNN | speedup |",
                  "|---|---|---|---|---|---|---|"]
            for s in r["speedups"]:
                L.append(f"| {s['B']} | {s['T']} | {s['H']} | {s['mode']} | {s['fused']} | {s['cudnn']} | {s['speedup']:.2f}x |")

    e2e = [steps[n] for n in ("train-bigru", "train-default", "predict") if n in steps and steps[n].get("results")]
    if e2e:
        L += ["", "## End to end (data loading included)", "", "| run | figure | value | command |", "|---|---|---|---|"]
        for s in e2e:
            for k, v in s["results"].items():
                if isinstance(v, (int, float)):
                    L.append(f"| {s['name']} | {k} | {fmt(v)} | `{s.get('cmd')}` |")
    L += ["", "## Budgets (seconds)", "", budget_table_md(), ""]
    return "\n".join(L) + "\n"


# ---- the step runner -------------------------------------------------------------------------------

class Runner:
    def __init__(self, phase: str, out_dir: Path, work: Path, budget_s: float, gpu: bool, env: dict,
                 record: dict, results_dir: Path | None, argv: list[str], only: set | None = None):
        self.phase, self.out_dir, self.work, self.gpu, self.env = phase, out_dir, work, gpu, env
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget_s
        self.budget_s = budget_s
        self.record = record
        self.results_dir = results_dir
        self.only = only
        self.log = out_dir / f"gpu_checks-{phase}.log"
        self.call = {"phase": phase, "cmd": " ".join(["python benchmarks/gpu_checks.py", *argv]), "started": now_iso(),
                     "budget_s": budget_s, "finished": None, "seconds": None}
        self.record["calls"].append(self.call)
        self.failed = False
        out_dir.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)

    # names of the record files
    def base(self) -> str:
        return f"{self.record['date']}-{self.record.get('gpu') or 'no-gpu'}"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def flush(self) -> None:
        """Rewrite the record (.json + .md) into the output folder (and benchmarks/results when asked)."""
        self.call["finished"] = now_iso()
        self.call["seconds"] = round(time.monotonic() - self.t0, 1)
        text = json.dumps(self.record, indent=1, sort_keys=False) + "\n"
        md = render_md(self.record)
        write_atomic(self.out_dir / f"{self.base()}.json", text)
        write_atomic(self.out_dir / f"{self.base()}.md", md)
        if self.results_dir is not None:
            write_atomic(self.results_dir / f"{self.base()}.json", text)
            write_atomic(self.results_dir / f"{self.base()}.md", md)

    def _append_log(self, header: str, body: str) -> None:
        with open(self.log, "a") as f:
            f.write(f"\n===== {header}\n")
            if len(body) > 400_000:  # keep every file far under the run tool's 16 MiB
                body = body[:100_000] + "\n... [cut] ...\n" + body[-300_000:]
            f.write(body)
            if not body.endswith("\n"):
                f.write("\n")

    def skip(self, name: str, why: str, cmd: str = "") -> dict:
        return self.finish(name, {"status": "skipped", "note": why, "seconds": 0.0, "cmd": cmd})

    def finish(self, name: str, res: dict) -> dict:
        st = STEP_BY_NAME.get(name)
        res = {"phase": self.phase, "name": name, "limit_s": st.timeout if st else None,
               "started": res.pop("started", now_iso()), **res}
        self.record["steps"][f"{self.phase}:{name}"] = res
        if res["status"] in ("failed", "timeout"):
            self.failed = True
        print(f"[gpu_checks] {self.phase}:{name}: {res['status']} in {fmt(res.get('seconds'), 1)} s"
              + (f" ({res['note']})" if res.get("note") else ""), flush=True)
        self.flush()
        return res

    def want(self, name: str) -> bool:
        return self.only is None or name in self.only or name == "env"

    def run(self, name: str, argv: list[str], *, timeout: float | None = None, env: dict | None = None,
            parse=None, needs_gpu: bool | None = None, cwd: Path | None = None, display: str | None = None) -> dict | None:
        """Run one step as a subprocess (own process group) under min(its limit, what the phase has left).

        ``parse(rc, output) -> (status or None, note, results)`` turns its output into results; it is
        called for a timed-out step too (partial results: JSON lines written as measured)."""
        st = STEP_BY_NAME.get(name)
        cmd = (display or " ".join(shlex.quote(a) for a in argv)).replace(PY, "python3").replace(str(ROOT) + os.sep, "")
        if not self.want(name):
            return None
        gpu = st.gpu if needs_gpu is None and st else bool(needs_gpu)
        if gpu and not self.gpu:
            return self.skip(name, "skipped: no GPU", cmd)
        limit = min(timeout or (st.timeout if st else 60), self.left() - 2)
        if self.left() - 2 < MIN_STEP_S:
            return self.skip(name, f"skipped: phase budget spent ({self.budget_s:.0f} s)", cmd)
        started, t0 = now_iso(), time.monotonic()
        full_env = {**os.environ, **self.env, **(env or {})}
        print(f"[gpu_checks] {self.phase}:{name} (limit {limit:.0f} s): {cmd}", flush=True)
        timed_out = False
        try:
            p = subprocess.Popen(argv, cwd=str(cwd or ROOT), env=full_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        except OSError as exc:
            out, rc = f"could not start: {exc!r}", 127
        else:
            try:
                out, _ = p.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    out, _ = p.communicate(timeout=5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    out, _ = p.communicate()
            rc = p.returncode
        dt = time.monotonic() - t0
        out = out or ""
        self._append_log(f"{self.phase}:{name} rc={rc} {dt:.1f}s{' TIMEOUT' if timed_out else ''}: {cmd}", out)
        status = "timeout" if timed_out else ("passed" if rc == 0 else "failed")
        note, results = (f"killed at its limit of {limit:.0f} s" if timed_out else (f"rc={rc}" if rc else "")), None
        if parse is not None:
            try:
                pst, pnote, results = parse(rc, out)
                if pst and not timed_out:
                    status = pst
                if pnote:
                    note = (note + "; " if note else "") + pnote
            except Exception as exc:  # noqa: BLE001  (a parser bug must not lose the step)
                note = (note + "; " if note else "") + f"parse error {exc!r}"
        tail = out.strip().splitlines()[-15:]
        return self.finish(name, {"status": status, "seconds": round(dt, 1), "cmd": cmd, "started": started,
                                  "rc": rc, "note": note, "tail": tail, "results": results})

    def done(self) -> None:
        self.flush()
        steps = [s for k, s in self.record["steps"].items() if k.startswith(self.phase + ":")]
        print("\n[gpu_checks] summary of the " + self.phase + " call "
              f"({time.monotonic() - self.t0:.0f} s of {self.budget_s:.0f} s; results in {self.out_dir}/{self.base()}.md):")
        print(f"  {'step':<15} {'status':<9} {'s':>7} {'limit':>6}  note")
        for s in steps:
            print(f"  {s['name']:<15} {s['status']:<9} {fmt(s.get('seconds'), 1):>7} {str(s.get('limit_s')):>6}  "
                  f"{str(s.get('note') or '')[:90]}")
        print(f"[gpu_checks] {self.phase}: " + ("SOME STEPS FAILED" if self.failed else "no step failed"), flush=True)


# ---- parsers ----------------------------------------------------------------------------------------

def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list:
    rows = []
    try:
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # a line cut by a kill
    except OSError:
        pass
    return rows


def parse_pytest(rc: int, out: str):
    lines = out.strip().splitlines()
    summary = next((l.strip("= ").strip() for l in reversed(lines)
                    if re.search(r"\d+ (passed|failed|error|skipped|deselected)", l)), "no summary line")
    failed = [l for l in lines if l.startswith(("FAILED", "ERROR"))][:40]
    status = None
    if rc == 5:
        status = "failed"  # nothing collected: a GPU-only test file vanished
    return status, summary, {"summary": summary, "failed": failed, "rc": rc}


def parse_sanitizer(rc: int, out: str):
    low = out.lower()
    if "device not supported" in low or "not supported on this" in low or ("unsupported" in low and "error 999" in low):
        return "not supported here", "compute-sanitizer: device not supported here", {"supported": False}
    summ = [l.strip() for l in out.splitlines() if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
    done = "sanitize driver done" in out
    note = " | ".join(summ[-2:]) or "no summary line"
    status = None if done else ("failed" if rc == 0 else None)
    if not done and rc == 0:
        note += "; driver did not finish"
    return status, note, {"supported": True, "summary": summ[-4:], "driver_finished": done, "rc": rc}


# ---- phases -----------------------------------------------------------------------------------------

ENV_SCRIPT = r"""
import json, os, platform, shutil, subprocess, sys
info = {"python": platform.python_version(), "executable": sys.executable, "cpus": os.cpu_count()}
def run(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=15).stdout.strip()
    except Exception as exc:
        return repr(exc)
try:
    import setuptools; info["setuptools"] = setuptools.__version__
except Exception as exc:
    info["setuptools"] = repr(exc)
for mod in ("numpy", "pybind11", "Cython", "pytest", "sklearn", "matplotlib", "pandas", "tqdm", "pyfaidx", "logomaker"):
    try:
        info.setdefault("packages", {})[mod] = __import__(mod).__version__
    except Exception as exc:
        info.setdefault("packages", {})[mod] = None
import torch
info.update(torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
info["gpu"] = torch.cuda.is_available()
print("BSP_ENV_JSON " + json.dumps(info), flush=True)  # the GPU flag gets out even if a probe below breaks
if info["gpu"]:
    p = torch.cuda.get_device_properties(0)
    info.update(device=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                sm_count=p.multi_processor_count, memory_gib=round(p.total_memory / 2**30, 1),
                l2_mb=round(getattr(p, "L2_cache_size", 0) / 2**20, 1))
def line(text, pat):
    ls = [l.strip() for l in str(text).splitlines() if pat in l]
    return ls[-1] if ls else (str(text).strip().splitlines() or [None])[-1]
info["driver"] = line(run("nvidia-smi --query-gpu=driver_version --format=csv,noheader"), "") or None
nv = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
info["nvcc"] = line(run(f"{nv} --version"), "release") if nv else None
cs = shutil.which("compute-sanitizer") or ("/usr/local/cuda/bin/compute-sanitizer" if os.path.exists("/usr/local/cuda/bin/compute-sanitizer") else None)
info["compute_sanitizer_path"] = cs
info["compute_sanitizer"] = line(run(f"{cs} --version"), "ersion") if cs else None
print(run("nvidia-smi"))
print("BSP_ENV_JSON " + json.dumps(info))
"""


def step_env(r: Runner) -> dict:
    info: dict = {}

    def parse(rc, out):
        lines = [l for l in out.splitlines() if l.startswith("BSP_ENV_JSON ")]
        for line in lines:  # the last (complete) one wins; the first holds at least the GPU flag
            info.update(json.loads(line[len("BSP_ENV_JSON "):]))
        return (None if lines else "failed"), f"GPU: {info.get('device') or ('yes' if info.get('gpu') else 'none')}", info

    r.run("env", [PY, "-c", ENV_SCRIPT], display=f"{PY} -c <ENV_SCRIPT of gpu_checks.py> (nvidia-smi, versions)", parse=parse)
    return info


def wheel_dir() -> Path:
    return Path(os.environ.get("BSP_GPU_WHEEL_DIR") or ROOT / WHEEL_DIR)


def wheel_files() -> list[Path]:
    return sorted(wheel_dir().glob("*.whl"))


def step_wheels(r: Runner, site: Path) -> None:
    whls = wheel_files()
    if not whls:
        r.skip("wheels", f"no wheels in {WHEEL_DIR}/ (run `python benchmarks/gpu_checks.py prepare` before the call)")
        return
    argv = [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
            "--disable-pip-version-check", "--upgrade", "--find-links", str(wheel_dir()), "--target", str(site),
            *map(str, whls)]
    r.run("wheels", argv, parse=lambda rc, out: (None, f"{len(whls)} wheels into {site}",
                                                 {"wheels": [w.name for w in whls], "target": str(site)}))


def _native_fresh() -> dict:
    """Per compiled module in the repo root: whether it is there and built from these sources (a
    subprocess reads source_hash, so the driver never imports a CUDA module)."""
    code = ("import importlib, json, sys; sys.path.insert(0, sys.argv[1]); import build_support; r = {}\n"
            "for n in sys.argv[2:]:\n"
            "    try:\n"
            "        m = importlib.import_module(n); r[n] = getattr(m, 'source_hash', None) == build_support.source_hash(n, sys.argv[1])\n"
            "    except Exception as exc:\n"
            "        r[n] = False\n"
            "print(json.dumps(r))")
    try:
        res = subprocess.run([PY, "-c", code, str(ROOT), *NATIVE], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
        return json.loads(res.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        return {n: False for n in NATIVE}


def built_modules() -> list[Path]:
    """The compiled modules ``build_ext --inplace`` left in the repo root."""
    return [p for p in ROOT.glob("*.so") if p.name.split(".")[0] in NATIVE]


def restore_build(r: Runner) -> str:
    """Copy call 1's modules (.gpu_build/, carried) into the repo root unless fresh ones are there."""
    src = sorted((ROOT / BUILD_DIR).glob("*.so"))
    if not src:
        return "no carried build"
    copied = []
    for f in src:
        dst = ROOT / f.name
        if not dst.exists():
            shutil.copy2(f, dst)
            copied.append(f.name)
    return f"restored {len(copied)} modules from {BUILD_DIR}/" if copied else "modules already present"


def step_build(r: Runner) -> None:
    env = {"BSP_FAST_CUDA_ARCH": "9.0", "BSP_FAST_CUDA_WERROR": "1"}
    argv = [PY, "setup.py", "-q", "build_ext", "--inplace", "-j", str(max(1, min(16, os.cpu_count() or 1)))]
    display = "BSP_FAST_CUDA_ARCH=9.0 BSP_FAST_CUDA_WERROR=1 " + " ".join(["python3", *argv[1:]])
    if not r.want("build"):
        return
    if not r.gpu:
        r.skip("build", "skipped: no GPU", display)
        return
    note = restore_build(r) if r.phase != "correctness" else ""
    fresh = _native_fresh()
    if all(fresh.values()):
        r.finish("build", {"status": "passed", "seconds": 0.0, "cmd": display,
                           "note": (note + "; " if note else "") + "all modules fresh (source_hash matches): nothing to build",
                           "results": {"fresh": fresh}})
    else:
        def parse(rc, out):
            warn = len(re.findall(r"\bwarning\b", out, re.I))
            return None, f"{warn} warning lines", {"warning_lines": warn}

        r.run("build", argv, env=env, display=display, parse=parse)
        fresh = _native_fresh()
        res = r.record["steps"].get(f"{r.phase}:build")
        if res is not None:
            if not res.get("results"):
                res["results"] = {}
            res["results"]["fresh_after"] = fresh
            if res["status"] == "passed" and not all(fresh.values()):
                res["status"] = "failed"
                res["note"] = (res.get("note") or "") + f"; modules missing or stale after the build: {fresh}"
                r.failed = True
            r.flush()
    # call 1 sends its modules back so that call 2 need not rebuild (unpacked by `merge` into .gpu_build/)
    sos = built_modules()
    if r.phase == "correctness" and sos:
        with tarfile.open(r.out_dir / BUILD_TGZ, "w:gz") as tf:
            for p in sos:
                tf.add(p, arcname=p.name)


def step_tests(r: Runner, junit: Path) -> None:
    argv = [PY, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p", "no:cacheprovider", "tests",
            "--ignore=tests/test_gru_cuda_emu.py", "--ignore=tests/test_cuda_compile.py", f"--junitxml={junit}"]
    r.run("tests", argv, parse=parse_pytest,
          display="python3 -m pytest -q -rs -m cuda tests --ignore=tests/test_gru_cuda_emu.py --ignore=tests/test_cuda_compile.py")


def step_parity(r: Runner, device: str, quick: bool) -> None:
    js = r.work / "parity.json"
    argv = [PY, "benchmarks/gpu_parity.py", "--device", device, "--json", str(js)] + (["--quick"] if quick else [])

    def parse(rc, out):
        res = _read_json(js) or {}
        cases = res.get("cases", [])
        bad = [c["name"] for c in cases if not c.get("ok")]
        return ("failed" if bad else None), f"{len(cases) - len(bad)}/{len(cases)} cases within tolerance" + (
            f"; failing: {', '.join(bad[:6])}" if bad else ""), res

    r.run("parity", argv, parse=parse, needs_gpu=(device == "cuda"),
          display=f"python3 benchmarks/gpu_parity.py --device {device} --json <work>/parity.json" + (" --quick" if quick else ""))


def step_sanitizers(r: Runner, info: dict, device: str = "cuda") -> None:
    if device != "cuda":  # CPU smoke: the driver alone, without the tool
        r.run("memcheck", [PY, "benchmarks/gpu_sanitize.py", "--device", device], parse=parse_sanitizer, needs_gpu=False)
        r.skip("racecheck", "skipped: CPU smoke run")
        r.skip("synccheck", "skipped: CPU smoke run")
        return
    cs = info.get("compute_sanitizer_path") or shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    for tool in ("memcheck", "racecheck", "synccheck"):
        argv = [cs, "--tool", tool, "--error-exitcode", "7", "--print-limit", "20", PY, "benchmarks/gpu_sanitize.py"]
        display = f"compute-sanitizer --tool {tool} --error-exitcode 7 --print-limit 20 python3 benchmarks/gpu_sanitize.py"
        if r.gpu and r.want(tool) and not os.path.exists(cs) and not shutil.which(cs):
            r.finish(tool, {"status": "not supported here", "seconds": 0.0, "cmd": display,
                            "note": "compute-sanitizer not found on this machine"})
            continue
        st = STEP_BY_NAME[tool]
        if tool == "synccheck" and r.left() < st.timeout + 2:
            if r.want(tool):
                r.skip(tool, f"skipped: {r.left():.0f} s left, under its {st.timeout} s")
            continue
        r.run(tool, argv, parse=parse_sanitizer, display=display)


def step_data(r: Runner, cache: Path, scale: float) -> None:
    code = ("import sys; from bsp_fast.data.synthetic import ensure_builtin; "
            f"b = ensure_builtin(sys.argv[1]{'' if scale == 1 else f', scale={scale!r}'}); print('BSP_DATA', b.fasta)")
    r.run("data", [PY, "-c", code, str(cache)], display=f"python3 -c 'ensure_builtin({cache})'",
          parse=lambda rc, out: (None, "", {"fasta": next((l.split(None, 1)[1] for l in out.splitlines()
                                                          if l.startswith("BSP_DATA ")), None)}))


def step_speed(r: Runner, device: str, quick: bool) -> None:
    jl = r.work / "speed.jsonl"
    st = STEP_BY_NAME["speed"]
    limit = min(st.timeout, max(0.0, r.left() - 2))
    # the script stops starting cases ~10 s before the step's limit, so that its summary gets out
    argv = [PY, "benchmarks/gpu_speed.py", "--device", device, "--jsonl", str(jl), "--budget", f"{max(5.0, limit - 10):.0f}"]
    if quick:
        argv.append("--quick")

    def parse(rc, out):
        rows = _read_jsonl(jl)
        recs = [x for x in rows if x.get("kind") == "record"]
        res = {"records": recs,
               "ceilings": next((x["ceilings"] for x in rows if x.get("kind") == "ceilings"), None),
               "bf16_cudnn": next((x["bf16_cudnn"] for x in rows if x.get("kind") == "bf16_cudnn"), None),
               "speedups": speedups(recs)}
        n_ok = sum(1 for x in recs if "ms" in x)
        return None, f"{n_ok}/{len(recs)} figures measured", res

    r.run("speed", argv, parse=parse, needs_gpu=(device == "cuda"),
          display=f"python3 benchmarks/gpu_speed.py --device {device} --jsonl <work>/speed.jsonl --budget <limit - 10>"
          + (" --quick" if quick else ""))


def speedups(recs: list) -> list:
    by = {(x["B"], x["T"], x["H"], x.get("mode"), x.get("impl"), x.get("variant")): x for x in recs if "ms" in x}
    out = []
    for (B, T, H, mode, impl, var), x in by.items():
        if impl != "fused":
            continue
        for base in ("fp32_tf32_off", "fp32_tf32_on", "bf16"):
            b = by.get((B, T, H, mode, "cudnn", base))
            if b:
                out.append({"B": B, "T": T, "H": H, "mode": mode, "fused": var, "cudnn": base, "speedup": b["ms"] / x["ms"]})
    return out


def step_train(r: Runner, which: str, cache: Path, device: str, steps: int | None = None,
               extra: list | None = None) -> Path:
    run_dir = r.work / f"run-{which}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    n = steps or E2E_STEPS[which]
    argv = [PY, "-m", "bsp_fast.train", "--steps", str(n), "--device", device, "--cache-dir", str(cache),
            "--eval-every", str(10 * n), "--valid-max-bins", "2000", "--no-progress", "--out", str(run_dir),
            "--max-minutes", "10"]
    if which == "bigru":
        argv[3:3] = ["--model", "bigru", "--batch-size", str(E2E_BATCH["bigru"])]
    argv += extra or []

    def parse(rc, out):
        m = _read_json(run_dir / "metrics.json") or {}
        keep = {k: m.get(k) for k in ("train_sequences_per_second", "data_wait_fraction", "predict_bins_per_second")}
        keep.update(steps=n, batch=E2E_BATCH[which] if which == "bigru" else "default", model=m.get("model") or which)
        for k in ("test_auprc", "test_auroc", "steps_done"):
            if k in m:
                keep[k] = m[k]
        return (None if m else ("failed" if rc == 0 else None)), (
            f"{fmt(keep['train_sequences_per_second'])} seq/s" if m else "no metrics.json"), keep

    shown = " ".join(["python3", *argv[1:]]).replace(str(r.work), "<work>").replace(str(cache), "<cache>")
    r.run(f"train-{which}", argv, parse=parse, needs_gpu=(device == "cuda"), display=shown)
    return run_dir


def step_predict(r: Runner, run_dir: Path, cache: Path, device: str, extra: list | None = None) -> None:
    ck = run_dir / "checkpoint.pt"
    data = (r.record["steps"].get(f"{r.phase}:data") or {}).get("results") or {}
    fasta = Path(data.get("fasta") or cache / "builtin-v1" / "genome.fa")
    preds = r.work / "preds.tsv.gz"
    argv = [PY, "-m", "bsp_fast.predict", "--checkpoint", str(ck), "--genome", str(fasta), "--out", str(preds),
            "--no-progress", "--batch-size", "4096", "--device", device, "--cache-dir", str(cache), *(extra or [])]
    t = {}

    def parse(rc, out):
        import gzip  # noqa: PLC0415

        if rc != 0 or not preds.exists():
            return None, "no predictions", {}
        with gzip.open(preds, "rt") as f:
            n = sum(1 for line in f if line.strip() and not line.startswith(("#", "chrom")))
        dt = time.monotonic() - t["t0"]
        return None, f"{n / dt:,.0f} bins/s", {"bins": n, "seconds_with_startup": round(dt, 2), "bins_per_second": n / dt}

    if not ck.exists() and (r.gpu or device != "cuda") and r.want("predict"):
        r.skip("predict", "skipped: the bigru run left no checkpoint")
        return
    t["t0"] = time.monotonic()
    shown = " ".join(["python3", *argv[1:]]).replace(str(r.work), "<work>").replace(str(cache), "<cache>")
    r.run("predict", argv, parse=parse, needs_gpu=(device == "cuda"), display=shown)


def find_record(results_dir: Path, date: str, slug: str) -> dict | None:
    return _read_json(results_dir / f"{date}-{slug}.json")


def run_phase(args, phase: str) -> int:
    out_dir = Path(args.out or os.environ.get("OUT") or (ROOT / "build" / "gpu_checks" / "out")).resolve()
    work = Path(args.work or (ROOT / "build" / "gpu_checks" / "work")).resolve()
    site = work / "site"
    # results also go into benchmarks/results when run outside the device tool (no $OUT): a GPU box of one's own
    results_dir = Path(args.results_dir).resolve() if args.results_dir else (None if os.environ.get("OUT") or args.out else ROOT / "benchmarks" / "results")
    budget = args.budget if args.budget is not None else PHASE_BUDGET_S.get(phase, 360)
    record = new_record(phase)
    env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "BSP_FAST_CACHE": str(Path(args.cache_dir).resolve() if args.cache_dir else work / "cache")}
    only = set(args.only.split(",")) if args.only else None
    r = Runner(phase, out_dir, work, budget, gpu=False, env=env, record=record, results_dir=results_dir,
               argv=sys.argv[1:], only=only)
    if args.dry_run:
        r.env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU even where there is one
    info = step_env(r)  # always: it says whether there is a GPU
    if "gpu" not in info and not args.dry_run:  # the probe broke: ask nvidia-smi
        smi = sh("nvidia-smi -L")
        m = re.search(r"GPU 0: (.*?) \(UUID", smi)
        info.update(gpu=bool(m), device=m.group(1) if m else None)
    r.gpu = bool(info.get("gpu")) and not args.dry_run
    slug = slug_of(info.get("device") if r.gpu else None)
    record["gpu"] = slug
    record["meta"] = {k: info.get(k) for k in ("device", "capability", "sm_count", "memory_gib", "l2_mb", "driver",
                                               "torch", "cuda", "cudnn", "nvcc", "compute_sanitizer", "python",
                                               "setuptools", "cpus", "packages")}
    record["meta"]["git"] = git_info()
    # the record this call merges into: one of today's for this GPU that travelled with the tree
    prior = find_record(ROOT / "benchmarks" / "results", record["date"], slug) if not args.no_merge else None
    if prior:
        merged = merge_records(prior, record)
        record.clear()
        record.update(merged)
        r.call = next(c for c in record["calls"] if c.get("started") == r.call["started"] and c.get("phase") == phase)
        print(f"[gpu_checks] merging into benchmarks/results/{record['date']}-{slug}.json (travelled with the tree)")
    # the env step's entry was written before the merge: put it back
    r.flush()
    step_wheels(r, site)
    step_build(r)
    # a dry run leaves device "cuda": every GPU step is "skipped: no GPU"; --cpu-smoke runs them on the CPU
    smoke = args.cpu_smoke and not r.gpu
    dev = "cpu" if smoke else "cuda"
    quick = args.quick or smoke
    if phase == "correctness":
        if smoke:
            r.skip("tests", "skipped: CPU smoke run (CI runs the CPU tests)")
        else:
            step_tests(r, work / "tests.xml")
        step_parity(r, dev, quick)
        step_sanitizers(r, info, dev)
    elif phase == "speed":
        cache = Path(args.cache_dir).resolve() if args.cache_dir else work / "cache"
        step_data(r, cache, args.data_scale)
        step_speed(r, dev, quick)
        # smoke: the same commands with a handful of steps, one ensemble member, one test chromosome
        tiny = ["--members", "1", "--test-chroms", "chr21", "--batch-size", "16"] if smoke else []
        run_dir = step_train(r, "bigru", cache, dev, steps=3 if smoke else None,
                             extra=tiny + ["--model", "bigru-small"] if smoke else [])
        step_train(r, "default", cache, dev, steps=2 if smoke else None, extra=tiny)
        step_predict(r, run_dir, cache, dev, extra=["--chroms", "chr21"] if smoke else [])
    r.done()
    return 1 if r.failed else 0


def cmd_prepare(args) -> int:
    """CPU machine: wheels for the GPU machine (cp312, manylinux x86_64 or pure Python) + commit.json."""
    d = wheel_dir()
    d.mkdir(parents=True, exist_ok=True)
    info = git_info()
    info.pop("from", None)
    info["prepared"] = now_iso()
    write_atomic(d / "commit.json", json.dumps(info, indent=1) + "\n")
    print(f"[gpu_checks] prepare: {d}/commit.json: {info.get('commit')}{' (dirty)' if info.get('dirty') else ''}")
    rc_checks = 0
    if args.cpu_checks:
        # what the GPU call leaves out because it needs no GPU: run it here, before the loan
        argv = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CPU_ONLY_CUDA_TESTS, "tests/test_gpu_checks.py",
                "-m", "not slow"]
        print("[gpu_checks] prepare: CPU-only CUDA checks:", " ".join(["python", *argv[1:]]), flush=True)
        rc_checks = subprocess.call(argv, cwd=str(ROOT))
    if args.offline:
        print(f"[gpu_checks] prepare: --offline: no download; wheels present: {[w.name for w in wheel_files()]}")
        return rc_checks
    plats = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
    argv = [PY, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", *[a for p in plats for a in ("--platform", p)], "-d", str(d), *WHEELS]
    print("[gpu_checks] prepare:", " ".join(argv[1:]), flush=True)
    rc = subprocess.call(argv)
    # one version of each: two stop the whole install there
    names: dict[str, list[Path]] = {}
    for w in wheel_files():
        names.setdefault(w.name.split("-")[0].lower(), []).append(w)
    wanted = {w.split("==")[0].lower(): w.split("==")[1] for w in WHEELS}
    for n, ws in names.items():
        for w in ws:
            if n in wanted and w.name.split("-")[1] != wanted[n]:
                w.unlink()
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    print(f"[gpu_checks] prepare: {[w.name for w in wheel_files()]} ({total / 1024:.0f} KiB in {WHEEL_DIR}/); "
          f"carry: [\"{WHEEL_DIR}\"] (call 2 also \"{BUILD_DIR}\")")
    return rc or rc_checks


def cmd_merge(args) -> int:
    """CPU machine: fold returned files (dirs or .json files) into benchmarks/results/ and unpack call 1's build."""
    results_dir = Path(args.results_dir).resolve() if args.results_dir else ROOT / "benchmarks" / "results"
    srcs: list[Path] = []
    for a in args.paths:
        p = Path(a)
        srcs += [Path(x) for x in sorted(glob.glob(str(p / "**" / "*"), recursive=True))] if p.is_dir() else [p]
    n = 0
    for p in srcs:
        if p.name == BUILD_TGZ:
            dst = Path(args.build_dir).resolve() if args.build_dir else ROOT / BUILD_DIR
            if dst.exists():
                shutil.rmtree(dst)
            dst.mkdir()
            with tarfile.open(p) as tf:
                for m in tf.getmembers():
                    if m.isfile() and "/" not in m.name and m.name.endswith(".so"):
                        tf.extract(m, dst)
            print(f"[gpu_checks] merge: call 1's modules unpacked into {dst}/ (carry {BUILD_DIR} into call 2)")
        if p.suffix != ".json" or p.name.endswith(".tmp"):
            continue
        rec = _read_json(p)
        if not isinstance(rec, dict) or rec.get("schema") != SCHEMA or "steps" not in rec:
            continue
        target = results_dir / f"{rec['date']}-{rec.get('gpu') or 'no-gpu'}.json"
        base = _read_json(target) or {}
        merged = merge_records(base, rec) if base else rec
        write_atomic(target, json.dumps(merged, indent=1) + "\n")
        write_atomic(target.with_suffix(".md"), render_md(merged))
        n += 1
        print(f"[gpu_checks] merge: {p} -> {target} (+ .md)")
    if n == 0:
        print("[gpu_checks] merge: no record (.json of schema 1) found in", args.paths, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu_checks.py", description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=budget_table_md())
    ap.add_argument("phase", choices=("prepare", "correctness", "speed", "all", "merge", "budgets"))
    ap.add_argument("paths", nargs="*", help="merge: folders or .json files returned by a call (files_at)")
    ap.add_argument("--out", help="output folder (default $OUT, else build/gpu_checks/out)")
    ap.add_argument("--work", help="scratch folder (default build/gpu_checks/work)")
    ap.add_argument("--results-dir", help="also write the record here (default benchmarks/results when $OUT is unset)")
    ap.add_argument("--budget", type=float, help="seconds for the whole call (default: the phase's, 360)")
    ap.add_argument("--only", help="comma-separated step names to run (the others are left out)")
    ap.add_argument("--dry-run", action="store_true", help="run every step as if there were no GPU")
    ap.add_argument("--quick", action="store_true", help="parity / speed with their smallest case lists")
    ap.add_argument("--no-merge", action="store_true", help="do not merge into a record in benchmarks/results")
    ap.add_argument("--data-scale", type=float, default=1.0, help="size of the built-in data set (dry runs: small)")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="without a GPU: run the GPU steps' scripts on the CPU with tiny sizes (tests)")
    ap.add_argument("--cache-dir", help="speed: the built-in data set's cache (default <work>/cache)")
    ap.add_argument("--wheel-dir", help=f"prepare / wheels: the wheel folder (default {WHEEL_DIR}/)")
    ap.add_argument("--build-dir", help=f"merge: where call 1's modules are unpacked (default {BUILD_DIR}/)")
    ap.add_argument("--offline", action="store_true", help="prepare: no download (commit.json only)")
    ap.add_argument("--cpu-checks", action="store_true",
                    help="prepare: also run the CUDA tests that need no GPU (emulator, nvcc -Werror, plans) here")
    args = ap.parse_args(argv)
    if args.wheel_dir:
        os.environ["BSP_GPU_WHEEL_DIR"] = str(Path(args.wheel_dir).resolve())
    if args.phase == "budgets":
        print(budget_table_md())
        return 0
    if args.phase == "prepare":
        return cmd_prepare(args)
    if args.phase == "merge":
        return cmd_merge(args)
    if args.phase == "all":
        rc = run_phase(args, "correctness")
        return run_phase(args, "speed") or rc
    return run_phase(args, args.phase)


if __name__ == "__main__":
    sys.exit(main())
