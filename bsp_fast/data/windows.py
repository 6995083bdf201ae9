"""Batch window extraction: the compiled kernels (``bsp_fast_codec``) and their plain-NumPy reference.

A genome is one flat uint8 code array ``data`` (all chromosomes end to end, A0 C1 G2 T3 N4) with
per-chromosome ``offsets`` and ``lengths``. A window is (chromosome id, start, strand); its part
outside ``[0, length)`` of its chromosome is N; strand -1 gives the reverse complement (reversed
AND complemented, N stays N). One-hot is float32 [B, L, 4] in A, C, G, T order with N all zero.

``extract_codes`` / ``extract_one_hot`` use the Cython kernels and, for large batches, split the
rows over a small persistent thread pool (the kernels release the GIL; no OpenMP, so nothing
fights torch's own libgomp). ``codes_ref`` / ``one_hot_ref`` are the readable references the
tests hold the kernels to.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bsp_fast import _native


def _codec():
    # the compiled module, or a one-line NativeModuleMissing: never a silent NumPy fall-back
    return _native.load("bsp_fast_codec")

__all__ = ["codes_ref", "one_hot_ref", "extract_codes", "extract_one_hot", "COMPLEMENT", "ONE_HOT_TABLE"]

COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
ONE_HOT_TABLE = np.zeros((5, 4), dtype=np.float32)
ONE_HOT_TABLE[np.arange(4), np.arange(4)] = 1.0

# Rows per thread below which splitting a batch costs more than it gains.
_MIN_ROWS_PER_THREAD = 64
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# reference (NumPy)


def codes_ref(data, offsets, lengths, chrom_ids, starts, length: int, strand=None) -> np.ndarray:
    """Plain-NumPy window extraction: uint8 [B, length]."""
    data = np.asarray(data)
    chrom_ids = np.asarray(chrom_ids, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    pos = starts[:, None] + np.arange(length, dtype=np.int64)[None, :]
    clen = np.asarray(lengths, dtype=np.int64)[chrom_ids][:, None]
    inside = (pos >= 0) & (pos < clen)
    flat = np.asarray(offsets, dtype=np.int64)[chrom_ids][:, None] + np.where(inside, pos, 0)
    out = np.where(inside, data[flat] if data.size else 4, 4).astype(np.uint8)
    if strand is not None:
        rev = np.asarray(strand) < 0
        out[rev] = COMPLEMENT[np.minimum(out[rev], 4)][:, ::-1]
    return out


def one_hot_ref(data, offsets, lengths, chrom_ids, starts, length: int, strand=None) -> np.ndarray:
    """Plain-NumPy one-hot: float32 [B, length, 4]."""
    codes = codes_ref(data, offsets, lengths, chrom_ids, starts, length, strand)
    return ONE_HOT_TABLE[np.minimum(codes, 4)]


# ---------------------------------------------------------------------------------------------
# compiled, threaded


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="bsp_fast-windows")
            _pool_size = n
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def default_threads() -> int:
    """``BSP_FAST_DATA_THREADS`` or 1 (measured: on 2 busy cores extra threads do not pay)."""
    try:
        return max(1, int(os.environ.get("BSP_FAST_DATA_THREADS", "1")))
    except ValueError:
        return 1


def _run(kernel, data, offsets, lengths, chrom_ids, starts, strand, out, n_threads):
    B = out.shape[0]
    n = min(n_threads, max(1, B // _MIN_ROWS_PER_THREAD))
    if n <= 1:
        kernel(data, offsets, lengths, chrom_ids, starts, strand, out, 0, B)
        return out
    pool = _get_pool(n)
    bounds = np.linspace(0, B, n + 1).astype(np.int64)
    futs = [
        pool.submit(kernel, data, offsets, lengths, chrom_ids, starts, strand, out, int(bounds[i]), int(bounds[i + 1]))
        for i in range(1, n)
    ]
    kernel(data, offsets, lengths, chrom_ids, starts, strand, out, int(bounds[0]), int(bounds[1]))
    for f in futs:
        f.result()
    return out


def _check_out(out, shape, dtype):
    """``out`` itself, or its first ``shape[0]`` rows when it has more (a loader's last, short batch)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)  # e.g. a CPU torch tensor (shares memory)
    if (out.ndim != len(shape) or out.shape[1:] != shape[1:] or out.shape[0] < shape[0] or out.dtype != dtype
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous {np.dtype(dtype).name} array of shape {shape} "
                         f"(or with more rows), got {out.dtype} {out.shape}")
    return out if out.shape[0] == shape[0] else out[: shape[0]]


def _prepare(data, offsets, lengths, chrom_ids, starts, strand):
    """Contiguous arrays of the kernels' dtypes; ids checked (an id out of range would read wild memory)."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    chrom_ids = np.ascontiguousarray(chrom_ids, dtype=np.int64)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    if chrom_ids.shape != starts.shape or starts.ndim != 1:
        raise ValueError(f"chrom_ids {chrom_ids.shape} and starts {starts.shape} must be equal 1-D shapes")
    if offsets.shape != lengths.shape:
        raise ValueError("offsets and lengths differ in shape")
    if chrom_ids.size and (chrom_ids.min() < 0 or chrom_ids.max() >= len(lengths)):
        raise IndexError(f"chromosome ids must lie in [0, {len(lengths)})")
    if len(lengths) and int(offsets[-1]) + int(lengths[-1]) > len(data):
        raise ValueError("offsets/lengths run past the end of data")
    if strand is not None:
        strand = np.ascontiguousarray(strand, dtype=np.int8)
        if strand.shape != starts.shape:
            raise ValueError(f"strand {strand.shape} must have the shape of starts {starts.shape}")
    return offsets, lengths, chrom_ids, starts, strand


def extract_codes(data, offsets, lengths, chrom_ids, starts, length: int, strand=None, out=None,
                  n_threads: int | None = None) -> np.ndarray:
    """uint8 [B, length] windows (strand: None or +1/-1 per row; negative = reverse complement)."""
    offsets, lengths, chrom_ids, starts, strand = _prepare(data, offsets, lengths, chrom_ids, starts, strand)
    B = len(starts)
    out = _check_out(out, (B, int(length)), np.uint8)
    return _run(_codec().codes_into, data, offsets, lengths, chrom_ids, starts, strand, out,
                n_threads or default_threads())


def extract_one_hot(data, offsets, lengths, chrom_ids, starts, length: int, strand=None, out=None,
                    n_threads: int | None = None) -> np.ndarray:
    """float32 [B, length, 4] one-hot windows (A, C, G, T; N zero)."""
    offsets, lengths, chrom_ids, starts, strand = _prepare(data, offsets, lengths, chrom_ids, starts, strand)
    B = len(starts)
    out = _check_out(out, (B, int(length), 4), np.float32)
    return _run(_codec().one_hot_into, data, offsets, lengths, chrom_ids, starts, strand, out,
                n_threads or default_threads())
