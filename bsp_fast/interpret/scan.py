"""Motif hits in sequences with FIMO (memelite's implementation).

:func:`fimo_scan` scans records of any lengths (base codes, N allowed; a stream, e.g.
:func:`read_fasta_records`) in chunks of ~``chunk_bases`` bases: records are cut into overlapping
pieces (a chromosome too), pieces N-padded to the chunk's longest, one-hot encoded and scanned, and
hits in the padding or owned by the next piece dropped, so memory is bounded by the chunk. Per hit: ``seq`` (the
sequence's name), ``motif``, ``start``, ``end`` (0-based, end exclusive, as in BED), ``strand``,
``score`` (log-odds, bits, memelite's), ``p_value`` (FIMO's), ``q_value``: Benjamini-Hochberg over
every window the motif was tested at (both strands of every position of every sequence), which
memelite does not compute. Only hits with ``p_value < threshold`` are reported; their ranks among
all tests are their ranks among the hits, so a q-value <= ``threshold`` is exact and a larger one
an upper bound (the unreported tests could only lower it towards ``threshold``).
"""

from __future__ import annotations

import warnings
from typing import Iterable, Iterator, Sequence

import numpy as np

from bsp_fast.interpret import require

__all__ = ["fimo_scan", "read_fasta_records", "HIT_COLUMNS"]

HIT_COLUMNS = ("seq", "motif", "start", "end", "strand", "score", "p_value", "q_value")


def _pieces(records: Iterable[tuple[str, np.ndarray]], piece: int, overlap: int
            ) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(record index, offset, bases owned, codes) pieces of at most ``piece + overlap`` bases: a record
    longer than ``piece`` is cut every ``piece`` bases, each piece reaching ``overlap`` bases into the
    next so that no window is lost; a piece owns the windows that start in its first ``piece`` bases."""
    for r, (_, codes) in enumerate(records):
        n = len(codes)
        for off in range(0, max(n, 1), piece):
            yield r, off, min(piece, n - off), codes[off:off + piece + overlap]


def fimo_scan(motifs: Sequence[tuple[str, np.ndarray]], records: Iterable[tuple[str, np.ndarray]],
              threshold: float = 1e-4, chunk_bases: int = 2_000_000) -> list[dict]:
    """FIMO hits (dicts with :data:`HIT_COLUMNS`) of ``motifs`` (``(id, ppm [width, 4])``) in
    ``records`` (an iterable of ``(name, base codes)``, read once, e.g. a streaming FASTA reader);
    sorted by p-value, then sequence and start. Memory: one chunk of ~``chunk_bases`` bases (one-hot
    float32, 16 bytes a base) plus the hits."""
    memelite = require("memelite", "--scan (FIMO)")
    from bsp_fast.interpret.attributions import one_hot_codes
    from bsp_fast.interpret.matching import bh_qvalues

    if not 0 < threshold <= 1:
        raise ValueError(f"the p-value threshold must be in (0, 1], got {threshold}")
    pwms = {mid: np.ascontiguousarray(np.asarray(ppm, dtype=np.float64).T) for mid, ppm in motifs}
    widths = {mid: p.shape[1] for mid, p in pwms.items()}
    overlap = max(widths.values()) - 1 if widths else 0
    piece = max(1, chunk_bases // 4)
    names: list[str] = []
    lengths: list[int] = []

    def named(recs):
        for name, codes in recs:
            names.append(str(name))
            lengths.append(len(codes))
            yield name, np.asarray(codes, dtype=np.uint8)

    per_motif: dict[str, list[tuple]] = {mid: [] for mid in pwms}

    def scan(batch: list[tuple[int, int, int, np.ndarray]]) -> None:
        longest = max(len(c) for *_, c in batch)
        codes = np.full((len(batch), longest), 4, dtype=np.uint8)
        for j, (*_, c) in enumerate(batch):
            codes[j, :len(c)] = c
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = memelite.fimo(pwms, one_hot_codes(codes), threshold=threshold)
        for df in frames:
            for mname, srow, start, end, strand, score, p in zip(df["motif_name"], df["sequence_name"], df["start"],
                                                                  df["end"], df["strand"], df["score"], df["p-value"]):
                r, off, owned, c = batch[int(srow)]
                if int(end) > len(c) or int(start) >= owned:
                    continue  # runs into the N padding, or belongs to the next piece of the record
                per_motif[str(mname)].append((r, str(mname), off + int(start), off + int(end), str(strand),
                                              float(score), float(p)))

    batch: list[tuple[int, int, int, np.ndarray]] = []
    longest = 0
    for item in _pieces(named(records), piece, overlap):
        if len(item[3]) == 0:
            continue
        if batch and (len(batch) + 1) * max(longest, len(item[3])) > chunk_bases:
            scan(batch)
            batch, longest = [], 0
        batch.append(item)
        longest = max(longest, len(item[3]))
    if batch:
        scan(batch)
    lengths_a = np.asarray(lengths, dtype=np.int64)
    hits = []
    for mid, rows in per_motif.items():
        tests = 2 * int(np.clip(lengths_a - widths[mid] + 1, 0, None).sum())
        q = bh_qvalues(np.asarray([r[6] for r in rows]), tests)
        hits += [dict(zip(HIT_COLUMNS, (names[r[0]],) + r[1:] + (float(qv),))) for r, qv in zip(rows, q)]
    hits.sort(key=lambda h: (h["p_value"], str(h["seq"]), h["start"], h["motif"]))
    return hits


def read_fasta_records(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """(name, base codes) of each FASTA record, one record in memory at a time (records without a
    valid base are kept: they simply have no hits). Raises ValueError for a file that is not FASTA."""
    from bsp_fast.seqsets import encode

    name, parts, seen = None, [], False
    opener = open
    if str(path).endswith(".gz"):
        import gzip

        opener = gzip.open
    with opener(path, "rt") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if name is not None:
                    yield name, np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
                name, parts, seen = (line[1:].split() or [f"record{lineno}"])[0], [], True
            elif name is None:
                raise ValueError(f"{path}:{lineno}: expected a FASTA header ('>name') first, got {line[:40]!r}")
            else:
                try:
                    parts.append(encode(line))
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: {exc}") from None
    if name is not None:
        yield name, np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    if not seen:
        raise ValueError(f"{path}: no sequences (no FASTA records)")
