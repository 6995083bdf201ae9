"""Streaming FASTA reader: plain, gzip or bgzip FASTA -> uint8 codes written to a binary sink.

One pass, bounded memory (16 MB chunks), every byte looked at once by the Cython ``encode_block``
(NumPy reference: :func:`encode_block_ref`). Errors name the file and the 1-based line.

Rules: a record starts with ``>name [description]``; the name is the first word. Sequence lines
may contain A C G T N (any case), IUPAC ambiguity codes R Y S W K M B D H V (-> N), and '\\r',
spaces and tabs (ignored). Blank lines are ignored. Anything else is an error, as are sequence
before the first header, an empty name, an empty record and a duplicate name.
"""

from __future__ import annotations

import gzip
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bsp_fast import _native

CHUNK = 16 << 20

_REF_TABLE = np.full(256, 255, dtype=np.uint8)
for _ch, _v in zip(b"ACGTN", range(5)):
    _REF_TABLE[_ch] = _v
    _REF_TABLE[ord(chr(_ch).lower())] = _v
for _ch in b"RYSWKMBDHVryswkmbdhv":
    _REF_TABLE[_ch] = 4
for _ch in b"\r \t":
    _REF_TABLE[_ch] = 5


class MissingFileError(FileNotFoundError, ValueError):
    """A file that does not exist (both a FileNotFoundError and a ValueError)."""


def require_file(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(2, "no such file" if not p.exists() else "not a regular file", str(p))
    return p


def encode_block_ref(buf, pos: int, end: int, out: np.ndarray, at_line_start: bool):
    """NumPy reference of ``bsp_fast_codec.encode_block`` (same arguments and return value)."""
    arr = np.frombuffer(buf, dtype=np.uint8)[pos:end]
    v = _REF_TABLE[arr]
    nlmask = arr == 10
    # a '>' that starts a line
    # at a line start: the last byte before that is no skipped whitespace is a newline
    real = (v < 5) | nlmask
    last = np.maximum.accumulate(np.where(real, np.arange(len(arr)), -1)) if len(arr) else np.zeros(0, np.int64)
    last_before = np.concatenate([[-1], last[:-1]]).astype(np.int64) if len(arr) else last
    prev_nl = np.where(last_before >= 0, nlmask[np.maximum(last_before, 0)], at_line_start)
    bad = (v == 255) & ~nlmask
    stop = int(np.argmax(bad)) if bad.any() else len(arr)
    status = 0
    if stop < len(arr):
        status = 1 if (arr[stop] == 62 and prev_nl[stop]) else 2
    seg = v[:stop]
    codes = seg[seg < 5]
    out[: len(codes)] = codes
    nl = int(nlmask[:stop].sum())
    ls = at_line_start
    realpos = np.nonzero(real[:stop])[0]
    if len(realpos):
        ls = bool(nlmask[realpos[-1]])
    return pos + stop, len(codes), nl, status, ls


def open_maybe_gzip(path: Path):
    """Binary file object; gzip and bgzip (multi-member gzip) are decompressed on the fly."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=0)


def _read_into(f, view) -> int:
    """readinto that turns gzip failures into a uniform exception."""
    try:
        return f.readinto(view) or 0
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _GzipError(str(e)) from None


class _GzipError(Exception):
    pass


def _line_text(buf, pos: int, n: int, limit: int = 60) -> str:
    end = buf.find(b"\n", pos, n)
    if end < 0:
        end = n
    s = bytes(buf[pos:min(end, pos + limit)]).decode("latin-1")
    return s + ("..." if end > pos + limit else "")


def _encoder(use_ref: bool):
    # the reference only when asked for (tests): a missing build is an error, not a slow path
    return encode_block_ref if use_ref else _native.load("bsp_fast_codec").encode_block


def encode_fasta(path, sink, use_ref: bool = False) -> list[tuple[str, int]]:
    """Encode every record of FASTA ``path``; codes go to ``sink.write``; returns [(name, length)].

    Raises ValueError naming the file and line for any malformed input.
    """
    path = require_file(path)
    encode = _encoder(use_ref)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    # two output buffers: one is written to the sink by a helper thread (the write releases the
    # GIL) while the next chunk is encoded into the other
    outs = [np.empty(CHUNK, dtype=np.uint8), np.empty(CHUNK, dtype=np.uint8)]
    pending = [None, None]
    which = 0
    out = outs[0]
    fill = 0
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bsp_fast-fasta-writer")
    records: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    line = 1  # line number of buf[pos]
    name: str | None = None
    name_line = 0
    rec_len = 0
    at_ls = True
    header_acc: bytearray | None = None  # a header line split across chunks

    def err(msg: str, at_line: int) -> ValueError:
        return ValueError(f"{path}:{at_line}: {msg}")

    def finish_record():
        if name is not None:
            if rec_len == 0:
                raise err(f"empty record '{name}' (a header with no sequence after it)", name_line)
            records.append((name, rec_len))

    def start_record(header: bytes, at_line: int):
        nonlocal name, name_line, rec_len
        finish_record()
        words = header[1:].split()
        if not words:
            raise err("header line '>' with no sequence name", at_line)
        new = words[0].decode("latin-1")
        if new in seen:
            raise err(f"duplicate sequence name '{new}' (first at line {seen[new]})", at_line)
        seen[new] = at_line
        name, name_line, rec_len = new, at_line, 0

    f = open_maybe_gzip(path)
    try:
        while True:
            try:
                n = _read_into(f, mv)
            except _GzipError as e:
                raise err(f"truncated or corrupt gzip data ({e})", line) from None
            if n == 0:
                break
            pos = 0
            fill = 0
            while pos < n:
                if header_acc is not None:
                    nl = buf.find(b"\n", pos, n)
                    if nl < 0:
                        header_acc += mv[pos:n]
                        pos = n
                        break
                    header_acc += mv[pos:nl]
                    start_record(bytes(header_acc).rstrip(b"\r"), line)
                    header_acc = None
                    line += 1
                    at_ls = True
                    pos = nl + 1
                    continue
                pos2, nout, nls, status, at_ls = encode(buf, pos, n, out[fill:], at_ls)
                if nout:
                    if name is None:
                        raise err("sequence before the first '>' header (is this a FASTA file?)", line)
                    fill += nout
                    rec_len += nout
                line += nls
                pos = pos2
                if status == 1:
                    header_acc = bytearray()
                elif status == 2:
                    bad = chr(buf[pos]) if 32 < buf[pos] < 127 else f"byte 0x{buf[pos]:02x}"
                    where = "before the first '>' header (is this a FASTA file?)" if name is None else f"in record '{name}'"
                    text = _line_text(buf, buf.rfind(b"\n", 0, pos) + 1, n)
                    raise err(f"invalid character {bad!r} {where}: expected A C G T N or an IUPAC code "
                              f"(R Y S W K M B D H V); line: {text!r}", line)
            if fill:
                pending[which] = writer.submit(sink.write, memoryview(out)[:fill])
                which ^= 1
                if pending[which] is not None:
                    pending[which].result()
                    pending[which] = None
                out = outs[which]
        if header_acc is not None:
            start_record(bytes(header_acc).rstrip(b"\r"), line)
        finish_record()
        for fut in pending:
            if fut is not None:
                fut.result()
    finally:
        writer.shutdown(wait=True)
        f.close()
    if not records:
        raise ValueError(f"{path}: no FASTA records (expected a '>name' header line followed by sequence)")
    return records
