"""bsp_fast: transcription-factor binding prediction from DNA sequence, trained genome-wide, fast.

Public API: :class:`FusedBiGRU` (a drop-in for ``nn.GRU(bidirectional=True)``), the data layer in
:mod:`bsp_fast.data`, the models in :mod:`bsp_fast.models` and one module per command
(``train``, ``predict``, ``evaluate``, ``cv``, ``motifs``, ``explain``, ``gradients``).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["FusedBiGRU", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `import bsp_fast.data` does not pay for torch op registration.
    if name == "FusedBiGRU":
        from bsp_fast.gru import FusedBiGRU

        return FusedBiGRU
    raise AttributeError(f"module 'bsp_fast' has no attribute {name!r}")
