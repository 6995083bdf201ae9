"""CPU backend of the bi-GRU recurrence op: allocates with torch, runs ``bsp_fast_gru_cpu``.

``forward(gi, w_hh, b_hh, h0) -> (y, saved)`` and
``backward(grad_y, y, saved, w_hh, h0) -> (grad_gi, grad_gh, grad_h0)`` and
``backward_weights(...) -> (grad_gi, grad_w_hh, grad_b_hh, grad_h0)`` with the semantics of
docs/contracts.md. Inputs are made contiguous here; the kernel runs on
``torch.get_num_threads()`` threads of torch's own OpenMP pool (std::threads where the module was
built without OpenMP) with the GIL released.

Large outputs (>= 1 MiB) come from a small pool of recycled storages: a storage is handed out
again only when nothing but the pool refers to it any more (storage use count 1), so a tensor
still held by autograd or by the caller is never overwritten. This saves the page faults of
fresh large allocations (glibc maps every block > 32 MiB anew, e.g. saved at B=32, T=400,
H=128 is 52 MB), which otherwise cost as much as the recurrence itself. ``BSP_FAST_GRU_POOL=0``
turns it off; :func:`clear_buffer_pool` releases what it holds.
"""

from __future__ import annotations

import math
import os
import threading

import torch
from torch import Tensor

from bsp_fast import _native


def _lib():
    # the compiled module, or a one-line NativeModuleMissing (no fall-back to the reference)
    return _native.load("bsp_fast_gru_cpu")


_POOL_ENABLED = os.environ.get("BSP_FAST_GRU_POOL", "1") != "0"
_POOL_MIN_BYTES = 1 << 20
_POOL_MAX_PER_SIZE = 6
_POOL_MAX_BYTES = int(float(os.environ.get("BSP_FAST_GRU_POOL_MB", "2048")) * (1 << 20))
_pool: dict[int, list[torch.UntypedStorage]] = {}
_pool_bytes = 0
_pool_lock = threading.Lock()


def _in_use(s: torch.UntypedStorage) -> bool:
    return torch._C._storage_Use_Count(s._cdata) != 1


def clear_buffer_pool() -> None:
    """Drops the pool's storages (those still in use stay alive with their tensors)."""
    global _pool_bytes
    with _pool_lock:
        _pool.clear()
        _pool_bytes = 0


def _empty(shape: tuple[int, ...], dtype: torch.dtype, stride: tuple[int, ...] | None = None) -> Tensor:
    """torch.empty_strided(shape, stride) on CPU (default: contiguous; ``stride`` must describe a
    dense layout, a permutation of the contiguous one), from the recycling pool when large."""
    global _pool_bytes
    if stride is None:
        stride = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    nbytes = math.prod(shape) * dtype.itemsize
    if not _POOL_ENABLED or nbytes < _POOL_MIN_BYTES:
        return torch.empty_strided(shape, stride, dtype=dtype)
    with _pool_lock:
        entries = _pool.setdefault(nbytes, [])
        storage = next((s for s in entries if not _in_use(s)), None)
        if storage is None:
            if len(entries) >= _POOL_MAX_PER_SIZE or _pool_bytes + nbytes > _POOL_MAX_BYTES:
                # full: forget the free storages of other sizes, then allocate outside the pool
                for size, lst in _pool.items():
                    free = [s for s in lst if not _in_use(s)]
                    _pool_bytes -= size * len(free)
                    lst[:] = [s for s in lst if _in_use(s)]
                return torch.empty_strided(shape, stride, dtype=dtype)
            storage = torch.UntypedStorage(nbytes)
            entries.append(storage)
            _pool_bytes += nbytes
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape, stride)


def y_buffer(T: int, B: int, H: int, dtype: torch.dtype, batch_major: bool = False) -> Tensor:
    """An uninitialised y [T, B, 2H]: contiguous, or with ``batch_major`` laid out as [B, T, 2H] in
    memory (then ``y.transpose(0, 1)`` is a contiguous batch-first output, no copy)."""
    if batch_major:
        return _empty((T, B, 2 * H), dtype, (2 * H, 2 * H * T, 1))
    return _empty((T, B, 2 * H), dtype)


def _rows(t: Tensor) -> tuple[Tensor, int, int]:
    """(t, stride_t, stride_b) for a [T, B, F] tensor whose rows the kernel can read in place (each
    row contiguous, rows not overlapping); otherwise a contiguous copy and its strides."""
    T, B, F = t.shape
    st, sb, sf = t.stride()
    if sf == 1 and st >= F and sb >= F and (st >= sb * B or sb >= st * T):
        return t, st, sb
    t = t.contiguous()
    return t, B * F, F


def tune_malloc() -> bool:
    """Opt-in, process-wide glibc malloc tuning for CPU training: blocks up to 32 MiB come from the
    heap (not fresh mmaps), and freed memory stays in the process (trim threshold 1 GiB, top pad
    64 MiB), so a training step stops page-faulting through fresh memory. The process keeps its
    peak memory. Also enabled by ``BSP_FAST_MALLOC_TUNE=1`` at import. Returns False off glibc.
    """
    return bool(_lib().tune_malloc(32 << 20, 1 << 30, 64 << 20))


if os.environ.get("BSP_FAST_MALLOC_TUNE") == "1" and _native.available("bsp_fast_gru_cpu"):
    tune_malloc()


def _c(t: Tensor) -> Tensor:
    return t if t.is_contiguous() else t.contiguous()


def forward(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, batch_major: bool = False) -> tuple[Tensor, Tensor]:
    T, B, H = gi.shape[0], gi.shape[1], w_hh.shape[-1]
    gi, w_hh, b_hh, h0 = _c(gi), _c(w_hh), _c(b_hh), _c(h0)
    y = y_buffer(T, B, H, gi.dtype, batch_major)
    saved = _empty((T, B, 8 * H), gi.dtype)
    _lib().forward(
        gi.data_ptr(), w_hh.data_ptr(), b_hh.data_ptr(), h0.data_ptr(), y.data_ptr(), saved.data_ptr(),
        T, B, H, y.stride(0), y.stride(1), gi.dtype == torch.float64, torch.get_num_threads(),
    )
    return y, saved


def forward_inference(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, batch_major: bool = False) -> Tensor:
    """Like :func:`forward` but keeps no gates (no backward possible): returns y only."""
    T, B, H = gi.shape[0], gi.shape[1], w_hh.shape[-1]
    gi, w_hh, b_hh, h0 = _c(gi), _c(w_hh), _c(b_hh), _c(h0)
    y = y_buffer(T, B, H, gi.dtype, batch_major)
    _lib().forward(
        gi.data_ptr(), w_hh.data_ptr(), b_hh.data_ptr(), h0.data_ptr(), y.data_ptr(), 0,
        T, B, H, y.stride(0), y.stride(1), gi.dtype == torch.float64, torch.get_num_threads(),
    )
    return y


def _backward(grad_y: Tensor, grad_hn: Tensor | None, y: Tensor, saved: Tensor, w_hh: Tensor, h0: Tensor,
              weights: bool) -> tuple[Tensor, ...]:
    """The kernel's backward: (grad_gi, grad_h0) and either grad_gh (weights False) or the recurrent
    weight and bias gradients summed in the kernel (weights True: grad_gh never written)."""
    T, B, H = y.shape[0], y.shape[1], w_hh.shape[-1]
    (grad_y, gst, gsb), (y, yst, ysb) = _rows(grad_y), _rows(y)
    saved, w_hh, h0 = _c(saved), _c(w_hh), _c(h0)
    grad_hn = _c(grad_hn) if grad_hn is not None else None
    grad_gi = _empty((T, B, 6 * H), y.dtype)
    grad_h0 = y.new_empty(2, B, H)
    if weights:
        grad_gh, grad_w_hh, grad_b_hh = None, y.new_empty(2, 3 * H, H), y.new_empty(2, 3 * H)
    else:
        grad_gh, grad_w_hh, grad_b_hh = _empty((T, B, 6 * H), y.dtype), None, None

    def ptr(t: Tensor | None) -> int:
        return 0 if t is None else t.data_ptr()

    _lib().backward(
        ptr(grad_y), ptr(grad_hn), ptr(y), ptr(saved), ptr(w_hh), ptr(h0), ptr(grad_gi), ptr(grad_gh), ptr(grad_h0),
        ptr(grad_w_hh), ptr(grad_b_hh), T, B, H, yst, ysb, gst, gsb, y.dtype == torch.float64, torch.get_num_threads(),
    )
    return (grad_gi, grad_w_hh, grad_b_hh, grad_h0) if weights else (grad_gi, grad_gh, grad_h0)


def backward(grad_y: Tensor, y: Tensor, saved: Tensor, w_hh: Tensor, h0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """-> (grad_gi [T,B,6H], grad_gh [T,B,6H], grad_h0 [2,B,H]); see docs/contracts.md."""
    return _backward(grad_y, None, y, saved, w_hh, h0, weights=False)


def backward_weights(grad_y: Tensor, grad_hn: Tensor | None, y: Tensor, saved: Tensor, w_hh: Tensor, h0: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> (grad_gi [T,B,6H], grad_w_hh [2,3H,H], grad_b_hh [2,3H], grad_h0 [2,B,H]). The kernel
    accumulates the recurrent weight and bias gradients step by step (grad_gh is never written) and
    starts each direction's backward recurrence from grad_hn [2,B,H] (None: zero)."""
    return _backward(grad_y, grad_hn, y, saved, w_hh, h0, weights=True)


def table_grad(codes: Tensor, grad: Tensor, rows: int) -> Tensor:
    """[rows, F] per-code sums of grad [..., F] over codes [...] (uint8/int32/int64, CPU)."""
    codes = _c(codes)
    if codes.dtype not in (torch.uint8, torch.int32, torch.int64):
        codes = codes.to(torch.int64)
    g = _c(grad).reshape(-1, grad.shape[-1])
    out = g.new_empty(rows, g.shape[1])
    _lib().table_grad(
        codes.data_ptr(), codes.element_size(), codes.numel(), g.data_ptr(), g.shape[1], out.data_ptr(), rows,
        g.dtype == torch.float64, torch.get_num_threads(),
    )
    return out
