#!/usr/bin/env bash
# GPU checks of the CUDA bi-GRU in two calls of <= 7 minutes: a thin wrapper of benchmarks/gpu_checks.py.
#
#   bash benchmarks/gpu_checks.sh correctness   # call 1: sm_90 build (-Werror), cuda tests, parity, sanitizers
#   bash benchmarks/gpu_checks.sh speed         # call 2: speed table, end-to-end train / predict
#   python3 benchmarks/gpu_checks.py budgets    # the per-step time limits; --help for the rest
#
# Results: $OUT/<date>-<gpu>.md / .json (else build/gpu_checks/out and benchmarks/results/), rewritten
# after every step; merge them here with `python benchmarks/gpu_checks.py merge <files_at>`.
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python
exec "$PY" benchmarks/gpu_checks.py "$@"
