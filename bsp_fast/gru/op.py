"""The fused bi-GRU recurrence as torch custom ops (one layer, both directions).

``bsp_fast::bigru_forward(gi, w_hh, b_hh, h0, batch_major=False) -> (y, h_n, saved)`` and
``bsp_fast::bigru_backward(grad_y, y, saved, w_hh, h0) -> (grad_gi, grad_gh, grad_h0)``, exactly as
docs/contracts.md specifies (time-major, both directions in ORIGINAL time):

    gi     [T, B, 6H]  x_t @ W_ih^T + b_ih; columns 0:3H direction 0, 3H:6H direction 1 (r, z, n)
    w_hh   [2, 3H, H]  weight_hh_l{k}, weight_hh_l{k}_reverse
    b_hh   [2, 3H]
    h0     [2, B, H]
    y      [T, B, 2H]  y[t, :, :H] forward state after x_0..x_t, y[t, :, H:] reverse state after x_{T-1}..x_t
    h_n    [2, B, H]   final states: y[T-1, :, :H] and y[0, :, H:] (a copy; its gradient enters
                       the backward kernel as the carry of each direction's first step on CPU, or is
                       folded into grad_y before it on CUDA: no full-size zero tensor per slice)
    saved  [T, B, 8H]  per direction d at d*4H: r, z, n (post-activation), hn = W_hn h_prev + b_hn

With ``batch_major=True`` y is still indexed [T, B, 2H] but laid out as [B, T, 2H] in memory
(strides (2H, 2TH, 1)), so that a batch-first caller gets its output as ``y.transpose(0, 1)``
without a copy; on CPU the kernel writes it so, on CUDA it is a copy. The backward ops take y and
grad_y with any such row strides (each row of 2H contiguous).

Plus ``bsp_fast::bigru_forward_inference(gi, w_hh, b_hh, h0, batch_major=False) -> y`` (no gates
kept, no autograd), which FusedBiGRU uses when no gradient is needed, and
``bsp_fast::bigru_backward_weights(grad_y, grad_hn, y, saved, w_hh, h0) -> (grad_gi, grad_w_hh,
grad_b_hh, grad_h0)``: bigru_backward of ``grad_y`` with ``grad_hn`` (dL/dh_n or None) folded in,
followed by :func:`recurrent_weight_grads` (dW_hh = sum_t g_t^T h_prev, db_hh = sum of g). On CPU
the kernel accumulates those sums step by step while g_t is in cache, never writes grad_gh, and
takes grad_hn as the carry of each direction's first backward step; on CUDA it is the
composition, with the weight gradients as torch GEMMs.

``bigru_forward`` is differentiable (``register_autograd``): its backward runs
``bigru_backward_weights`` (``bigru_backward`` alone when no weight gradient is needed). ``saved``
is an internal buffer: no gradient flows through it.

Kernels: CPU from :mod:`bsp_fast.gru.cpu_backend`; CUDA from :mod:`bsp_fast.gru.cuda_backend`
(imported lazily on the first CUDA call; a clear RuntimeError if it or its compiled module is
missing). Both backends expose ``forward(gi, w_hh, b_hh, h0)`` and ``backward(grad_y, y, saved,
w_hh, h0)``; ``forward_inference`` is optional (else ``forward(...)[0]``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from bsp_fast.gru import cpu_backend

__all__ = [
    "bigru_forward",
    "bigru_backward",
    "bigru_backward_weights",
    "bigru_forward_inference",
    "final_states",
    "recurrent_weight_grads",
]


# --------------------------------------------------------------------------------------------
# argument checks (shared by the real kernels and the fake implementations)


def _check_same(name: str, t: Tensor, ref: Tensor) -> None:
    if t.dtype != ref.dtype:
        raise TypeError(f"bsp_fast::bigru: {name} has dtype {t.dtype}, expected {ref.dtype} (like gi / y)")
    if t.device != ref.device:
        raise ValueError(f"bsp_fast::bigru: {name} is on {t.device}, expected {ref.device} (like gi / y)")


def _check_shape(name: str, t: Tensor, shape: tuple) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"bsp_fast::bigru: {name} must have shape {list(shape)}, got {list(t.shape)}")


def _check_forward(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> tuple[int, int, int]:
    if gi.dim() != 3:
        raise ValueError(f"bsp_fast::bigru_forward: gi must be [T, B, 6H], got shape {list(gi.shape)}")
    if w_hh.dim() != 3 or w_hh.shape[0] != 2:
        raise ValueError(f"bsp_fast::bigru_forward: w_hh must be [2, 3H, H], got shape {list(w_hh.shape)}")
    if gi.dtype not in (torch.float32, torch.float64) and gi.device.type == "cpu":
        raise TypeError(f"bsp_fast::bigru_forward: the CPU kernel takes float32 or float64, got {gi.dtype}")
    T, B = gi.shape[0], gi.shape[1]
    H = w_hh.shape[2]
    _check_shape("w_hh", w_hh, (2, 3 * H, H))
    _check_shape("gi", gi, (T, B, 6 * H))
    _check_shape("b_hh", b_hh, (2, 3 * H))
    _check_shape("h0", h0, (2, B, H))
    for name, t in (("w_hh", w_hh), ("b_hh", b_hh), ("h0", h0)):
        _check_same(name, t, gi)
    if T == 0 or B == 0 or H == 0:
        raise ValueError(f"bsp_fast::bigru_forward: empty input (T={T}, B={B}, H={H})")
    return T, B, H


def _check_backward(grad_y: Tensor, y: Tensor, saved: Tensor, w_hh: Tensor, h0: Tensor) -> tuple[int, int, int]:
    if y.dim() != 3 or w_hh.dim() != 3:
        raise ValueError("bsp_fast::bigru_backward: y must be [T, B, 2H] and w_hh [2, 3H, H]")
    T, B = y.shape[0], y.shape[1]
    H = w_hh.shape[2]
    _check_shape("w_hh", w_hh, (2, 3 * H, H))
    _check_shape("y", y, (T, B, 2 * H))
    _check_shape("grad_y", grad_y, (T, B, 2 * H))
    _check_shape("saved", saved, (T, B, 8 * H))
    _check_shape("h0", h0, (2, B, H))
    for name, t in (("grad_y", grad_y), ("saved", saved), ("w_hh", w_hh), ("h0", h0)):
        _check_same(name, t, y)
    if T == 0 or B == 0 or H == 0:
        raise ValueError(f"bsp_fast::bigru_backward: empty input (T={T}, B={B}, H={H})")
    return T, B, H


def _check_grad_hn(grad_hn: Optional[Tensor], y: Tensor, h0: Tensor) -> None:
    if grad_hn is not None:
        _check_shape("grad_hn", grad_hn, tuple(h0.shape))
        _check_same("grad_hn", grad_hn, y)


def fold_grad_hn(grad_y: Tensor, grad_hn: Optional[Tensor]) -> Tensor:
    """grad_y with dL/dh_n added to the slices h_n copies (y[T-1, :, :H] and y[0, :, H:]); a new tensor."""
    if grad_hn is None:
        return grad_y
    H = grad_y.shape[-1] // 2
    grad_y = grad_y.clone(memory_format=torch.contiguous_format)
    grad_y[-1, :, :H] += grad_hn[0]
    grad_y[0, :, H:] += grad_hn[1]
    return grad_y


# --------------------------------------------------------------------------------------------
# backends

_cuda_backend_module = None


def _cuda_backend():
    global _cuda_backend_module
    if _cuda_backend_module is None:
        try:
            from bsp_fast.gru import cuda_backend
        except ImportError as exc:
            raise RuntimeError(
                "bsp_fast::bigru on CUDA needs bsp_fast/gru/cuda_backend.py and the compiled module "
                "bsp_fast_gru_cuda (built by `pip install .` where nvcc is found); it could not be "
                f"imported: {exc}"
            ) from exc
        _cuda_backend_module = cuda_backend
    return _cuda_backend_module


# --------------------------------------------------------------------------------------------
# the ops


@torch.library.custom_op("bsp_fast::bigru_forward", mutates_args=())
def bigru_forward(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, batch_major: bool = False
                  ) -> tuple[Tensor, Tensor, Tensor]:
    raise NotImplementedError(f"bsp_fast::bigru_forward has no kernel for device {gi.device.type!r} (cpu, cuda)")


@torch.library.custom_op("bsp_fast::bigru_backward", mutates_args=())
def bigru_backward(grad_y: Tensor, y: Tensor, saved: Tensor, w_hh: Tensor, h0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    raise NotImplementedError(f"bsp_fast::bigru_backward has no kernel for device {y.device.type!r} (cpu, cuda)")


@torch.library.custom_op("bsp_fast::bigru_backward_weights", mutates_args=())
def bigru_backward_weights(grad_y: Tensor, grad_hn: Optional[Tensor], y: Tensor, saved: Tensor, w_hh: Tensor,
                           h0: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    raise NotImplementedError(
        f"bsp_fast::bigru_backward_weights has no kernel for device {y.device.type!r} (cpu, cuda)"
    )


@torch.library.custom_op("bsp_fast::bigru_forward_inference", mutates_args=())
def bigru_forward_inference(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, batch_major: bool = False) -> Tensor:
    raise NotImplementedError(
        f"bsp_fast::bigru_forward_inference has no kernel for device {gi.device.type!r} (cpu, cuda)"
    )


# CPU


def final_states(y: Tensor) -> Tensor:
    """h_n [2, B, H] of one layer from its y [T, B, 2H]: forward state at T-1, reverse state at 0."""
    H = y.shape[-1] // 2
    return torch.stack([y[-1, :, :H], y[0, :, H:]])


def _y_like(gi: Tensor, T: int, B: int, H: int, batch_major: bool) -> Tensor:
    """An empty y [T, B, 2H] like the kernels return it: contiguous, or batch-major in memory."""
    if batch_major:
        return gi.new_empty_strided((T, B, 2 * H), (2 * H, 2 * H * T, 1))
    return gi.new_empty(T, B, 2 * H)


def _relayout(y: Tensor, batch_major: bool) -> Tensor:
    """A time-major y [T, B, 2H] in the layout that ``batch_major`` asks for (a copy if it differs)."""
    if not batch_major:
        return y
    out = _y_like(y, y.shape[0], y.shape[1], y.shape[2] // 2, True)
    out.copy_(y)
    return out


@bigru_forward.register_kernel("cpu")
def _forward_cpu(gi, w_hh, b_hh, h0, batch_major=False):
    _check_forward(gi, w_hh, b_hh, h0)
    y, saved = cpu_backend.forward(gi, w_hh, b_hh, h0, batch_major)
    return y, final_states(y), saved


@bigru_backward.register_kernel("cpu")
def _backward_cpu(grad_y, y, saved, w_hh, h0):
    _check_backward(grad_y, y, saved, w_hh, h0)
    return cpu_backend.backward(grad_y, y, saved, w_hh, h0)


@bigru_backward_weights.register_kernel("cpu")
def _backward_weights_cpu(grad_y, grad_hn, y, saved, w_hh, h0):
    _check_backward(grad_y, y, saved, w_hh, h0)
    _check_grad_hn(grad_hn, y, h0)
    return cpu_backend.backward_weights(grad_y, grad_hn, y, saved, w_hh, h0)


@bigru_forward_inference.register_kernel("cpu")
def _forward_inference_cpu(gi, w_hh, b_hh, h0, batch_major=False):
    _check_forward(gi, w_hh, b_hh, h0)
    return cpu_backend.forward_inference(gi, w_hh, b_hh, h0, batch_major)


# CUDA (bsp_fast/gru/cuda_backend.py, imported on first use)


@bigru_forward.register_kernel("cuda")
def _forward_cuda(gi, w_hh, b_hh, h0, batch_major=False):
    _check_forward(gi, w_hh, b_hh, h0)
    y, saved = _cuda_backend().forward(gi, w_hh, b_hh, h0)
    y = _relayout(y, batch_major)
    return y, final_states(y), saved


@bigru_backward.register_kernel("cuda")
def _backward_cuda(grad_y, y, saved, w_hh, h0):
    _check_backward(grad_y, y, saved, w_hh, h0)
    return _cuda_backend().backward(grad_y, y, saved, w_hh, h0)


@bigru_backward_weights.register_kernel("cuda")
def _backward_weights_cuda(grad_y, grad_hn, y, saved, w_hh, h0):
    _check_backward(grad_y, y, saved, w_hh, h0)
    _check_grad_hn(grad_hn, y, h0)
    grad_y = fold_grad_hn(grad_y, grad_hn)
    grad_gi, grad_gh, grad_h0 = _cuda_backend().backward(grad_y, y, saved, w_hh, h0)
    grad_w_hh, grad_b_hh = recurrent_weight_grads(grad_gh, y, h0)
    return grad_gi, grad_w_hh, grad_b_hh, grad_h0


@bigru_forward_inference.register_kernel("cuda")
def _forward_inference_cuda(gi, w_hh, b_hh, h0, batch_major=False):
    _check_forward(gi, w_hh, b_hh, h0)
    backend = _cuda_backend()
    if hasattr(backend, "forward_inference"):
        return _relayout(backend.forward_inference(gi, w_hh, b_hh, h0), batch_major)
    return _relayout(backend.forward(gi, w_hh, b_hh, h0)[0], batch_major)


# fake (meta) implementations: shapes only, for torch.compile / FakeTensor


@bigru_forward.register_fake
def _forward_fake(gi, w_hh, b_hh, h0, batch_major=False):
    T, B, H = _check_forward(gi, w_hh, b_hh, h0)
    return _y_like(gi, T, B, H, batch_major), gi.new_empty(2, B, H), gi.new_empty(T, B, 8 * H)


@bigru_backward.register_fake
def _backward_fake(grad_y, y, saved, w_hh, h0):
    T, B, H = _check_backward(grad_y, y, saved, w_hh, h0)
    return y.new_empty(T, B, 6 * H), y.new_empty(T, B, 6 * H), y.new_empty(2, B, H)


@bigru_backward_weights.register_fake
def _backward_weights_fake(grad_y, grad_hn, y, saved, w_hh, h0):
    T, B, H = _check_backward(grad_y, y, saved, w_hh, h0)
    _check_grad_hn(grad_hn, y, h0)
    return y.new_empty(T, B, 6 * H), y.new_empty(2, 3 * H, H), y.new_empty(2, 3 * H), y.new_empty(2, B, H)


@bigru_forward_inference.register_fake
def _forward_inference_fake(gi, w_hh, b_hh, h0, batch_major=False):
    T, B, H = _check_forward(gi, w_hh, b_hh, h0)
    return _y_like(gi, T, B, H, batch_major)


# --------------------------------------------------------------------------------------------
# autograd


def recurrent_weight_grads(grad_gh: Tensor, y: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """dW_hh [2, 3H, H] and db_hh [2, 3H] from grad_gh [T, B, 6H] (torch GEMMs over all T*B rows).

    h_prev of direction 0 at t is h0[0] (t = 0) or y[t-1, :, :H]; of direction 1 it is h0[1]
    (t = T-1) or y[t+1, :, H:].
    """
    T, B, H = y.shape[0], y.shape[1], h0.shape[-1]
    g = grad_gh.view(T, B, 2, 3 * H)
    g0, g1 = g[:, :, 0], g[:, :, 1]
    dw0 = torch.mm(g0[0].t(), h0[0])
    dw1 = torch.mm(g1[T - 1].t(), h0[1])
    if T > 1:
        dw0 = torch.addmm(dw0, g0[1:].reshape(-1, 3 * H).t(), y[:-1, :, :H].reshape(-1, H))
        dw1 = torch.addmm(dw1, g1[:-1].reshape(-1, 3 * H).t(), y[1:, :, H:].reshape(-1, H))
    db = grad_gh.reshape(T * B, 6 * H).sum(0).view(2, 3 * H)
    return torch.stack([dw0, dw1]), db


def _setup_context(ctx, inputs, output):
    gi, w_hh, b_hh, h0, _ = inputs
    y, _, saved = output
    ctx.save_for_backward(y, saved, w_hh, h0)
    ctx.mark_non_differentiable(saved)
    # saved never gets a gradient: without this, autograd would fill a zero [T, B, 8H] tensor for it
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_y, grad_hn, grad_saved):
    y, saved, w_hh, h0 = ctx.saved_tensors
    if grad_y is None:
        grad_y = torch.zeros_like(y)
    need = ctx.needs_input_grad
    grad_w_hh = grad_b_hh = None
    if need[1] or need[2]:
        # dL/dh_n goes into the kernel (the carry of each direction's first backward step)
        grad_gi, grad_w_hh, grad_b_hh, grad_h0 = bigru_backward_weights(grad_y, grad_hn, y, saved, w_hh, h0)
    else:
        grad_gi, _, grad_h0 = bigru_backward(fold_grad_hn(grad_y, grad_hn), y, saved, w_hh, h0)
    return (
        grad_gi if need[0] else None,
        grad_w_hh if need[1] else None,
        grad_b_hh if need[2] else None,
        grad_h0 if need[3] else None,
        None,
    )


bigru_forward.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------------------------
# input projections into [T, B, 6H] (layer inputs -> gi), as ops so that on CPU their large
# outputs come from cpu_backend's recycling pool (no page faults of fresh 40 MB blocks); on
# other devices they are the plain torch ops.


def _out_buffer(shape: tuple[int, ...], like: Tensor) -> Tensor:
    if like.device.type == "cpu":
        return cpu_backend._empty(shape, like.dtype)
    return like.new_empty(shape)


@torch.library.custom_op("bsp_fast::codes_projection", mutates_args=())
def codes_projection(codes: Tensor, table: Tensor) -> Tensor:
    """gi[t, b] = table[codes[t, b]]: codes [T, B] (integer, 0..R-1), table [R, F] -> [T, B, F]."""
    T, B = codes.shape
    idx = codes.reshape(-1)
    if idx.dtype not in (torch.int32, torch.int64):
        idx = idx.to(torch.int32)
    out = _out_buffer((T, B, table.shape[1]), table)
    torch.index_select(table, 0, idx, out=out.view(T * B, table.shape[1]))
    return out


@codes_projection.register_fake
def _codes_projection_fake(codes, table):
    return table.new_empty(codes.shape[0], codes.shape[1], table.shape[1])


def _codes_projection_setup(ctx, inputs, output):
    codes, table = inputs
    ctx.save_for_backward(codes)
    ctx.rows = table.shape[0]


@torch.library.custom_op("bsp_fast::codes_table_grad", mutates_args=())
def codes_table_grad(codes: Tensor, grad: Tensor, rows: int) -> Tensor:
    """Gradient of codes_projection's table: sums grad [T, B, F] rows into [rows, F] by code."""
    if grad.device.type == "cpu" and grad.dtype in (torch.float32, torch.float64):
        return cpu_backend.table_grad(codes, grad.contiguous(), rows)
    idx = codes.reshape(-1)
    if idx.dtype not in (torch.int32, torch.int64):
        idx = idx.to(torch.int64)
    g = grad.reshape(-1, grad.shape[-1])
    return g.new_zeros(rows, g.shape[1]).index_add_(0, idx, g)


@codes_table_grad.register_fake
def _codes_table_grad_fake(codes, grad, rows):
    return grad.new_empty(rows, grad.shape[-1])


def _codes_projection_backward(ctx, grad):
    (codes,) = ctx.saved_tensors
    return None, codes_table_grad(codes, grad, ctx.rows)


codes_projection.register_autograd(_codes_projection_backward, setup_context=_codes_projection_setup)


@torch.library.custom_op("bsp_fast::time_major_linear", mutates_args=())
def time_major_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x [T, B, F] @ weight[G, F]^T + bias[G] -> [T, B, G] (contiguous)."""
    T, B, Fdim = x.shape
    out = _out_buffer((T, B, weight.shape[0]), x)
    torch.addmm(bias, x.reshape(T * B, Fdim), weight.t(), out=out.view(T * B, weight.shape[0]))
    return out


@time_major_linear.register_fake
def _time_major_linear_fake(x, weight, bias):
    return x.new_empty(x.shape[0], x.shape[1], weight.shape[0])


def _time_major_linear_setup(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)


def _time_major_linear_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    T, B, Fdim = x.shape
    g = grad.reshape(T * B, weight.shape[0])
    need = ctx.needs_input_grad
    gx = torch.mm(g, weight).view(T, B, Fdim) if need[0] else None
    gw = torch.mm(g.t(), x.reshape(T * B, Fdim)) if need[1] else None
    gb = g.sum(0) if need[2] else None
    return gx, gw, gb


time_major_linear.register_autograd(_time_major_linear_backward, setup_context=_time_major_linear_setup)
