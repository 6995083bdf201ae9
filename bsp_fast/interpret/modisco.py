"""Attributions -> motifs with TF-MoDISco (modisco-lite).

:func:`modisco_patterns` runs ``modiscolite.tfmodisco.TFMoDISco`` on one-hot sequences and
hypothetical attributions, both ``[N, 4, L]`` (bsp_fast's layout; modisco-lite's function takes
``[N, L, 4]``, its command line reads ``[N, 4, L]`` ``.npz`` files, as :func:`save_npz` writes them),
and returns the patterns as :class:`Pattern` (probability matrix, contribution matrix, seqlet count),
positive patterns first, each group in modisco's order (most seqlets first). Defaults suit a few
hundred windows; ``n_leiden`` runs of the Leiden clustering (modisco's default 50) trade time for
stability.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bsp_fast.interpret import require

__all__ = ["Pattern", "modisco_patterns", "save_npz", "trim"]


@dataclass
class Pattern:
    """A TF-MoDISco pattern: ``ppm`` [width, 4] (A C G T), ``contrib`` [width, 4], its seqlets."""

    id: str
    ppm: np.ndarray
    contrib: np.ndarray
    n_seqlets: int
    sign: str  # "pos" or "neg"


def trim(ppm: np.ndarray, contrib: np.ndarray, fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices trimmed to the columns between the first and last whose summed |contribution|
    reaches ``fraction`` of the largest (modisco-lite's report trims the same way)."""
    score = np.abs(contrib).sum(axis=1)
    keep = np.flatnonzero(score >= fraction * score.max()) if score.max() > 0 else np.arange(len(score))
    lo, hi = int(keep[0]), int(keep[-1]) + 1
    return ppm[lo:hi], contrib[lo:hi]


def save_npz(path_ohe: str | Path, path_attr: str | Path, ohe: np.ndarray, hypothetical: np.ndarray) -> None:
    """``ohe.npz`` and ``attr.npz`` (member ``arr_0``, [N, 4, L]) as ``modisco motifs -s ohe.npz -a attr.npz`` reads them."""
    np.savez_compressed(path_ohe, ohe.astype(np.float32))
    np.savez_compressed(path_attr, hypothetical.astype(np.float32))


def modisco_patterns(ohe: np.ndarray, hypothetical: np.ndarray, max_seqlets: int = 2000, window: int = 21,
                     flank: int = 10, n_leiden: int = 8, min_cluster: int = 20, verbose: bool = False) -> list[Pattern]:
    """TF-MoDISco patterns (see the module docstring) of ``ohe`` and ``hypothetical`` [N, 4, L]."""
    tfm = require("modiscolite.tfmodisco", "--modisco (TF-MoDISco)")
    if ohe.shape != hypothetical.shape or ohe.ndim != 3 or ohe.shape[1] != 4:
        raise ValueError(f"expected one-hot and attributions of one shape [N, 4, L], got {ohe.shape} and {hypothetical.shape}")
    if ohe.shape[2] < window + 2 * flank:
        raise ValueError(f"sequences of {ohe.shape[2]} bp are shorter than modisco's window + flanks ({window + 2 * flank} bp)")
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        pos, neg = tfm.TFMoDISco(one_hot=np.ascontiguousarray(ohe.transpose(0, 2, 1), dtype=np.float32),
                                 hypothetical_contribs=np.ascontiguousarray(hypothetical.transpose(0, 2, 1), dtype=np.float32),
                                 sliding_window_size=window, flank_size=flank, max_seqlets_per_metacluster=max_seqlets,
                                 n_leiden_runs=n_leiden, final_min_cluster_size=min_cluster, verbose=verbose)
    out = []
    for sign, group in (("pos", pos), ("neg", neg)):
        for i, p in enumerate(group or []):
            out.append(Pattern(f"{sign}_pattern_{i}", np.asarray(p.sequence, dtype=np.float64),
                               np.asarray(p.contrib_scores, dtype=np.float64), len(p.seqlets), sign))
    return out
