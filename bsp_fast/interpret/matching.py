"""Learned motifs against known ones with TomTom (memelite's implementation).

:func:`tomtom_matches` compares each query (a probability matrix ``[width, 4]``, A C G T columns)
with every target on both strands and returns, per query, the targets ranked by TomTom's p-value
(ties: higher score first, then the target id): ``p_value`` is TomTom's p-value of the best
alignment (complete score, Euclidean column distance, target columns as the background), ``score``
its statistic, ``q_value`` the Benjamini-Hochberg q-value over that query's p-values against all
targets, ``offset`` the query column where the known motif's first column sits (0-based; negative:
it starts before the query, bsp_fast's convention since the first matches.tsv), ``strand`` ``-``
when the known motif is reverse-complemented, ``overlap`` the aligned columns.

TomTom's p-values use the target columns as the background, so they depend on the target set;
with a handful of targets (memelite warns below 25) they are rough, and a full database (JASPAR
CORE) gives reliable ones. The first call in a fresh environment compiles memelite's numba kernels
(~40 s on a 2-core VM; cached in its ``__pycache__`` afterwards).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from bsp_fast.interpret import require

__all__ = ["tomtom_matches", "bh_qvalues"]


def bh_qvalues(p: np.ndarray, n_tests: int | None = None) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (over ``n_tests`` >= len(p) tests; the others' p-values
    are taken to be larger than every one given)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p) if n_tests is None else max(int(n_tests), len(p))
    if len(p) == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def tomtom_matches(queries: Sequence[tuple[str, np.ndarray]], targets: Sequence[Any],
                   top: int | None = None) -> list[list[dict[str, Any]]]:
    """Per query (``(id, ppm [width, 4])``), its matches to ``targets`` (``bsp_fast.motif_io.Motif``)
    best first: dicts ``rank known_id known_name score p_value q_value offset strand overlap``."""
    memelite = require("memelite", "matching motifs with TomTom (--known)")
    if not queries:
        return []
    Q = [np.ascontiguousarray(np.asarray(ppm, dtype=np.float64).T) for _, ppm in queries]
    T = [np.ascontiguousarray(t.probabilities().T) for t in targets]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*target motifs.*")  # few targets: documented above
        p, score, offset, overlap, strand = memelite.tomtom(Q, T)[:5]
    out = []
    for qi in range(len(Q)):
        q = bh_qvalues(p[qi])
        order = sorted(range(len(T)), key=lambda j: (p[qi, j], -score[qi, j], targets[j].id))
        rows = []
        for rank, j in enumerate(order[:top] if top else order, start=1):
            rows.append({"rank": rank, "known_id": targets[j].id, "known_name": targets[j].name,
                         "score": float(score[qi, j]), "p_value": float(p[qi, j]), "q_value": float(q[j]),
                         "offset": -int(offset[qi, j]), "strand": "-" if strand[qi, j] else "+",
                         "overlap": int(overlap[qi, j])})
        out.append(rows)
    return out
