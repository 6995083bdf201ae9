"""Interpretation of trained models with the field's standard tools (gReLU / tangermeme style).

Small modules of pure functions over a model and one-hot inputs ``X`` [N, 4, L] (rows A, C, G, T;
an N base is an all-zero column) or base codes [N, L]:

- :mod:`~bsp_fast.interpret.attributions` -- in-silico mutagenesis (ours: exact, batched, N-aware),
  integrated gradients (captum), DeepLIFT/SHAP (tangermeme), and their completeness check
  (sum of attributions vs ``f(x) - f(reference)``).
- :mod:`~bsp_fast.interpret.matching` -- TomTom (memelite): learned vs known motifs, p- and q-values.
- :mod:`~bsp_fast.interpret.scan` -- FIMO (memelite): motif hits in sequences, p- and q-values.
- :mod:`~bsp_fast.interpret.modisco` -- TF-MoDISco (modisco-lite): attributions -> motifs.

The libraries are the ``interpret`` extra (``pip install "bsp_fast[interpret]"``: memelite,
tangermeme, captum, modisco-lite); each is imported only by the function that uses it, and a missing
one raises :class:`MissingExtra` (an ImportError) whose one-line message names the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA_HINT", "MissingExtra", "require"]

EXTRA_HINT = 'pip install "bsp_fast[interpret]"'

_DISTRIBUTIONS = {"memelite": "memelite", "captum": "captum", "tangermeme": "tangermeme", "modiscolite": "modisco-lite"}


class MissingExtra(ImportError):
    """An interpretation library of the ``interpret`` extra is not installed."""

    user_facing = True  # cli.guard prints it as one line, exit 2


def require(module: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtra` naming ``purpose`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist = _DISTRIBUTIONS.get(module.split(".")[0], module.split(".")[0])
        raise MissingExtra(f"{purpose} needs {dist}, part of the 'interpret' extra ({EXTRA_HINT}); "
                           f"import failed: {exc}") from None
