"""FASTA sequence sets (one sequence per record, any lengths) -> fixed-length code arrays.

Reading (:func:`read_fasta_set`): plain or gzip FASTA; ``>name`` headers; sequence lines of A C G T N
(any case), IUPAC ambiguity codes (-> N), '-' and '.' (gaps -> N); spaces, tabs and '\\r' ignored.
Duplicate names are allowed (sequence sets often repeat them). Errors (:class:`SeqSetError`, a
ValueError) name the file and line: a missing or empty file, sequence before the first header, a
character that is not a base, an empty record, a record without a single A/C/G/T.

Length policy (:func:`to_codes`): every sequence becomes exactly ``length`` bases, **centred**:
a longer sequence is trimmed equally at both ends (its middle ``length`` bases are kept; an odd
excess drops the extra base on the right), a shorter one is padded with N (code 4, an all-zero
one-hot row) equally on both sides (the odd extra N on the right). The default length
(:func:`default_length`) is the longest sequence of the sets, so nothing is trimmed; note that
when positives and negatives differ in length, padding tells a model the length -- give
``--length`` to trim everything to a common length if that is not wanted.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["SeqSet", "SeqSetError", "read_fasta_set", "to_codes", "default_length", "encode", "decode", "write_fasta"]

_TABLE = np.full(256, 255, dtype=np.uint8)
for _ch, _v in zip(b"ACGTN", range(5)):
    _TABLE[_ch] = _v
    _TABLE[ord(chr(_ch).lower())] = _v
for _ch in b"RYSWKMBDHVUryswkmbdhvu-.":
    _TABLE[_ch] = 4
_TABLE[ord("U")] = 3  # RNA U reads as T
_TABLE[ord("u")] = 3
_SKIP = np.zeros(256, dtype=bool)
for _ch in b" \t\r":
    _SKIP[_ch] = True
LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


class SeqSetError(ValueError):
    """A sequence set that cannot be used; the message names the file (and line)."""


@dataclass
class SeqSet:
    """Names and uint8 code arrays (A0 C1 G2 T3 N4) of one FASTA file."""

    path: str
    names: list[str]
    seqs: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def lengths(self) -> np.ndarray:
        """int64 [n]: each record's length."""
        return np.array([len(s) for s in self.seqs], dtype=np.int64)


def encode(text: str | bytes) -> np.ndarray:
    """A DNA string -> uint8 codes (IUPAC -> N); ValueError on other characters."""
    raw = np.frombuffer(text.encode() if isinstance(text, str) else bytes(text), dtype=np.uint8)
    raw = raw[~_SKIP[raw]]
    codes = _TABLE[raw]
    if (codes == 255).any():
        bad = chr(raw[np.flatnonzero(codes == 255)[0]])
        raise ValueError(f"{bad!r} is not a DNA base (expected A, C, G, T, N or an IUPAC code)")
    return codes.copy()


def decode(codes: np.ndarray) -> str:
    """uint8 codes (A0 C1 G2 T3 N4) -> a DNA string."""
    return LETTERS[np.asarray(codes, dtype=np.uint8)].tobytes().decode()


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_fasta_set(path: str | os.PathLike, what: str = "FASTA") -> SeqSet:
    """Read every record of a FASTA file (see the module docstring for the rules)."""
    p = Path(path)
    if not p.exists():
        raise SeqSetError(f"{what} {p}: no such file")
    if not p.is_file():
        raise SeqSetError(f"{what} {p}: not a regular file")
    names: list[str] = []
    seqs: list[np.ndarray] = []
    lines_of: list[int] = []
    chunks: list[np.ndarray] = []

    def flush() -> None:
        if names and len(seqs) < len(names):
            seq = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
            if seq.size == 0:
                raise SeqSetError(f"{what} {p}:{lines_of[-1]}: record {names[-1]!r} is empty (expected DNA bases)")
            if not (seq < 4).any():
                raise SeqSetError(f"{what} {p}:{lines_of[-1]}: record {names[-1]!r} has no valid base "
                                  f"(only N/ambiguity codes; expected A, C, G or T)")
            seqs.append(seq)

    try:
        with _open(p) as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip(b"\n")
                if not line.strip():
                    continue
                if line.startswith(b">"):
                    flush()
                    chunks = []
                    try:
                        head = line[1:].decode("utf-8", "replace").strip()
                    except Exception:  # pragma: no cover
                        head = ""
                    names.append(head.split()[0] if head else f"seq{len(names) + 1}")
                    lines_of.append(lineno)
                    continue
                if line.startswith(b";"):
                    continue
                if not names:
                    raise SeqSetError(f"{what} {p}:{lineno}: sequence before the first '>' header "
                                      f"(expected FASTA: '>name' lines followed by bases)")
                raw = np.frombuffer(line, dtype=np.uint8)
                raw = raw[~_SKIP[raw]]
                codes = _TABLE[raw]
                if (codes == 255).any():
                    bad = chr(raw[np.flatnonzero(codes == 255)[0]])
                    raise SeqSetError(f"{what} {p}:{lineno}: {bad!r} is not a DNA base "
                                      f"(expected A, C, G, T, N or an IUPAC code)")
                chunks.append(codes)
            flush()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise SeqSetError(f"{what} {p}: unreadable ({exc})") from None
    if not seqs:
        raise SeqSetError(f"{what} {p}: no sequences (expected FASTA records '>name' + bases)")
    return SeqSet(str(p), names, seqs)


def default_length(*sets: SeqSet) -> int:
    """The longest sequence of the sets (nothing gets trimmed)."""
    return int(max(int(s.lengths.max()) for s in sets))


def to_codes(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
    """uint8 ``[n, length]``: centred trim or N padding (see the module docstring)."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    out = np.full((len(seqs), length), 4, dtype=np.uint8)
    for i, s in enumerate(seqs):
        n = len(s)
        if n >= length:
            a = (n - length) // 2
            out[i] = s[a:a + length]
        else:
            a = (length - n) // 2
            out[i, a:a + n] = s
    return out


def write_fasta(path: str | os.PathLike, names: Sequence[str], codes: Sequence[np.ndarray], width: int = 80) -> Path:
    """Write code arrays as FASTA (``width`` bases a line); creates the parent directory."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as fh:
        for name, c in zip(names, codes):
            s = decode(c)
            fh.write(f">{name}\n")
            for i in range(0, len(s), width):
                fh.write(s[i:i + width] + "\n")
    return p
