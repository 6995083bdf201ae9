"""The data layer: genome codes and windows, bin labels, samplers and the built-in data set.

- :class:`Genome` — FASTA (plain/gzip/bgzip) -> cached, memory-mapped uint8 codes (A0 C1 G2 T3 N4);
  ``.codes`` / ``.one_hot`` extract batches of windows (N padding, reverse complement).
- :class:`BinLabels`, :class:`LabelTrack`, :func:`read_dream_labels`, :func:`labels_from_peaks` —
  ENCODE-DREAM label files and BED/narrowPeak peaks as per-chromosome bin arrays.
- :class:`ChromSplit`, :class:`BalancedSampler`, :class:`BinBatch`, :func:`eval_bins` (sampler.py)
  and :func:`ensure_builtin`, :class:`BuiltinData` (synthetic.py), imported lazily.
"""

from __future__ import annotations

from bsp_fast.data.genome import Genome
from bsp_fast.data.labels import BinLabels, LabelTrack, labels_from_peaks, read_dream_labels

__all__ = [
    "Genome", "BinLabels", "LabelTrack", "read_dream_labels", "labels_from_peaks",
    "ChromSplit", "BalancedSampler", "BinBatch", "eval_bins", "ensure_builtin", "BuiltinData",
]

_LAZY = {
    "ChromSplit": "sampler", "BalancedSampler": "sampler", "BinBatch": "sampler", "eval_bins": "sampler",
    "ensure_builtin": "synthetic", "BuiltinData": "synthetic",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'bsp_fast.data' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"bsp_fast.data.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
