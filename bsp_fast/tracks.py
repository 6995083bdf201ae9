"""Track writers for ``bsp-fast predict``: ENCODE-DREAM TSV, bedGraph, bigWig and narrowPeak.

Every writer has the same interface::

    w = open_track("preds.bw", chrom_sizes=genome.chromosomes, name="hybrid", step=50)
    w.write(chrom, starts, stops, probs)   # one chunk of bins, in genome order
    w.close()                              # complete file renamed into place
    w.abort()                              # (on error) temporary file removed, target untouched

Each writes to a temporary file beside the target (``.NAME.PID.tmp``) and renames it over the
target in :meth:`close`, so a target is only ever replaced by a complete file.

How bins map to track intervals (bedGraph, bigWig). Bins are 200 bp every 50 bp, so they overlap
four-fold, and bigWig refuses overlapping intervals. With ``step`` given (the bin grid), each bin's
value covers the ``step`` bp centred in its bin: bin ``[s, s + 200)`` -> ``[s + 75, s + 125)`` (for
step 50), so consecutive bins tile the chromosome without gaps or overlaps from 75 bp after the
chromosome start to 75 bp before its end (the first / last 75 bp have no value). Intervals are
clipped to the chromosome. With ``step=None`` (``--regions``) each region is written as it is; bigWig
then needs the regions sorted and non-overlapping within each chromosome (an error says so).

narrowPeak (:class:`NarrowPeakWriter`): bins with probability >= ``threshold`` are merged into peaks
(bins that overlap or touch merge, across chunk boundaries); a peak spans from its first bin's start
to its last bin's stop, so the peaks cover exactly the union of the bins at or above the threshold.
Columns: chrom, start, end, name (``NAME_peakK``), score (``int(round(1000 * max probability))``),
strand ``.``, signalValue (the max probability), pValue ``-1``, qValue ``-1``, peak (the summit: the
centre of the best bin, as an offset from the peak's start).
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["TrackError", "TrackWriter", "TsvWriter", "BedGraphWriter", "BigWigWriter", "NarrowPeakWriter",
           "track_format", "open_track", "step_intervals", "FORMATS"]

#: output suffix -> format name
FORMATS = {".tsv": "tsv", ".tsv.gz": "tsv", ".bedgraph": "bedgraph", ".bedgraph.gz": "bedgraph",
           ".bw": "bigwig", ".bigwig": "bigwig"}


class TrackError(ValueError):
    """A track that cannot be written as asked (message says why)."""


def track_format(path: str | os.PathLike) -> str:
    """Format name (``tsv``, ``bedgraph``, ``bigwig``) from a file name's suffix (case-insensitive)."""
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise TrackError(f"{path}: unknown output format; expected a name ending in "
                     f"{', '.join(FORMATS)}")


def step_intervals(starts: np.ndarray, stops: np.ndarray, step: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``step`` bp centred in each bin ``[start, stop)``: ``[c - step // 2, c - step // 2 + step)``
    with ``c = (start + stop) // 2``, clipped to ``[0, size]``."""
    c = (np.asarray(starts, np.int64) + np.asarray(stops, np.int64)) // 2
    a = c - step // 2
    b = a + step
    a = np.maximum(a, 0)
    if size is not None:
        b = np.minimum(b, size)
    return a, b


def _safe_name(name: str) -> str:
    return re.sub(r"[\s\"]+", "_", str(name)) or "bsp_fast"


class TrackWriter:
    """Base: a temporary file beside ``path``, renamed into place by :meth:`close`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.n_rows = 0
        self._closed = False

    def write(self, chrom: str, starts: np.ndarray, stops: np.ndarray, probs: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and close the temporary file."""
        raise NotImplementedError

    def close(self) -> Path:
        """Finish the temporary file and rename it over the target."""
        if self._closed:
            return self.path
        self._finish()
        os.replace(self.tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish()
        except Exception:
            pass
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "TrackWriter":
        return self

    def __exit__(self, exc_type, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _TextWriter(TrackWriter):
    """Text rows, gzip members per chunk when the name ends in ``.gz``."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        self.compress = self.path.name.lower().endswith(".gz")
        self._fh = open(self.tmp, "wb")

    def _put(self, text: str) -> None:
        if not text:
            return
        data = text.encode()
        self._fh.write(gzip.compress(data, compresslevel=4) if self.compress else data)

    def _finish(self) -> None:
        if self._fh.closed:
            return
        if self.compress and self._fh.tell() == 0:
            self._fh.write(gzip.compress(b""))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def _fmt(probs: np.ndarray) -> list[str]:
    return np.char.mod("%.6g", np.asarray(probs, np.float64)).tolist()


class TsvWriter(_TextWriter):
    """ENCODE-DREAM submission rows ``chr start stop probability`` (no header)."""

    def write(self, chrom: str, starts: np.ndarray, stops: np.ndarray, probs: np.ndarray) -> None:
        self._put("".join(f"{chrom}\t{a}\t{b}\t{q}\n"
                          for a, b, q in zip(np.asarray(starts).tolist(), np.asarray(stops).tolist(), _fmt(probs))))
        self.n_rows += len(starts)


class BedGraphWriter(_TextWriter):
    """bedGraph with a ``track type=bedGraph name=...`` line; intervals as in the module docstring."""

    def __init__(self, path: str | os.PathLike, chrom_sizes: Sequence[tuple[str, int]] | dict[str, int],
                 name: str = "bsp_fast", step: int | None = 50, description: str | None = None) -> None:
        super().__init__(path)
        self.sizes = dict(chrom_sizes)
        self.step = step
        name = _safe_name(name)
        desc = description or f"{name} binding probability"
        self._put(f'track type=bedGraph name="{name}" description="{desc.replace(chr(34), "")}" '
                  f"visibility=full autoScale=on viewLimits=0:1\n")

    def write(self, chrom: str, starts: np.ndarray, stops: np.ndarray, probs: np.ndarray) -> None:
        if self.step is not None:
            starts, stops = step_intervals(starts, stops, self.step, self.sizes.get(chrom))
        self._put("".join(f"{chrom}\t{a}\t{b}\t{q}\n"
                          for a, b, q in zip(np.asarray(starts).tolist(), np.asarray(stops).tolist(), _fmt(probs))))
        self.n_rows += len(starts)


def _require_pybigwig():
    try:
        import pyBigWig  # noqa: WPS433
    except ImportError:
        raise TrackError("bigWig output needs pyBigWig: pip install 'bsp_fast[tracks]' (or pip install pyBigWig)") from None
    return pyBigWig


class BigWigWriter(TrackWriter):
    """bigWig through pyBigWig; the header holds every chromosome of ``chrom_sizes`` (in that order,
    so write chunks in that order). bigWig has no track line: :attr:`track_line` is the line a
    UCSC custom track / hub needs, printed by ``predict``."""

    def __init__(self, path: str | os.PathLike, chrom_sizes: Sequence[tuple[str, int]] | dict[str, int],
                 name: str = "bsp_fast", step: int | None = 50) -> None:
        super().__init__(path)
        pbw = _require_pybigwig()
        self.sizes = dict(chrom_sizes)
        self.order = {c: i for i, c in enumerate(self.sizes)}
        self.step = step
        self.name = _safe_name(name)
        self.track_line = f'track type=bigWig name="{self.name}" bigDataUrl={self.path.name}'
        self._bw = pbw.open(str(self.tmp), "w")
        if self._bw is None:
            raise TrackError(f"{self.path}: cannot create the bigWig file")
        self._bw.addHeader([(c, int(n)) for c, n in self.sizes.items()], maxZooms=10)
        self._last: tuple[int, int] = (-1, -1)  # (chrom index, end of the last interval)

    def write(self, chrom: str, starts: np.ndarray, stops: np.ndarray, probs: np.ndarray) -> None:
        if len(starts) == 0:
            return
        if chrom not in self.order:
            raise TrackError(f"{self.path}: chromosome {chrom!r} is not in the genome")
        size = self.sizes[chrom]
        if self.step is not None:
            a, b = step_intervals(starts, stops, self.step, size)
        else:
            a = np.asarray(starts, np.int64)
            b = np.minimum(np.asarray(stops, np.int64), size)
        keep = b > a
        a, b, v = a[keep], b[keep], np.asarray(probs, np.float64)[keep]
        if a.size == 0:
            return
        tid = self.order[chrom]
        prev_tid, prev_end = self._last
        if tid < prev_tid or (tid == prev_tid and a[0] < prev_end) or np.any(a[1:] < b[:-1]):
            raise TrackError(f"{self.path}: bigWig needs intervals sorted by the genome's chromosome order and "
                             f"non-overlapping ({chrom}:{int(a[0])}); sort and merge the regions (bedtools sort | "
                             f"bedtools merge) or write .bedgraph / .tsv")
        self._bw.addEntries([chrom] * int(a.size), a.tolist(), ends=b.tolist(), values=v.tolist())
        self._last = (tid, int(b[-1]))
        self.n_rows += int(a.size)

    def _finish(self) -> None:
        if self._bw is not None:
            self._bw.close()
            self._bw = None


class NarrowPeakWriter(_TextWriter):
    """Bins with probability >= ``threshold`` merged into narrowPeak rows (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, threshold: float, name: str = "bsp_fast") -> None:
        super().__init__(path)
        self.threshold = float(threshold)
        self.name = _safe_name(name)
        self.n_peaks = 0
        self._cur: list[Any] | None = None  # [chrom, start, end, best_prob, summit_position]

    def _flush(self) -> str:
        if self._cur is None:
            return ""
        chrom, a, b, p, summit = self._cur
        self._cur = None
        self.n_peaks += 1
        score = min(1000, max(0, int(round(1000 * p))))
        return f"{chrom}\t{a}\t{b}\t{self.name}_peak{self.n_peaks}\t{score}\t.\t{p:.6g}\t-1\t-1\t{summit - a}\n"

    def write(self, chrom: str, starts: np.ndarray, stops: np.ndarray, probs: np.ndarray) -> None:
        probs = np.asarray(probs, np.float64)
        sel = np.flatnonzero(probs >= self.threshold)
        out = []
        st = np.asarray(starts, np.int64)[sel].tolist()
        en = np.asarray(stops, np.int64)[sel].tolist()
        for a, b, p in zip(st, en, probs[sel].tolist()):
            cur = self._cur
            if cur is not None and cur[0] == chrom and cur[1] <= a <= cur[2]:
                cur[2] = max(cur[2], b)
                if p > cur[3]:
                    cur[3], cur[4] = p, (a + b) // 2
                continue
            out.append(self._flush())
            self._cur = [chrom, a, b, p, (a + b) // 2]
        self._put("".join(out))
        self.n_rows += len(sel)

    def _finish(self) -> None:
        if not self._fh.closed:
            self._put(self._flush())
        super()._finish()


def open_track(path: str | os.PathLike, chrom_sizes: Sequence[tuple[str, int]] | dict[str, int],
               name: str = "bsp_fast", step: int | None = 50) -> TrackWriter:
    """The writer for ``path``'s suffix (:data:`FORMATS`); TrackError for an unknown one."""
    fmt = track_format(path)
    if fmt == "tsv":
        return TsvWriter(path)
    if fmt == "bedgraph":
        return BedGraphWriter(path, chrom_sizes, name=name, step=step)
    return BigWigWriter(path, chrom_sizes, name=name, step=step)
