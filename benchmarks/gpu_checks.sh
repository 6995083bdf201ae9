#!/usr/bin/env bash
# GPU checks of the CUDA bi-GRU, from the repository root of a machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu_checks.sh                                  # all steps (about 10+ minutes)
#   STEPS=build,tests,sanitizers bash benchmarks/gpu_checks.sh      # first call on a 10-minute device slot
#   STEPS=build,bench bash benchmarks/gpu_checks.sh                 # second call
#
# Steps (comma-separated in $STEPS; default: env,build,tests,sanitizers,bench). "env" always runs,
# and the results files are always (re)written at the end:
#   env         nvidia-smi, torch / CUDA / cuDNN versions, nvcc, compute-sanitizer
#   build       BSP_FAST_CUDA_WERROR=1 BSP_FAST_CUDA_ARCH=<this GPU's cc> python3 setup.py build_ext --inplace
#   tests       python3 -m pytest -q -rs tests/test_gru_cuda.py tests/test_gru_cuda_emu.py
#                   tests/test_gru_cuda_plan.py tests/test_cuda_compile.py
#   sanitizers  compute-sanitizer --tool memcheck|racecheck|synccheck on small shapes of every kernel
#   bench       BSP_BENCH_GRU_JSON=... python3 -m pytest -q -s benchmarks/test_bench_gru_cuda.py
# Results: benchmarks/results/<date>-<gpu>.md and .json (device, torch, CUDA, cuDNN, driver, nvcc,
# git commit, the command of every step, test summary, sanitizer summaries, benchmark table). An
# existing .json of the same date and GPU is merged into (so two calls make one record: copy the
# first call's files into benchmarks/results/ before the second call). Logs: build/gpu_checks/...
# If $OUT is set (the device runner) the .md, the .json and a .tgz of the logs are copied there.
# Each step has a time limit ($STEP_TIMEOUT seconds, default 540). Exit status: 0 iff all steps passed.

set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python
STEPS=${STEPS:-env,build,tests,sanitizers,bench}
STEP_TIMEOUT=${STEP_TIMEOUT:-540}
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }

DATE=$(date -u +%Y-%m-%d)
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
SLUG=$(echo "${GPU:-unknown-gpu}" | tr 'A-Z' 'a-z' | sed -e 's/nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/^-//' -e 's/-$//')
RES=benchmarks/results
BASE="$RES/$DATE-$SLUG"
LOGDIR=${LOGDIR:-build/gpu_checks/$DATE-$SLUG}
mkdir -p "$LOGDIR" "$RES"
STATUS="$LOGDIR/status.txt"
touch "$STATUS"
FAILED=0

step() {  # step NAME CMD... : run with a time limit, log, record status and wall time
  local name=$1; shift
  local t0 rc dt
  t0=$(date +%s)
  echo "=== $name: $*" | tee -a "$LOGDIR/all.log"
  timeout "$STEP_TIMEOUT" "$@" >"$LOGDIR/$name.log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  tail -n 25 "$LOGDIR/$name.log" | tee -a "$LOGDIR/all.log"
  echo "$name rc=$rc seconds=$dt cmd=$*" | tee -a "$STATUS"
  [ $rc -eq 0 ] || FAILED=1
  return 0
}

# env (always)
step env bash -c "nvidia-smi; $PY -c 'import torch,sys; print(sys.version); print(\"torch\",torch.__version__,\"cuda\",torch.version.cuda,\"cudnn\",torch.backends.cudnn.version()); print(torch.cuda.get_device_name(), torch.cuda.get_device_capability())'; which nvcc; nvcc --version; which compute-sanitizer; $PY -c 'import pybind11, Cython, numpy; print(\"pybind11\", pybind11.__version__, \"Cython\", Cython.__version__, \"numpy\", numpy.__version__)'"

# build (this GPU's arch only, warnings as errors)
if has_step build; then
  CC=$($PY -c 'import torch; a,b=torch.cuda.get_device_capability(); print(f"{a}.{b}")' 2>/dev/null || echo 9.0)
  step build env BSP_FAST_CUDA_WERROR=1 BSP_FAST_CUDA_ARCH="$CC" "$PY" setup.py build_ext --inplace
fi

if has_step tests; then
  step tests "$PY" -m pytest -q -rs tests/test_gru_cuda.py tests/test_gru_cuda_emu.py tests/test_gru_cuda_plan.py \
    tests/test_cuda_compile.py
fi

if has_step sanitizers; then
  cat >"$LOGDIR/sanitize_driver.py" <<'EOF'
import os
import torch
from bsp_fast.gru import cuda_backend as cb
torch.manual_seed(0)
# (dtype, T, B, H, BSP_FAST_GRU_MMA): every kernel family, both W_hh paths, partial blocks
cases = [(torch.float32, 5, 11, 32, "1"), (torch.float32, 3, 19, 64, "1"), (torch.float32, 3, 3, 256, "1"),
         (torch.float32, 2, 9, 128, "1"), (torch.bfloat16, 4, 7, 64, "1"), (torch.bfloat16, 3, 21, 128, "1"),
         (torch.bfloat16, 3, 300, 32, "1"), (torch.bfloat16, 4, 7, 64, "0"), (torch.bfloat16, 2, 5, 256, "1"),
         (torch.float64, 3, 5, 32, "1")]
for dt, T, B, H, mma in cases:
    os.environ["BSP_FAST_GRU_MMA"] = mma
    acc = torch.float64 if dt == torch.float64 else torch.float32
    gi = torch.randn(T, B, 6 * H, device="cuda").to(dt)
    w = ((torch.rand(2, 3 * H, H, device="cuda") * 2 - 1) / H ** 0.5).to(dt)
    b = torch.randn(2, 3 * H, device="cuda", dtype=acc) * 0.1
    h0 = torch.randn(2, B, H, device="cuda", dtype=acc)
    y, s = cb.forward(gi, w, b, h0)
    yi = cb.forward_inference(gi, w, b, h0)
    g = cb.backward(torch.randn_like(y), y, s, w, h0)
    torch.cuda.synchronize()
    ok = all(torch.isfinite(t.float()).all().item() for t in (y, s, *g)) and torch.equal(yi, y)
    print(dt, T, B, H, "mma" if mma == "1" else "ffma", cb.plan(dt, B, H), cb.plan(dt, B, H, backward=True), "ok", ok)
    assert ok
print("sanitize driver done")
EOF
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in memcheck racecheck synccheck; do
    step "sanitizer-$tool" "$SAN" --tool "$tool" --error-exitcode 7 "$PY" "$LOGDIR/sanitize_driver.py"
  done
fi

BENCH_JSON="$LOGDIR/bench_gru_cuda.json"
if has_step bench; then
  step bench env BSP_BENCH_GRU_JSON="$BENCH_JSON" "$PY" -m pytest -q -s benchmarks/test_bench_gru_cuda.py
fi

# results files (always)
"$PY" - "$LOGDIR" "$BENCH_JSON" "$BASE" <<'EOF' 2>&1 | tee -a "$LOGDIR/all.log"
import json, os, re, subprocess, sys
logdir, bench_json, base = sys.argv[1:4]
import torch

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as exc:
        return repr(exc)

def tail(name, n=15):
    p = os.path.join(logdir, name + ".log")
    return open(p, errors="replace").read().splitlines()[-n:] if os.path.exists(p) else []

old = {}
if os.path.exists(base + ".json"):
    try:
        old = json.load(open(base + ".json"))
    except Exception:
        old = {}
steps = {}
for l in old.get("steps", []) + [l.strip() for l in open(os.path.join(logdir, "status.txt")) if l.strip()]:
    steps[l.split()[0]] = l  # latest line per step
meta = {
    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "capability": list(torch.cuda.get_device_capability()) if torch.cuda.is_available() else None,
    "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
    "driver": sh("nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1"),
    "nvcc": sh("nvcc --version | tail -2 | head -1"),
    "git": sh("git rev-parse HEAD 2>/dev/null") or None,
    "git_dirty": sh("git status --porcelain csrc bsp_fast/gru benchmarks tests 2>/dev/null")[:2000],
}
san = dict(old.get("sanitizers", {}))
for tool in ("memcheck", "racecheck", "synccheck"):
    lines = [l for l in tail("sanitizer-" + tool, 400) if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
    if os.path.exists(os.path.join(logdir, "sanitizer-" + tool + ".log")):
        san[tool] = " | ".join(lines[-2:]) if lines else "no summary line (see log)"
tests = [l for l in tail("tests", 60) if re.search(r"\d+ (passed|failed|error)", l)]
tests = tests[-1:] or old.get("tests", [])
failed_tests = [l for l in tail("tests", 400) if l.startswith(("FAILED", "ERROR"))][:40] or old.get("failed_tests", [])
bench = json.load(open(bench_json)) if os.path.exists(bench_json) else old.get("bench")
cmds = {
    "build": "BSP_FAST_CUDA_WERROR=1 BSP_FAST_CUDA_ARCH=<cc> python3 setup.py build_ext --inplace",
    "tests": "python3 -m pytest -q -rs tests/test_gru_cuda.py tests/test_gru_cuda_emu.py tests/test_gru_cuda_plan.py tests/test_cuda_compile.py",
    "sanitizers": "compute-sanitizer --tool {memcheck,racecheck,synccheck} --error-exitcode 7 python3 sanitize_driver.py (written by gpu_checks.sh)",
    "bench": "BSP_BENCH_GRU_JSON=<json> python3 -m pytest -q -s benchmarks/test_bench_gru_cuda.py",
    "all": "bash benchmarks/gpu_checks.sh  (or STEPS=build,tests,sanitizers / STEPS=build,bench)",
}
out = {"meta": meta, "steps": list(steps.values()), "tests": tests, "failed_tests": failed_tests,
       "sanitizers": san, "bench": bench, "commands": cmds}
with open(base + ".json", "w") as f:
    json.dump(out, f, indent=1)
md = [f"# CUDA bi-GRU checks on {meta['device']}", "",
      f"- torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, driver {meta['driver']}, {meta['nvcc']}",
      f"- git {meta['git']}" + (" (with uncommitted changes)" if meta["git_dirty"] else ""),
      f"- command: `{cmds['all']}`", "", "## Steps", ""]
md += [f"- `{s}`" for s in steps.values()]
md += ["", "## Tests", "", f"Command: `{cmds['tests']}`", ""] + [f"- {t}" for t in tests] + [f"- {t}" for t in failed_tests]
md += ["", "## compute-sanitizer (small shapes, every kernel)", "", f"Command: `{cmds['sanitizers']}`", ""]
md += [f"- {k}: {v}" for k, v in san.items()]
if bench:
    bm = bench["meta"]
    md += ["", "## Benchmarks", "", f"Command: `{cmds['bench']}`", "",
           "Matrix rates measured (8192^3 torch.mm, TFLOP/s): "
           + json.dumps({k: round(v, 1) for k, v in bm.get("matrix_tflops", {}).items()}),
           "", f"bf16 reaches cuDNN: {json.dumps(bm.get('bf16_cudnn'))}", "",
           "| what | B | T | H | ms | us/step | TFLOP/s | % of matrix rate | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in bench["records"]:
        if "ms" in r:
            md.append(f"| {r['name']} | {r['B']} | {r['T']} | {r['H']} | {r['ms']:.3f} | {r['per_step_us']:.2f} | "
                      f"{r.get('tflops', 0):.2f} | {100 * r.get('frac_of_matrix_rate', 0):.1f} ({r.get('rate_kind', '')}) | "
                      f"{json.dumps(r['plan']) if 'plan' in r else ''} |")
        else:
            md.append(f"| {r['name']} | {r['B']} | {r['T']} | {r['H']} | - | - | - | - | error: {r.get('error', '')[:160]} |")
    md += ["", "Speedups (cuDNN ms / FusedBiGRU ms):", "", "| B | T | H | mode | fused | cuDNN | speedup |",
           "|---|---|---|---|---|---|---|"]
    for s in bench["speedups"]:
        md.append(f"| {s['B']} | {s['T']} | {s['H']} | {s['mode']} | {s['fused']} | {s['cudnn']} | {s['speedup']:.2f}x |")
with open(base + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
print("wrote", base + ".md", base + ".json")
EOF

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$BASE.md" "$BASE.json" "$OUT/" 2>/dev/null
  tar czf "$OUT/gpu_checks_logs.tgz" -C "$(dirname "$LOGDIR")" "$(basename "$LOGDIR")" 2>/dev/null
fi
echo "gpu_checks: $( [ $FAILED -eq 0 ] && echo all steps passed || echo SOME STEPS FAILED ) (see $STATUS)"
exit $FAILED
