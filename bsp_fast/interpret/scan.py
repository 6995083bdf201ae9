"""Motif hits in sequences with FIMO (memelite's implementation).

:func:`fimo_scan` scans sequences of any lengths (base codes, N allowed) in chunks of at most
``chunk_bases`` bases (memory bounded by the chunk: each chunk is one-hot encoded, N-padded to its
longest sequence, scanned, and hits running past a sequence's end dropped). Per hit: ``seq`` (the
sequence's name), ``motif``, ``start``, ``end`` (0-based, end exclusive, as in BED), ``strand``,
``score`` (log-odds, bits, memelite's), ``p_value`` (FIMO's), ``q_value``: Benjamini-Hochberg over
every window the motif was tested at (both strands of every position of every sequence), which
memelite does not compute. Only hits with ``p_value < threshold`` are reported; their ranks among
all tests are their ranks among the hits, so a q-value <= ``threshold`` is exact and a larger one
an upper bound (the unreported tests could only lower it towards ``threshold``).
"""

from __future__ import annotations

import warnings
from typing import Iterator, Sequence

import numpy as np

from bsp_fast.interpret import require

__all__ = ["fimo_scan", "HIT_COLUMNS"]

HIT_COLUMNS = ("seq", "motif", "start", "end", "strand", "score", "p_value", "q_value")


def _chunks(lengths: np.ndarray, chunk_bases: int) -> Iterator[np.ndarray]:
    """Indices of sequences, grouped by similar length, at most ~chunk_bases bases (padded) per group."""
    order = np.argsort(lengths, kind="stable")
    group: list[int] = []
    for i in order:
        if group and (len(group) + 1) * int(lengths[i]) > chunk_bases:
            yield np.asarray(group)
            group = []
        group.append(int(i))
    if group:
        yield np.asarray(group)


def fimo_scan(motifs: Sequence[tuple[str, np.ndarray]], names: Sequence[str], seqs: Sequence[np.ndarray],
              threshold: float = 1e-4, chunk_bases: int = 4_000_000) -> list[dict]:
    """FIMO hits (dicts with :data:`HIT_COLUMNS`) of ``motifs`` (``(id, ppm [width, 4])``) in the
    sequences ``seqs`` (base codes) named ``names``; sorted by p-value, then sequence and start."""
    memelite = require("memelite", "--scan (FIMO)")
    from bsp_fast.interpret.attributions import one_hot_codes
    from bsp_fast.interpret.matching import bh_qvalues

    if not 0 < threshold <= 1:
        raise ValueError(f"the p-value threshold must be in (0, 1], got {threshold}")
    pwms = {mid: np.ascontiguousarray(np.asarray(ppm, dtype=np.float64).T) for mid, ppm in motifs}
    widths = {mid: p.shape[1] for mid, p in pwms.items()}
    lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
    per_motif: dict[str, list[tuple]] = {mid: [] for mid in pwms}
    for idx in _chunks(lengths, chunk_bases):
        longest = int(lengths[idx].max())
        codes = np.full((len(idx), longest), 4, dtype=np.uint8)
        for r, i in enumerate(idx):
            codes[r, :lengths[i]] = seqs[i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = memelite.fimo(pwms, one_hot_codes(codes), threshold=threshold)
        for df in frames:
            for mname, srow, start, end, strand, score, p in zip(df["motif_name"], df["sequence_name"], df["start"],
                                                                  df["end"], df["strand"], df["score"], df["p-value"]):
                i = int(idx[int(srow)])
                if int(end) > lengths[i] or int(start) < 0:
                    continue  # runs into the N padding of a shorter sequence
                per_motif[str(mname)].append((names[i], str(mname), int(start), int(end), str(strand), float(score),
                                              float(p)))
    hits = []
    for mid, rows in per_motif.items():
        tests = 2 * int(np.clip(lengths - widths[mid] + 1, 0, None).sum())
        q = bh_qvalues(np.asarray([r[6] for r in rows]), tests)
        hits += [dict(zip(HIT_COLUMNS, r + (float(qv),))) for r, qv in zip(rows, q)]
    hits.sort(key=lambda h: (h["p_value"], str(h["seq"]), h["start"], h["motif"]))
    return hits
