"""The default training run wrote metrics.json with finite auroc / auprc in [0, 1]."""

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
print(f"ci: {runs[-1]}: auroc {m['auroc']:.4f}, auprc {m['auprc']:.4f} "
      f"(oracle {m.get('oracle_auprc', float('nan')):.4f}), train {m.get('train_sequences_per_second', 0):,.0f} seq/s")
