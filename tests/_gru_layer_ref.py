"""Float64 reference of one bi-GRU layer per docs/contracts.md, shared by the CUDA tests.

Unlike :func:`bsp_fast.gru.reference.bigru_layer_reference` it also returns every step's ``gh``, so
that tests can take gradients with respect to ``gh`` (the backward kernels' second output).
"""

from __future__ import annotations

import torch

__all__ = ["ref_forward", "ref_backward"]


def ref_forward(gi, w_hh, b_hh, h0):
    """Returns y, saved and the per-step gh tensors (for gradients w.r.t. gh)."""
    T, B, H6 = gi.shape
    H = H6 // 6
    ys = [[None] * T for _ in range(2)]
    sv = [[None] * T for _ in range(2)]
    ghs = [[None] * T for _ in range(2)]
    for d in range(2):
        h = h0[d]
        for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
            gh = h @ w_hh[d].T + b_hh[d]
            ghs[d][t] = gh
            x = gi[t, :, 3 * H * d: 3 * H * (d + 1)]
            r = torch.sigmoid(x[:, :H] + gh[:, :H])
            z = torch.sigmoid(x[:, H:2 * H] + gh[:, H:2 * H])
            n = torch.tanh(x[:, 2 * H:] + r * gh[:, 2 * H:])
            h = (1 - z) * n + z * h
            ys[d][t] = h
            sv[d][t] = torch.cat([r, z, n, gh[:, 2 * H:]], dim=1)
    y = torch.stack([torch.cat([ys[0][t], ys[1][t]], 1) for t in range(T)])
    saved = torch.stack([torch.cat([sv[0][t], sv[1][t]], 1) for t in range(T)])
    return y, saved, ghs


def ref_backward(gi, w_hh, b_hh, h0, grad_y):
    gi = gi.detach().double().requires_grad_(True)
    h0 = h0.detach().double().requires_grad_(True)
    y, _, ghs = ref_forward(gi, w_hh.detach().double(), b_hh.detach().double(), h0)
    T = gi.shape[0]
    flat = [ghs[d][t] for d in range(2) for t in range(T)]
    grads = torch.autograd.grad(y, [gi, h0, *flat], grad_outputs=grad_y.double())
    g_flat = grads[2:]
    g_gh = torch.stack([torch.cat([g_flat[t], g_flat[T + t]], 1) for t in range(T)])
    return grads[0], g_gh, grads[1]
