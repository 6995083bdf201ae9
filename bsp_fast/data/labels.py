"""Bin labels: ENCODE-DREAM label files and BED/narrowPeak peak files -> per-chromosome arrays.

A :class:`BinLabels` holds, per chromosome, the bin starts (int64, strictly increasing) and their
labels (int8: 1 bound, 0 unbound, -1 ambiguous); every bin is ``[start, start + bin_size)``.

- :func:`read_dream_labels` streams ``<TF>.train.labels.tsv[.gz]`` (header ``chr start stop
  <cell>...``, one U/A/B letter per cell) through a Cython line parser in 16 MB chunks: memory
  is the output (9 bytes per bin) plus one chunk.
- :func:`labels_from_peaks` turns BED/narrowPeak peaks into bins: a bin is bound when peaks cover
  at least half of it (ENCODE-DREAM's rule); optional relaxed peaks make the rest of the bins they
  touch ambiguous.

Malformed input raises ValueError naming the file, the 1-based line and what was expected.
"""

from __future__ import annotations

import gzip
import queue
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bsp_fast.data.fasta import require_file

from bsp_fast import _native

__all__ = ["BinLabels", "LabelTrack", "read_dream_labels", "labels_from_peaks", "read_bed"]

CHUNK = 16 << 20
_ROWS = 1 << 20  # output block size (rows)
_LETTERS = {"U": 0, "B": 1, "A": -1}
_GUNZIP_THREAD = True  # decompress gzip input in a helper thread


@dataclass
class LabelTrack:
    """Bins of one chromosome: ``starts`` int64 [n] (increasing), ``labels`` int8 [n] (1/0/-1)."""

    chrom: str
    starts: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


@dataclass
class BinLabels:
    """Labels of bins ``bin_size`` long every ``step`` bases for one cell, per chromosome."""

    bin_size: int
    step: int
    cell: str
    source: str
    tracks: dict = field(default_factory=dict)
    #: file line of each track's first bin (for error messages), where read from a file
    first_lines: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def chromosomes(self) -> list[str]:
        return list(self.tracks)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tracks.values())

    def counts(self) -> dict[str, int]:
        """Number of bound, unbound and ambiguous bins."""
        n = {"bound": 0, "unbound": 0, "ambiguous": 0}
        for t in self.tracks.values():
            c = np.bincount(t.labels.astype(np.int64) + 1, minlength=3)
            n["ambiguous"] += int(c[0])
            n["unbound"] += int(c[1])
            n["bound"] += int(c[2])
        return n

    def validate_against(self, genome_or_sizes) -> None:
        """Check every chromosome exists in the genome and no bin runs past its end.

        Accepts a :class:`Genome`, a dict name -> length or a list of (name, length).
        """
        sizes = _chrom_sizes(genome_or_sizes)
        for chrom, t in self.tracks.items():
            line0 = self.first_lines.get(chrom)
            if chrom not in sizes:
                some = ", ".join(list(sizes)[:8]) + (", ..." if len(sizes) > 8 else "")
                at = f":{line0}" if line0 else ""
                raise ValueError(f"{self.source}{at}: labels for chromosome '{chrom}', which the genome lacks "
                                 f"(expected one of: {some})")
            if len(t) and int(t.starts[-1]) + self.bin_size > sizes[chrom]:
                i = int(np.argmax(t.starts + self.bin_size > sizes[chrom]))
                at = f":{line0 + i}" if line0 else ""
                raise ValueError(f"{self.source}{at}: bin {chrom}:{int(t.starts[i])}-{int(t.starts[i]) + self.bin_size} "
                                 f"runs past the end of {chrom} (length {sizes[chrom]}); expected bins inside the chromosome")


def _chrom_sizes(obj) -> dict[str, int]:
    if hasattr(obj, "chromosomes") and not isinstance(obj, dict):
        obj = obj.chromosomes
    if isinstance(obj, dict):
        return {str(k): int(v) for k, v in obj.items()}
    return {str(k): int(v) for k, v in obj}


# ---------------------------------------------------------------------------------------------
# ENCODE-DREAM


def _open_text_stream(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb", buffering=0)


class _Reader:
    """Chunked reader that keeps the unparsed tail and counts lines; gzip errors -> ValueError.

    A gzip file is decompressed by a helper thread (zlib releases the GIL) while the Cython
    parser (which releases it too) works on the previous chunk.
    """

    def __init__(self, path: Path):
        self.path = path
        self.f = _open_text_stream(path)
        self.buf = bytearray(CHUNK)
        self.pos = 0
        self.end = 0
        self.eof = False
        self.line = 1  # line number at self.pos
        self._q: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread = None
        if _GUNZIP_THREAD and isinstance(self.f, gzip.GzipFile):
            self._q = queue.Queue(maxsize=3)
            self._thread = threading.Thread(target=self._produce, name="bsp_fast-gunzip", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.f.read(max(1, CHUNK // 4))
            except BaseException as e:  # handed to the consumer
                item = e
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def _next(self) -> bytes:
        try:
            if self._q is None:
                return self.f.read(CHUNK)
            item = self._q.get()
            if isinstance(item, BaseException):
                raise item
            return item
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
            self.eof = True
            raise ValueError(f"{self.path}:{self.line}: truncated or corrupt gzip data; the last complete "
                             f"line read was {self.line - 1} ({e})") from None

    def fill(self) -> bool:
        """Move the tail to the front and read more. False when nothing more came."""
        if self.eof:
            return False
        tail = self.end - self.pos
        self.buf[:tail] = self.buf[self.pos : self.end]
        self.pos, self.end = 0, tail
        data = self._next()
        if not data:
            self.eof = True
            if self.end > 0 and self.buf[self.end - 1] != 10:  # last line without newline
                if self.end == len(self.buf):
                    self.buf.extend(b"\n")
                else:
                    self.buf[self.end] = 10
                self.end += 1
                return True
            return False
        need = tail + len(data)
        if need > len(self.buf):
            self.buf.extend(bytes(need - len(self.buf)))
        self.buf[tail:need] = data
        self.end = need
        return True

    def line_text(self, pos: int | None = None, limit: int = 80) -> str:
        pos = self.pos if pos is None else pos
        e = self.buf.find(b"\n", pos, self.end)
        e = self.end if e < 0 else e
        s = bytes(self.buf[pos : min(e, pos + limit)]).decode("latin-1").rstrip("\r")
        return s + ("..." if e > pos + limit else "")

    def readline(self) -> bytes | None:
        while True:
            e = self.buf.find(b"\n", self.pos, self.end)
            if e >= 0:
                s = bytes(self.buf[self.pos : e])
                self.pos = e + 1
                self.line += 1
                return s.rstrip(b"\r")
            if not self.fill():
                return None

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.f.close()


def read_dream_labels(path, cell: str | None = None, *, genome=None, bin_size: int | None = None,
                      step: int | None = None) -> BinLabels:
    """Read an ENCODE-DREAM label file (``chr start stop <cell>...``, letters U/A/B) for one cell.

    Args:
        path: ``.tsv`` or ``.tsv.gz``.
        cell: column name; may be omitted when the file has exactly one cell column.
        genome: optional :class:`Genome` (or chromosome sizes) to validate against.
        bin_size, step: expected bin size and step (default: taken from the first rows).

    Rows of a chromosome must be contiguous, with strictly increasing starts on one grid of
    ``step`` and ``stop - start == bin_size``.
    """
    path = require_file(path)
    _native.load("bsp_fast_codec")  # fail before opening anything
    r = _Reader(path)
    try:
        header = r.readline()
        if header is None:
            raise ValueError(f"{path}:1: empty file (expected a header 'chr<TAB>start<TAB>stop<TAB><cell>...')")
        cols = header.decode("latin-1").split("\t")
        if len(cols) < 4 or [c.lower() for c in cols[:3]] != ["chr", "start", "stop"]:
            raise ValueError(f"{path}:1: expected a header 'chr<TAB>start<TAB>stop<TAB><cell>...', got {header[:80]!r}")
        cells = cols[3:]
        if cell is None:
            if len(cells) != 1:
                raise ValueError(f"{path}: several cells, pick one with cell=...: {', '.join(cells)}")
            cell = cells[0]
        if cell not in cells:
            raise ValueError(f"{path}: no cell {cell!r}; available: {', '.join(cells)}")
        cell_field = 3 + cells.index(cell)
        n_fields = len(cols)
        return _parse_dream(r, path, cell, cell_field, n_fields, bin_size, step, genome)
    finally:
        r.close()


_DREAM_ERRORS = {
    3: "wrong number of tab-separated fields (expected {n_fields}: chr, start, stop and one letter per cell)",
    4: "start and stop must be non-negative integers",
    5: "stop - start must be the bin size {bin_size}",
    6: "bins must be sorted by start without duplicates (start not after the previous bin's)",
    7: "label must be one letter U, A or B",
    8: "empty line",
}


def _parse_dream(r: _Reader, path: Path, cell: str, cell_field: int, n_fields: int,
                 bin_size: int | None, step: int | None, genome) -> BinLabels:
    tracks: dict[str, LabelTrack] = {}
    first_lines: dict[str, int] = {}
    seen_line: dict[str, int] = {}
    chrom: str | None = None
    chrom_b = b"\n"  # matches no name, so the first row starts a chromosome
    blocks_s: list[np.ndarray] = []
    blocks_l: list[np.ndarray] = []
    out_s = np.empty(_ROWS, dtype=np.int64)
    out_l = np.empty(_ROWS, dtype=np.int8)
    n_out = 0
    prev = -1
    first_line = 0
    step_line = 0

    def fail(msg: str, line: int, pos: int | None = None) -> ValueError:
        return ValueError(f"{path}:{line}: {msg}; line: {r.line_text(pos)!r}")

    def finish_chrom():
        nonlocal blocks_s, blocks_l, step, step_line
        if chrom is None:
            return
        s = np.concatenate(blocks_s) if len(blocks_s) > 1 else blocks_s[0]
        lab = np.concatenate(blocks_l) if len(blocks_l) > 1 else blocks_l[0]
        blocks_s, blocks_l = [], []
        if step is None and len(s) >= 2:
            step = int(s[1] - s[0])
            step_line = first_line + 1
        if step is not None and len(s) >= 2:
            d = np.diff(s)
            bad = d % step != 0
            if bad.any():
                i = int(np.argmax(bad)) + 1
                raise ValueError(f"{path}:{first_line + i}: bin {chrom}:{int(s[i])} is off the grid of step {step} "
                                 f"(previous bin starts at {int(s[i - 1])}; step "
                                 f"{'set' if not step_line else f'taken from line {step_line}'})")
        tracks[chrom] = LabelTrack(chrom, s, lab)
        first_lines[chrom] = first_line

    while True:
        if r.pos >= r.end and not r.fill():
            break
        if bin_size is None:
            # take the bin size from the first data row
            e = r.buf.find(b"\n", r.pos, r.end)
            if e < 0:
                if not r.fill():
                    break
                continue
            f = bytes(r.buf[r.pos : e]).rstrip(b"\r").split(b"\t")
            try:
                bin_size = int(f[2]) - int(f[1])
            except (IndexError, ValueError):
                raise fail(f"expected {n_fields} tab-separated fields chr, start, stop, letters", r.line) from None
            if bin_size <= 0:
                raise fail("stop must be greater than start", r.line)
        pos, n_out2, nl, status, prev = _native.load("bsp_fast_codec").parse_dream_block(
            r.buf, r.pos, r.end, chrom_b, cell_field, n_fields, bin_size, prev, out_s, out_l, n_out)
        n_out = n_out2
        r.pos = pos
        r.line += nl
        if status == 0:
            if not r.fill():
                break
        elif status == 1:
            blocks_s.append(out_s[:n_out].copy())
            blocks_l.append(out_l[:n_out].copy())
            n_out = 0
        elif status == 2:
            if n_out:
                blocks_s.append(out_s[:n_out].copy())
                blocks_l.append(out_l[:n_out].copy())
                n_out = 0
            finish_chrom()
            t = r.buf.find(b"\t", r.pos, r.end)
            name_b = bytes(r.buf[r.pos : t]) if t >= 0 else b""
            if not name_b:
                raise fail("expected a chromosome name in the first field", r.line)
            name = name_b.decode("latin-1")
            if name in seen_line:
                raise fail(f"rows of chromosome '{name}' are not contiguous (it already ended at line {seen_line[name]})",
                           r.line)
            if chrom is not None:
                seen_line[chrom] = r.line - 1
            chrom, chrom_b, prev, first_line = name, name_b, -1, r.line
        else:
            msg = _DREAM_ERRORS[status].format(n_fields=n_fields, bin_size=bin_size)
            raise fail(msg, r.line)
    if n_out:
        blocks_s.append(out_s[:n_out].copy())
        blocks_l.append(out_l[:n_out].copy())
    finish_chrom()
    if not tracks:
        raise ValueError(f"{path}: no label rows after the header")
    labels = BinLabels(int(bin_size), int(step) if step is not None else int(bin_size), cell, str(path), tracks,
                       first_lines)
    if genome is not None:
        labels.validate_against(genome)
    return labels


# ---------------------------------------------------------------------------------------------
# BED / narrowPeak


def read_bed(path, chrom_sizes=None) -> dict[str, np.ndarray]:
    """Intervals of a BED-like file (BED3+, narrowPeak; plain or gzip) -> {chrom: int64 [n, 2]}.

    ``track``/``browser``/``#`` lines are skipped. With ``chrom_sizes``, unknown chromosomes and
    intervals past a chromosome end are errors.
    """
    path = require_file(path)
    sizes = _chrom_sizes(chrom_sizes) if chrom_sizes is not None else None
    acc: dict[str, list[tuple[int, int]]] = {}
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    try:
        with opener(path, "rt", encoding="latin-1") as f:
            for ln, line in enumerate(f, 1):
                s = line.rstrip("\r\n")
                if not s.strip() or s.startswith(("#", "track", "browser")):
                    continue
                parts = s.split("\t") if "\t" in s else s.split()
                if len(parts) < 3:
                    raise ValueError(f"{path}:{ln}: expected at least 3 fields chrom, start, end; line: {s[:80]!r}")
                try:
                    a, b = int(parts[1]), int(parts[2])
                except ValueError:
                    raise ValueError(f"{path}:{ln}: start and end must be integers; line: {s[:80]!r}") from None
                if a < 0 or b <= a:
                    raise ValueError(f"{path}:{ln}: expected 0 <= start < end; line: {s[:80]!r}")
                c = parts[0]
                if sizes is not None:
                    if c not in sizes:
                        raise ValueError(f"{path}:{ln}: chromosome '{c}' is not in the genome; line: {s[:80]!r}")
                    if b > sizes[c]:
                        raise ValueError(f"{path}:{ln}: interval ends at {b}, past the end of {c} "
                                         f"(length {sizes[c]}); line: {s[:80]!r}")
                acc.setdefault(c, []).append((a, b))
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: truncated or corrupt gzip data ({e})") from None
    return {c: np.array(v, dtype=np.int64).reshape(-1, 2) for c, v in acc.items()}


def _merge(iv: np.ndarray) -> np.ndarray:
    if len(iv) == 0:
        return iv.reshape(0, 2)
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    ends = np.maximum.accumulate(iv[:, 1])
    new = np.ones(len(iv), dtype=bool)
    new[1:] = iv[1:, 0] > ends[:-1]
    starts = iv[new, 0]
    grp = np.cumsum(new) - 1
    merged_end = np.zeros(len(starts), dtype=np.int64)
    np.maximum.at(merged_end, grp, ends)
    return np.stack([starts, merged_end], axis=1)


def _covered(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bases of [0, x) covered by the disjoint sorted intervals ``merged``."""
    if len(merged) == 0:
        return np.zeros_like(x)
    s, e = merged[:, 0], merged[:, 1]
    cum = np.concatenate([[0], np.cumsum(e - s)])
    i = np.searchsorted(s, x, side="left")  # intervals with s < x: [0, i)
    last = np.maximum(i - 1, 0)
    partial = np.where(i > 0, np.clip(x - s[last], 0, e[last] - s[last]), 0)
    return cum[last] * (i > 0) + partial


def labels_from_peaks(bed, chrom_sizes, bin_size: int = 200, step: int = 50, *, relaxed=None,
                      cell: str = "peaks", chroms=None) -> BinLabels:
    """Bins of every chromosome labelled from peaks.

    A bin ``[s, s + bin_size)`` (``s = 0, step, ...`` while the bin fits in the chromosome) is bound
    (1) when peaks of ``bed`` cover at least half of it, else unbound (0); with ``relaxed`` peaks
    (e.g. the relaxed IDR set), an unbound bin that overlaps a relaxed peak is ambiguous (-1).
    ``chrom_sizes``: a Genome, dict or list of (name, length); ``chroms`` restricts the chromosomes.
    """
    if bin_size <= 0 or step <= 0:
        raise ValueError(f"bin_size and step must be positive, got {bin_size}, {step}")
    sizes = _chrom_sizes(chrom_sizes)
    peaks = read_bed(bed, sizes)
    rel = read_bed(relaxed, sizes) if relaxed is not None else {}
    tracks = {}
    for c in (chroms if chroms is not None else sizes):
        n = (sizes[c] - bin_size) // step + 1 if sizes[c] >= bin_size else 0
        starts = np.arange(n, dtype=np.int64) * step
        m = _merge(peaks.get(c, np.zeros((0, 2), np.int64)))
        cov = _covered(m, starts + bin_size) - _covered(m, starts)
        lab = (2 * cov >= bin_size).astype(np.int8)
        if c in rel:
            mr = _merge(rel[c])
            touch = (_covered(mr, starts + bin_size) - _covered(mr, starts)) > 0
            lab[touch & (lab == 0)] = -1
        tracks[c] = LabelTrack(c, starts, lab)
    return BinLabels(int(bin_size), int(step), cell, str(bed), tracks)
