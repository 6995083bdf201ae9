"""FusedBiGRU: a drop-in, exactly-equivalent replacement for ``nn.GRU(bidirectional=True)``.

Per layer: the input projection of both directions is one torch GEMM into [T, B, 6H] (for DNA
codes on layer 0, a row gather of a [5, 6H] table built from W_ih^T + b_ih, N = b_ih only); the
recurrence of both directions is one call of ``bsp_fast::bigru_forward`` (the compiled kernel);
dropout between layers is applied here, with nn.GRU's semantics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bsp_fast.gru.op import bigru_forward, bigru_forward_inference, codes_projection, final_states, time_major_linear

__all__ = ["FusedBiGRU"]

_CODE_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class FusedBiGRU(nn.Module):
    """Bidirectional multi-layer GRU with nn.GRU's equations, parameter names and shapes.

    Args:
        input_size: features per step (4 for one-hot DNA; then integer base codes are accepted too).
        hidden_size: H, per direction.
        num_layers: stacked bidirectional layers (default 2).
        dropout: probability of zeroing each element of a layer's output before the next layer
            (not after the last layer), in training mode only -- as in nn.GRU.
        batch_first: input/output as [B, T, *] (default True) or [T, B, *].

    ``forward(x, h0=None) -> (output, h_n)``:
        x: float [B, T, input_size] (float32 or float64, the parameters' dtype), or, when
           input_size == 4, integer base codes [B, T] (uint8/int64; A0 C1 G2 T3, 4 = N = all-zero
           one-hot row), equal to feeding the one-hot floats. Unbatched float [T, input_size] works too.
        h0: [2 * num_layers, B, H] (direction index fastest, as nn.GRU) or None (zeros).
        output: [B, T, 2H] ([T, B, 2H] if not batch_first); h_n: [2 * num_layers, B, H].
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        batch_first: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if int(input_size) <= 0 or int(hidden_size) <= 0 or int(num_layers) <= 0:
            raise ValueError(
                f"input_size, hidden_size and num_layers must be positive, got {input_size}, {hidden_size}, {num_layers}"
            )
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout <= 1.0) or isinstance(dropout, bool):
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.bidirectional = True
        self.bias = True
        H = self.hidden_size
        kw = {"device": device, "dtype": dtype}
        for layer in range(self.num_layers):
            in_f = self.input_size if layer == 0 else 2 * H
            for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
                self.register_parameter("weight_ih" + sfx, nn.Parameter(torch.empty(3 * H, in_f, **kw)))
                self.register_parameter("weight_hh" + sfx, nn.Parameter(torch.empty(3 * H, H, **kw)))
                self.register_parameter("bias_ih" + sfx, nn.Parameter(torch.empty(3 * H, **kw)))
                self.register_parameter("bias_hh" + sfx, nn.Parameter(torch.empty(3 * H, **kw)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.GRU's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every parameter."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op, for code written against nn.GRU."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if not self.batch_first:
            s += ", batch_first=False"
        return s

    # ----------------------------------------------------------------------------------------

    def _layer_weights(self, layer: int):
        sfx = f"_l{layer}"
        p = self._parameters
        w_ih = torch.cat([p["weight_ih" + sfx], p["weight_ih" + sfx + "_reverse"]])  # [6H, in]
        b_ih = torch.cat([p["bias_ih" + sfx], p["bias_ih" + sfx + "_reverse"]])  # [6H]
        w_hh = torch.stack([p["weight_hh" + sfx], p["weight_hh" + sfx + "_reverse"]])  # [2, 3H, H]
        b_hh = torch.stack([p["bias_hh" + sfx], p["bias_hh" + sfx + "_reverse"]])  # [2, 3H]
        return w_ih, b_ih, w_hh, b_hh

    def _check_input(self, x: Tensor, h0: Tensor | None) -> tuple[bool, bool]:
        """Returns (is_codes, unbatched); raises ValueError/TypeError naming the problem."""
        w = self.weight_hh_l0
        if not isinstance(x, Tensor):
            raise TypeError(f"FusedBiGRU: input must be a torch.Tensor, got {type(x).__name__}")
        if x.device != w.device:
            raise ValueError(f"FusedBiGRU: input is on {x.device} but the parameters are on {w.device}")
        if h0 is not None:
            if not isinstance(h0, Tensor):
                raise TypeError(f"FusedBiGRU: h0 must be a torch.Tensor or None, got {type(h0).__name__}")
            if h0.device != w.device:
                raise ValueError(f"FusedBiGRU: h0 is on {h0.device} but the parameters are on {w.device}")
            if h0.dtype != w.dtype:
                raise TypeError(f"FusedBiGRU: h0 has dtype {h0.dtype}, expected the parameters' dtype {w.dtype}")
        is_codes = x.dtype in _CODE_DTYPES
        unbatched = False
        if is_codes:
            if self.input_size != 4:
                raise TypeError(
                    f"FusedBiGRU: integer input ({x.dtype}) means DNA base codes and needs input_size=4, "
                    f"but input_size={self.input_size}; pass float features [B, T, {self.input_size}]"
                )
            if x.dim() != 2:
                raise ValueError(
                    f"FusedBiGRU: integer base codes must be 2-D [B, T] ([T, B] if not batch_first), "
                    f"got shape {list(x.shape)}"
                )
        elif x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            if x.dtype != w.dtype:
                raise TypeError(
                    f"FusedBiGRU: input dtype {x.dtype} does not match the parameters' dtype {w.dtype} "
                    f"(float32 and float64 are supported; convert the input or the module)"
                )
            if x.dim() == 2:
                unbatched = True
            elif x.dim() != 3:
                raise ValueError(
                    f"FusedBiGRU: float input must be 3-D [B, T, {self.input_size}] "
                    f"([T, B, {self.input_size}] if not batch_first) or 2-D unbatched, got shape {list(x.shape)}"
                )
            if x.shape[-1] != self.input_size:
                raise ValueError(
                    f"FusedBiGRU: input has {x.shape[-1]} features in its last dimension, expected input_size={self.input_size}"
                )
        else:
            raise TypeError(f"FusedBiGRU: unsupported input dtype {x.dtype}")
        if w.dtype not in (torch.float32, torch.float64) and w.device.type == "cpu":
            raise TypeError(f"FusedBiGRU: CPU parameters must be float32 or float64, got {w.dtype}")
        return is_codes, unbatched

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        is_codes, unbatched = self._check_input(x, h0)
        H, L = self.hidden_size, self.num_layers
        if unbatched:
            x = x.unsqueeze(0 if self.batch_first else 1)
            if h0 is not None:
                if h0.dim() != 2:
                    raise ValueError(
                        f"FusedBiGRU: for unbatched input h0 must be [{2 * L}, {H}], got shape {list(h0.shape)}"
                    )
                h0 = h0.unsqueeze(1)
        # time-major view [T, B, ...]
        xt = x.transpose(0, 1) if self.batch_first else x
        T, B = xt.shape[0], xt.shape[1]
        if T == 0 or B == 0:
            raise ValueError(f"FusedBiGRU: empty input (batch size {B}, sequence length {T})")
        w0 = self.weight_hh_l0
        if h0 is None:
            h0 = w0.new_zeros(2 * L, B, H)
        elif tuple(h0.shape) != (2 * L, B, H):
            raise ValueError(f"FusedBiGRU: h0 must have shape [{2 * L}, {B}, {H}], got {list(h0.shape)}")

        need_grad = torch.is_grad_enabled() and (
            w0.requires_grad
            or any(p.requires_grad for p in self._parameters.values())
            or h0.requires_grad
            or (not is_codes and xt.requires_grad)
        )

        inp = xt
        h_n = []
        for layer in range(L):
            w_ih, b_ih, w_hh, b_hh = self._layer_weights(layer)
            if layer == 0 and is_codes:
                if not torch.compiler.is_compiling() and inp.numel():
                    lo, hi = torch.aminmax(inp)
                    if int(lo) < 0 or int(hi) > 4:
                        raise ValueError(
                            f"FusedBiGRU: base codes must lie in 0..4 (A0 C1 G2 T3 N4), got values in [{int(lo)}, {int(hi)}]"
                        )
                # one-hot @ W_ih^T + b_ih as a gather: rows A, C, G, T = W_ih^T + b_ih, N = b_ih
                table = torch.cat([w_ih.t() + b_ih, b_ih.unsqueeze(0)])  # [5, 6H]
                gi = codes_projection(inp, table)  # [T, B, 6H]
            else:
                gi = time_major_linear(inp, w_ih, b_ih)  # [T, B, 6H]
            hl = h0[2 * layer : 2 * layer + 2]
            # the last layer of a batch-first module writes its y batch-major: the output is then
            # a transposed view, not a copy (and its gradient comes back in that layout too)
            batch_major = self.batch_first and layer == L - 1
            if need_grad:
                y, hn_layer, _ = bigru_forward(gi, w_hh, b_hh, hl, batch_major)
            else:
                y = bigru_forward_inference(gi, w_hh, b_hh, hl, batch_major)
                hn_layer = final_states(y)
            h_n.append(hn_layer)
            if layer < L - 1 and self.dropout > 0.0 and self.training:
                y = F.dropout(y, self.dropout, True)
            inp = y
        out = inp.transpose(0, 1).contiguous() if self.batch_first else inp
        hn = torch.cat(h_n)
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            hn = hn.squeeze(1)
        return out, hn
