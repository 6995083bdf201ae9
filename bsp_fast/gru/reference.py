"""Readable plain-PyTorch bidirectional GRU: the reference the fused op is tested against.

Same equations and weight layout as ``nn.GRU(bidirectional=True)`` (gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bigru_layer_reference(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """One layer, both directions, in the op's layout (docs/contracts.md).

    gi [T, B, 6H] (input projections incl. b_ih, direction 0 then 1), w_hh [2, 3H, H],
    b_hh [2, 3H], h0 [2, B, H]  ->  (y [T, B, 2H], saved [T, B, 8H]) with saved holding, per
    direction, r, z, n and hn = W_hn h_prev + b_hn.
    """
    T, B, _ = gi.shape
    H = w_hh.shape[-1]
    ys: list[list[Tensor]] = [[], []]
    sv: list[list[Tensor]] = [[], []]
    for d in range(2):
        h = h0[d]
        steps = range(T) if d == 0 else range(T - 1, -1, -1)
        for t in steps:
            xr, xz, xn = gi[t, :, 3 * H * d : 3 * H * (d + 1)].chunk(3, dim=-1)
            hr, hz, hn = F.linear(h, w_hh[d], b_hh[d]).chunk(3, dim=-1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            ys[d].append(h)
            sv[d].append(torch.cat([r, z, n, hn], dim=-1))
        if d == 1:
            ys[d].reverse()
            sv[d].reverse()
    y = torch.cat([torch.stack(ys[0]), torch.stack(ys[1])], dim=-1)
    saved = torch.cat([torch.stack(sv[0]), torch.stack(sv[1])], dim=-1)
    return y, saved


def gru_reference(
    x: Tensor,
    weights: dict[str, Tensor],
    num_layers: int,
    h0: Tensor | None = None,
    batch_first: bool = True,
) -> tuple[Tensor, Tensor]:
    """Bidirectional multi-layer GRU from ``nn.GRU``-named weights (no dropout).

    x [B, T, F] (or [T, B, F] with batch_first=False), weights as in
    ``nn.GRU(..., bidirectional=True).state_dict()``, h0 [2 * num_layers, B, H] or None.
    Returns (output [B, T, 2H] (or [T, B, 2H]), h_n [2 * num_layers, B, H]).
    """
    if batch_first:
        x = x.transpose(0, 1)
    T, B, _ = x.shape
    H = weights["weight_hh_l0"].shape[1]
    if h0 is None:
        h0 = x.new_zeros(2 * num_layers, B, H)
    inp = x
    h_n = []
    for layer in range(num_layers):
        sfx = f"_l{layer}"
        w_ih = torch.cat([weights["weight_ih" + sfx], weights["weight_ih" + sfx + "_reverse"]])
        b_ih = torch.cat([weights["bias_ih" + sfx], weights["bias_ih" + sfx + "_reverse"]])
        w_hh = torch.stack([weights["weight_hh" + sfx], weights["weight_hh" + sfx + "_reverse"]])
        b_hh = torch.stack([weights["bias_hh" + sfx], weights["bias_hh" + sfx + "_reverse"]])
        gi = F.linear(inp, w_ih, b_ih)
        y, _ = bigru_layer_reference(gi, w_hh, b_hh, h0[2 * layer : 2 * layer + 2])
        h_n += [y[-1, :, :H], y[0, :, H:]]
        inp = y
    out = inp.transpose(0, 1) if batch_first else inp
    return out, torch.stack(h_n)
