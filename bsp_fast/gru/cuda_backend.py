"""CUDA backend of the fused bi-GRU recurrence: thin torch wrapper around ``bsp_fast_gru_cuda``.

``forward(gi, w_hh, b_hh, h0) -> (y, saved)``, ``forward_inference(gi, w_hh, b_hh, h0) -> y`` and
``backward(grad_y, y, saved, w_hh, h0) -> (grad_gi, grad_gh, grad_h0)`` with exactly the semantics of
docs/contracts.md (one layer, both directions, time in original order for both). Every output is
allocated here with torch on the input's device; the kernels run on torch's current stream.

Precision modes (selected by ``gi.dtype``; ``backward`` selects by ``y.dtype``):

* ``torch.float32``  -- exact fp32 FFMA path (no TF32, IEEE expf/tanhf): parity with nn.GRU at ~1e-5.
* ``torch.bfloat16`` -- gi / y / saved / grad_y / grad_gi / grad_gh and W_hh in bf16; the recurrent
  state, b_hh, h0, grad_h0 and every accumulation in fp32.
* ``torch.float64``  -- fp64 throughout (for gradcheck; W_hh read from L2, not tuned).

Output dtypes: y, saved, grad_gi, grad_gh have gi's (y's) dtype; grad_h0 has h0's dtype. w_hh, b_hh
and h0 may come in any floating dtype; they are converted here (W_hh to the mode's storage type,
b_hh / h0 to fp32, or fp64 in the fp64 mode). There is no TF32 tensor-core mode yet.

Kernels: fp32 / fp64, and bf16 at H = 256, run FFMA kernels (W_hh in shared memory when it fits, else
read through L1/L2). bf16 at H <= 128 runs tensor-core kernels (mma.sync m16n8k16, W_hh held in
registers, fp32 accumulation); ``BSP_FAST_GRU_MMA=0`` in the environment selects the bf16 FFMA kernels
instead (read at every call; for A/B comparisons and as a fallback).

Hidden sizes: the kernels exist for 32, 64, 128, 256; any other H <= 256 runs the next size on
zero-padded copies (exact: see ``padded_hidden``), at the cost of the copies. Any B >= 0 and T >= 0.
"""

from __future__ import annotations

import os

import torch

from bsp_fast import _native

SUPPORTED_HIDDEN = (32, 64, 128, 256)

_MODES = {torch.float32: 0, torch.bfloat16: 1, torch.float64: 2}


def available() -> bool:
    """True when the compiled module is present and torch sees a CUDA GPU."""
    # the module is built only where nvcc exists; importing it never touches the GPU
    return _native.available("bsp_fast_gru_cuda") and torch.cuda.is_available()


def _require_ext():
    return _native.load("bsp_fast_gru_cuda")


def _mode(dtype: torch.dtype) -> int:
    try:
        return _MODES[dtype]
    except KeyError:
        raise TypeError(f"CUDA bi-GRU supports float32, bfloat16 and float64, got {dtype}") from None


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _allow_mma() -> bool:
    return os.environ.get("BSP_FAST_GRU_MMA", "1") != "0"


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def _check_hidden(H: int) -> None:
    if H not in SUPPORTED_HIDDEN:
        raise ValueError(f"CUDA bi-GRU supports hidden sizes {SUPPORTED_HIDDEN}, got {H}")


def plan(dtype: torch.dtype, B: int, H: int, backward: bool = False, device=None) -> dict:
    """The launch layout the kernels use for this call (rows per thread/block, blocks, shared memory)."""
    ext = _require_ext()
    dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    return ext.plan(_mode(dtype), bool(backward), int(B), int(H), dev.index if dev.index is not None else 0, _allow_mma())


def _forward(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor, keep_gates: bool):
    ext = _require_ext()
    if gi.dim() != 3 or gi.shape[2] % 6 != 0:
        raise ValueError(f"gi must be [T, B, 6H], got {tuple(gi.shape)}")
    T, B, H6 = gi.shape
    H = H6 // 6
    _check_hidden(H)
    if tuple(w_hh.shape) != (2, 3 * H, H) or tuple(b_hh.shape) != (2, 3 * H) or tuple(h0.shape) != (2, B, H):
        raise ValueError(
            f"shape mismatch: gi {tuple(gi.shape)}, w_hh {tuple(w_hh.shape)}, b_hh {tuple(b_hh.shape)}, h0 {tuple(h0.shape)}"
        )
    dev = gi.device
    if dev.type != "cuda" or any(t.device != dev for t in (w_hh, b_hh, h0)):
        raise ValueError("all tensors must be on the same CUDA device")
    mode = _mode(gi.dtype)
    acc = _acc_dtype(gi.dtype)
    gi = gi.contiguous()
    w_t = w_hh.detach().to(gi.dtype).transpose(1, 2).contiguous()  # [2, H, 3H]
    b = b_hh.detach().to(acc).contiguous()
    h = h0.detach().to(acc).contiguous()
    y = torch.empty((T, B, 2 * H), dtype=gi.dtype, device=dev)
    saved = torch.empty((T, B, 8 * H), dtype=gi.dtype, device=dev) if keep_gates else None
    if T > 0 and B > 0:
        with torch.cuda.device(dev):
            ext.forward(
                mode, T, B, H, gi.data_ptr(), w_t.data_ptr(), b.data_ptr(), h.data_ptr(),
                y.data_ptr(), saved.data_ptr() if saved is not None else 0, _stream(dev), dev.index, _allow_mma(),
            )
    return y, saved


def _backward(grad_y: torch.Tensor, y: torch.Tensor, saved: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor):
    ext = _require_ext()
    if y.dim() != 3 or y.shape[2] % 2 != 0:
        raise ValueError(f"y must be [T, B, 2H], got {tuple(y.shape)}")
    T, B, H2 = y.shape
    H = H2 // 2
    _check_hidden(H)
    if (
        tuple(grad_y.shape) != (T, B, 2 * H)
        or tuple(saved.shape) != (T, B, 8 * H)
        or tuple(w_hh.shape) != (2, 3 * H, H)
        or tuple(h0.shape) != (2, B, H)
    ):
        raise ValueError(
            f"shape mismatch: grad_y {tuple(grad_y.shape)}, y {tuple(y.shape)}, saved {tuple(saved.shape)}, "
            f"w_hh {tuple(w_hh.shape)}, h0 {tuple(h0.shape)}"
        )
    dev = y.device
    if dev.type != "cuda" or any(t.device != dev for t in (grad_y, saved, w_hh, h0)):
        raise ValueError("all tensors must be on the same CUDA device")
    dt = y.dtype
    mode = _mode(dt)
    acc = _acc_dtype(dt)
    gy = grad_y.to(dt).contiguous()
    yc = y.contiguous()
    sv = saved.to(dt).contiguous()
    w = w_hh.detach().to(dt).contiguous()  # [2, 3H, H] as stored
    h = h0.detach().to(acc).contiguous()
    grad_gi = torch.empty((T, B, 6 * H), dtype=dt, device=dev)
    grad_gh = torch.empty((T, B, 6 * H), dtype=dt, device=dev)
    if T == 0 or B == 0:
        return grad_gi, grad_gh, torch.zeros_like(h0)
    grad_h0 = torch.empty((2, B, H), dtype=acc, device=dev)
    with torch.cuda.device(dev):
        ext.backward(
            mode, T, B, H, gy.data_ptr(), yc.data_ptr(), sv.data_ptr(), w.data_ptr(), h.data_ptr(),
            grad_gi.data_ptr(), grad_gh.data_ptr(), grad_h0.data_ptr(), _stream(dev), dev.index, _allow_mma(),
        )
    return grad_gi, grad_gh, grad_h0.to(h0.dtype)


# ---- any H <= 256: zero-padding to the next kernel size -------------------------------------------
#
# A GRU padded with hidden units whose rows and columns of W_hh, b_hh, gi and h0 are zero computes the
# same real units: the padded units see r = z = 1/2, n = tanh(0) = 0, so their state stays 0 from
# h0 = 0 and, through their zero columns of W_hh, never reaches a real unit; in backward their
# gradients stay 0 (zero grad_y and zero columns). So H in 1..256 runs the kernel of the next size in
# SUPPORTED_HIDDEN on padded copies, and the outputs are sliced back.


def padded_hidden(H: int) -> int:
    for p in SUPPORTED_HIDDEN:
        if H <= p:
            return p
    raise ValueError(f"CUDA bi-GRU supports hidden sizes up to {SUPPORTED_HIDDEN[-1]}, got {H}")


def _pad_last(t: torch.Tensor, groups: tuple[int, ...], H: int, Hp: int) -> torch.Tensor:
    """[..., prod(groups) * H] -> [..., prod(groups) * Hp], zero-filled, each group of H padded to Hp."""
    lead = t.shape[: t.dim() - 1]
    out = t.new_zeros(*lead, *groups, Hp)
    out[..., :H] = t.reshape(*lead, *groups, H)
    return out.reshape(*lead, -1)


def _unpad_last(t: torch.Tensor, groups: tuple[int, ...], H: int, Hp: int) -> torch.Tensor:
    lead = t.shape[: t.dim() - 1]
    return t.reshape(*lead, *groups, Hp)[..., :H].reshape(*lead, -1)


def pad_forward_inputs(gi, w_hh, b_hh, h0, Hp: int):
    H = w_hh.shape[2]
    w = w_hh.new_zeros(2, 3, Hp, Hp)
    w[:, :, :H, :H] = w_hh.detach().reshape(2, 3, H, H)
    return (_pad_last(gi, (2, 3), H, Hp), w.reshape(2, 3 * Hp, Hp), _pad_last(b_hh.detach(), (3,), H, Hp),
            _pad_last(h0.detach(), (1,), H, Hp))


def forward(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor):
    """gi [T,B,6H], w_hh [2,3H,H], b_hh [2,3H], h0 [2,B,H] -> (y [T,B,2H], saved [T,B,8H])."""
    H = w_hh.shape[-1]
    Hp = padded_hidden(H)
    if Hp == H:
        return _forward(gi, w_hh, b_hh, h0, keep_gates=True)
    y, saved = _forward(*pad_forward_inputs(gi, w_hh, b_hh, h0, Hp), keep_gates=True)
    return _unpad_last(y, (2,), H, Hp), _unpad_last(saved, (2, 4), H, Hp)


def forward_inference(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Like :func:`forward` but keeps no gates (no backward possible; 4x less output traffic): y only."""
    H = w_hh.shape[-1]
    Hp = padded_hidden(H)
    if Hp == H:
        return _forward(gi, w_hh, b_hh, h0, keep_gates=False)[0]
    y, _ = _forward(*pad_forward_inputs(gi, w_hh, b_hh, h0, Hp), keep_gates=False)
    return _unpad_last(y, (2,), H, Hp)


def backward(grad_y: torch.Tensor, y: torch.Tensor, saved: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor):
    """-> (grad_gi [T,B,6H], grad_gh [T,B,6H], grad_h0 [2,B,H]); see docs/contracts.md."""
    H = w_hh.shape[-1]
    Hp = padded_hidden(H)
    if Hp == H:
        return _backward(grad_y, y, saved, w_hh, h0)
    w = w_hh.new_zeros(2, 3, Hp, Hp)
    w[:, :, :H, :H] = w_hh.detach().reshape(2, 3, H, H)
    g_gi, g_gh, g_h0 = _backward(
        _pad_last(grad_y, (2,), H, Hp), _pad_last(y, (2,), H, Hp), _pad_last(saved, (2, 4), H, Hp),
        w.reshape(2, 3 * Hp, Hp), _pad_last(h0.detach(), (1,), H, Hp),
    )
    return _unpad_last(g_gi, (2, 3), H, Hp), _unpad_last(g_gh, (2, 3), H, Hp), _unpad_last(g_h0, (1,), H, Hp)
