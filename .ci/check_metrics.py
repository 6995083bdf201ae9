"""The default training run wrote metrics.json with finite auroc / auprc in [0, 1], and it learnt:
auPRC at least half the oracle's (the default run reaches ~0.94x on a quiet 2-core VM and ~0.9x where
the 3-minute clock stops it early; a run that learnt nothing scores about the prevalence, < 0.01)."""

import json
import math
import sys
from pathlib import Path

runs = sorted(Path(sys.argv[1]).glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
if not runs:
    sys.exit(f"ci: no {sys.argv[1]}/*/metrics.json: the README's first command wrote no metrics")
m = json.loads(runs[-1].read_text())
for key in ("auroc", "auprc"):
    v = m.get(key)
    if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
        sys.exit(f"ci: {runs[-1]}: {key} = {v!r}, expected a finite number in [0, 1]")
FLOOR = 0.5
oracle = m.get("oracle_auprc")
if not isinstance(oracle, (int, float)) or not math.isfinite(oracle) or not 0 < oracle <= 1:
    sys.exit(f"ci: {runs[-1]}: oracle_auprc = {oracle!r}, expected a number in (0, 1] (the built-in data set has an oracle)")
if m["auprc"] < FLOOR * oracle:
    sys.exit(f"ci: {runs[-1]}: auprc {m['auprc']:.4f} is under {FLOOR} x the oracle's {oracle:.4f}: the default run did not learn")
print(f"ci: {runs[-1]}: auroc {m['auroc']:.4f}, auprc {m['auprc']:.4f} "
      f"(oracle {oracle:.4f}), train {m.get('train_sequences_per_second', 0):,.0f} seq/s")
