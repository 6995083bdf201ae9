"""Read and write DNA motif matrices: JASPAR PFM files and MEME minimal motif format.

Every matrix is a NumPy float64 array of shape ``[length, 4]``, columns A, C, G, T (the order of
the one-hot encoding), one row per motif position.

- :func:`read_jaspar` -- JASPAR ``.jaspar`` (``>ID NAME`` then rows ``A [ 1 2 ... ]``, several motifs
  per file) and the bare ``.pfm`` layout (an optional ``>`` header and four rows of numbers, A C G T).
  Gives counts (``Motif.kind == "counts"``).
- :func:`read_meme` -- MEME minimal motif format (``MOTIF id [name]``, ``letter-probability matrix:``
  with ``w=``, rows of four probabilities). Gives probabilities (``kind == "probabilities"``).
- :func:`read_motifs` -- either, by content.
- :func:`write_meme` -- MEME minimal format (e.g. first-layer filters exported as motifs).
- :meth:`Motif.probabilities` / :meth:`Motif.log_odds` -- the usual conversions.

Malformed input raises :class:`MotifFormatError` (a ``ValueError``) whose message starts with
``path:line:`` and says what was expected.

Why these readers and writers stay ours rather than memelite's (``memelite.io``, which TomTom and
FIMO here otherwise come from): memelite has no JASPAR reader or writer at all, and its
``read_meme`` does not check what it reads (no ``ALPHABET`` / ``alength`` check, rows of the wrong
length or not summing to 1 are taken or fail with a bare NumPy error, no line numbers, ``nsites``
dropped), so a user's broken file would not give one line naming the file and line; its
``write_meme`` writes ``nsites= 1`` for every motif. The MEME files written here read back with
``memelite.io.read_meme`` to the same matrices (tests/test_interpret_matching.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["Motif", "MotifFormatError", "read_jaspar", "read_meme", "read_motifs", "write_meme", "motif_dict"]

ALPHABET = "ACGT"


class MotifFormatError(ValueError):
    """A motif file could not be parsed; the message names the file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@dataclass
class Motif:
    """A named position matrix, ``matrix`` float64 ``[length, 4]`` in A, C, G, T column order."""

    id: str
    name: str
    matrix: np.ndarray
    kind: str = "counts"  # "counts" or "probabilities"
    nsites: float | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != 4 or m.shape[0] < 1:
            raise ValueError(f"motif {self.id}: matrix must be [length, 4], got {m.shape}")
        if not np.isfinite(m).all() or (m < 0).any():
            raise ValueError(f"motif {self.id}: matrix has negative or non-finite entries")
        if self.kind not in ("counts", "probabilities"):
            raise ValueError(f"motif {self.id}: kind must be 'counts' or 'probabilities', got {self.kind!r}")
        self.matrix = m

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def probabilities(self, pseudocount: float = 0.0) -> np.ndarray:
        """Position probability matrix ``[length, 4]`` (rows sum to 1).

        ``pseudocount`` is added per cell; for a probability matrix it is scaled by ``nsites``
        (default 20), so the same value means the same thing for both kinds.
        """
        m = self.matrix
        if pseudocount:
            scale = 1.0 if self.kind == "counts" else float(self.nsites or 20.0)
            m = m * scale + pseudocount
        totals = m.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            raise ValueError(f"motif {self.id}: a position has no counts")
        return m / totals

    def log_odds(self, background: Sequence[float] | None = None, pseudocount: float = 0.8, base: float = 2.0) -> np.ndarray:
        """Position weight matrix ``[length, 4]``: log(p / background) (bits by default)."""
        bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
        if bg.shape != (4,) or (bg <= 0).any():
            raise ValueError("background must be 4 positive frequencies (A, C, G, T)")
        bg = bg / bg.sum()
        p = self.probabilities(pseudocount)
        with np.errstate(divide="ignore"):
            return np.log(p / bg) / np.log(base)

    def consensus(self) -> str:
        return "".join(ALPHABET[i] for i in self.matrix.argmax(axis=1))

    def reverse_complement(self) -> "Motif":
        return Motif(self.id, self.name, self.matrix[::-1, ::-1].copy(), self.kind, self.nsites, self.source, dict(self.meta))


def motif_dict(motifs: Iterable[Motif]) -> dict[str, Motif]:
    """Motifs by id and by name (the first of equal names wins for the name key)."""
    motifs = list(motifs)
    out: dict[str, Motif] = {}
    for m in motifs:
        out.setdefault(m.id, m)
    for m in motifs:
        out.setdefault(m.name, m)
    return out


def _read_lines(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such motif file")
    try:
        return p.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise MotifFormatError(path, None, f"not a text file ({exc})") from None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_JASPAR_ROW = re.compile(r"^\s*([ACGTacgt])\s*\[?\s*((?:" + _NUMBER + r"\s*)+)\]?\s*$")
_BARE_ROW = re.compile(r"^\s*((?:" + _NUMBER + r"\s*)+)$")
_EMPTY_ROW = re.compile(r"^\s*[ACGTacgt]\s*\[\s*\]\s*$")


def _numbers(text: str, path, line: int) -> list[float]:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        raise MotifFormatError(path, line, f"expected numbers, got {text.strip()!r}") from None


def read_jaspar(path: str | os.PathLike) -> list[Motif]:
    """All motifs of a JASPAR file (``.jaspar`` with ``A [ ... ]`` rows, or bare ``.pfm`` rows).

    A header line is ``>ID NAME`` (name optional); it is followed by exactly four rows, one per
    base, each either ``A [ n n n ]`` (any base order, each base once) or four bare rows in A, C, G,
    T order. All rows of a motif must have the same number of columns.
    """
    lines = _read_lines(path)
    motifs: list[Motif] = []
    header: tuple[str, str, int] | None = None
    rows: list[tuple[int, str | None, list[float]]] = []

    def flush(end_line: int) -> None:
        nonlocal header, rows
        if header is None and not rows:
            return
        mid, name, hline = header if header is not None else (Path(path).stem, Path(path).stem, 1)
        if len(rows) != 4:
            raise MotifFormatError(path, hline, f"motif {mid}: expected 4 rows (A, C, G, T), found {len(rows)}")
        letters = [r[1] for r in rows]
        if all(x is None for x in letters):
            letters = list(ALPHABET)
        elif any(x is None for x in letters):
            raise MotifFormatError(path, rows[0][0], f"motif {mid}: mixes labelled and bare rows")
        if sorted(letters) != sorted(ALPHABET):
            raise MotifFormatError(path, rows[0][0], f"motif {mid}: rows must be A, C, G and T once each, got {letters}")
        widths = {len(r[2]) for r in rows}
        if len(widths) != 1:
            bad = next(r for r in rows if len(r[2]) != len(rows[0][2]))
            raise MotifFormatError(
                path, bad[0], f"motif {mid}: row {bad[1] or ''} has {len(bad[2])} columns, the first row {len(rows[0][2])}"
            )
        matrix = np.zeros((widths.pop(), 4))
        for (lineno, _, vals), letter in zip(rows, letters):
            if any(v < 0 for v in vals):
                raise MotifFormatError(path, lineno, f"motif {mid}: negative count")
            matrix[:, ALPHABET.index(letter)] = vals
        if (matrix.sum(axis=1) <= 0).any():
            col = int(np.flatnonzero(matrix.sum(axis=1) <= 0)[0]) + 1
            raise MotifFormatError(path, hline, f"motif {mid}: column {col} has no counts")
        nsites = float(np.median(matrix.sum(axis=1)))
        motifs.append(Motif(mid, name, matrix, "counts", nsites, str(path), {"line": hline}))
        header, rows = None, []

    for i, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith(">"):
            flush(i)
            parts = text[1:].split(None, 1)
            if not parts:
                raise MotifFormatError(path, i, "empty motif header: expected '>ID NAME'")
            header = (parts[0], parts[1].strip() if len(parts) > 1 else parts[0], i)
            continue
        if _EMPTY_ROW.match(text):
            raise MotifFormatError(path, i, f"motif {header[0] if header else '?'}: zero-width matrix (row {text[0]} has no columns)")
        m = _JASPAR_ROW.match(text)
        if m:
            rows.append((i, m.group(1).upper(), _numbers(m.group(2), path, i)))
        elif _BARE_ROW.match(text):
            rows.append((i, None, _numbers(text, path, i)))
        else:
            raise MotifFormatError(path, i, f"expected '>ID NAME', a row like 'A [ 1 2 3 ]' or four numbers rows, got {text[:60]!r}")
        if len(rows) > 4:
            raise MotifFormatError(path, i, f"motif {header[0] if header else '?'}: more than 4 rows (A, C, G, T)")
    flush(len(lines))
    if not motifs:
        raise MotifFormatError(path, None, "no motif found (expected JASPAR '>ID NAME' + 4 rows)")
    return motifs


_MEME_HEAD = re.compile(r"letter-probability matrix:?(.*)$", re.IGNORECASE)
_KEYVAL = re.compile(r"(\w+)\s*=\s*(\S+)")


def read_meme(path: str | os.PathLike) -> list[Motif]:
    """All motifs of a MEME minimal-format file, as probability matrices.

    Checks the ``ALPHABET=`` line when present (DNA, ``ACGT``), that each ``MOTIF`` has a
    ``letter-probability matrix`` whose ``w=`` rows (when given) follow, each with 4 numbers that
    sum to ~1 (within 0.02; rows are renormalised).
    """
    lines = _read_lines(path)
    motifs: list[Motif] = []
    saw_version = False
    i = 0
    n = len(lines)
    current: tuple[str, str, int] | None = None
    while i < n:
        text = lines[i].strip()
        lineno = i + 1
        i += 1
        if not text or text.startswith("#"):
            continue
        if text.startswith("MEME version"):
            saw_version = True
        elif text.startswith("ALPHABET"):
            alpha = text.split("=", 1)[1].strip() if "=" in text else text[len("ALPHABET"):].strip()
            first = alpha.split()[0].strip('"').upper() if alpha else ""
            if first not in ("ACGT", "DNA"):
                raise MotifFormatError(path, lineno, f"only the DNA alphabet ACGT is supported, got {alpha!r}")
        elif text.startswith("MOTIF"):
            parts = text.split()
            if len(parts) < 2:
                raise MotifFormatError(path, lineno, "expected 'MOTIF id [name]'")
            if current is not None:
                raise MotifFormatError(path, current[2], f"motif {current[0]}: no letter-probability matrix before the next MOTIF")
            current = (parts[1], parts[2] if len(parts) > 2 else parts[1], lineno)
        elif _MEME_HEAD.match(text):
            if current is None:
                raise MotifFormatError(path, lineno, "letter-probability matrix before any 'MOTIF' line")
            opts = dict((k.lower(), v) for k, v in _KEYVAL.findall(_MEME_HEAD.match(text).group(1)))
            if opts.get("alength", "4") != "4":
                raise MotifFormatError(path, lineno, f"alength={opts['alength']}: only 4 letters (ACGT) are supported")
            try:
                width = int(opts["w"]) if "w" in opts else None
                nsites = float(opts["nsites"]) if "nsites" in opts else None
            except ValueError:
                raise MotifFormatError(path, lineno, f"bad w= or nsites= value in {text!r}") from None
            if width is not None and width < 1:
                raise MotifFormatError(path, lineno, f"motif {current[0]}: zero-width matrix (w= {width})")
            rows = []
            while i < n and (width is None or len(rows) < width):
                row_text = lines[i].strip()
                if not row_text:
                    if width is None and rows:
                        break
                    i += 1
                    continue
                if not _BARE_ROW.match(row_text):
                    if width is None and rows:
                        break
                    raise MotifFormatError(
                        path, i + 1,
                        f"motif {current[0]}: expected {width if width else 'a'} row(s) of 4 probabilities, got {row_text[:60]!r}",
                    )
                vals = _numbers(row_text, path, i + 1)
                if len(vals) != 4:
                    raise MotifFormatError(path, i + 1, f"motif {current[0]}: expected 4 probabilities (A C G T), got {len(vals)}")
                if min(vals) < 0 or abs(sum(vals) - 1.0) > 0.02:
                    raise MotifFormatError(path, i + 1, f"motif {current[0]}: probabilities must be >= 0 and sum to 1, got {vals}")
                rows.append(vals)
                i += 1
            if width is not None and len(rows) < width:
                raise MotifFormatError(path, i, f"motif {current[0]}: w={width} but the file ended after {len(rows)} rows")
            if not rows:
                raise MotifFormatError(path, lineno, f"motif {current[0]}: empty matrix")
            m = np.asarray(rows, dtype=np.float64)
            m /= m.sum(axis=1, keepdims=True)
            motifs.append(Motif(current[0], current[1], m, "probabilities", nsites, str(path), {"line": current[2]}))
            current = None
    if current is not None:
        raise MotifFormatError(path, current[2], f"motif {current[0]}: no letter-probability matrix")
    if not motifs:
        what = "no 'MOTIF' with a letter-probability matrix" + ("" if saw_version else " (and no 'MEME version' line)")
        raise MotifFormatError(path, None, what)
    return motifs


def read_motifs(path: str | os.PathLike) -> list[Motif]:
    """JASPAR or MEME, decided by content (a ``MEME version`` or ``MOTIF`` line means MEME)."""
    lines = _read_lines(path)
    for raw in lines:
        t = raw.strip()
        if t.startswith("MEME version") or t.startswith("MOTIF"):
            return read_meme(path)
    return read_jaspar(path)


def write_meme(motifs: Iterable[Motif], path: str | os.PathLike, background: Sequence[float] | None = None) -> None:
    """Write motifs in MEME minimal format (probabilities; counts are normalised)."""
    bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64) / np.sum(background)
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
           "Background letter frequencies", " ".join(f"{a} {f:.4f}" for a, f in zip(ALPHABET, bg)), ""]
    for m in motifs:
        p = m.probabilities()
        nsites = int(round(m.nsites)) if m.nsites else 20
        out.append(f"MOTIF {m.id} {m.name}" if m.name and m.name != m.id else f"MOTIF {m.id}")
        out.append(f"letter-probability matrix: alength= 4 w= {len(m)} nsites= {nsites} E= 0")
        out.extend(" ".join(f"{v:.6f}" for v in row) for row in p)
        out.append("")
    Path(path).write_text("\n".join(out) + "\n")
