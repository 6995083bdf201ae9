"""The first layer of ``hybrid-dense`` in inference: both-strand one-hot convolution, ReLU, strand
sum and max pool in one native pass over base codes.

:func:`both_strands_conv_pool` is the fast path (CPU, float32, no gradient): a convolution over
one-hot DNA only adds up weight columns, so the kernel (csrc/gru_cpu_onehot_conv.h) looks up
pre-summed columns of ``g`` consecutive bases (5^g combinations, N adding nothing) and keeps the
pooled maxima in registers; it writes the features time-major, the layout the BiGRU reads, and can
write the reverse strand's (the same features reversed in time) beside them in the same buffer.
:func:`both_strands_conv_pool_reference` is the definition it is held to (tests/test_strand_conv.py):
``MaxPool1d(pool)(both_strands_conv(conv, one_hot(codes)))``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bsp_fast import _native
from bsp_fast.models import both_strands_conv, one_hot

__all__ = ["both_strands_conv_pool", "both_strands_conv_pool_reference", "lookup_table", "group_size"]

_BLOCK = 16  # filters per SIMD block of the kernel
_TABLE_BYTES = 1 << 19  # the lookup tables should stay in L2 (here 2 MiB per core)


def group_size(filters: int, kernel_size: int) -> int:
    """Bases looked up together: the largest g <= 3 whose tables stay under 512 KiB."""
    fp = -(-filters // _BLOCK) * _BLOCK
    for g in (3, 2):
        if -(-kernel_size // g) * 5 ** g * 2 * fp * 4 <= _TABLE_BYTES:
            return g
    return 1


def lookup_table(conv: nn.Conv1d, g: int) -> tuple[Tensor, Tensor]:
    """(table [G, 5^g, 2, Fp], bias [2, Fp]) of a one-hot convolution ``conv`` (4 -> F channels, width
    K, padding K // 2) for groups of ``g`` bases: entry (j, r, s, f) is the sum of strand ``s``'s
    filter ``f`` columns ``j g + u`` at the bases of the base-5 digits of ``r`` (digit 4 = N: zero).
    Strand 1 is the reverse complement filter (positions and A C G T reversed)."""
    w = conv.weight.detach().float()
    f, _, k = w.shape
    fp = -(-f // _BLOCK) * _BLOCK
    n_groups = -(-k // g)
    w2 = torch.stack([w, w.flip(1).flip(2)])  # [2, F, 4, K]
    w2 = nn.functional.pad(w2, (0, n_groups * g - k, 0, 1, 0, fp - f))  # [2, Fp, 5, G g]: N row, K and F padded
    r = torch.arange(5 ** g)
    digits = torch.stack([(r // 5 ** (g - 1 - u)) % 5 for u in range(g)], 1)  # [R, g], most significant first
    table = torch.zeros(n_groups, 5 ** g, 2, fp)
    for j in range(n_groups):
        for u in range(g):
            table[j] += w2[:, :, digits[:, u], j * g + u].permute(2, 0, 1)
    b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(f)
    bias = nn.functional.pad(b, (0, fp - f)).repeat(2, 1)
    return table.contiguous(), bias.contiguous()


def _check(conv: nn.Conv1d, codes: Tensor, pool: int) -> None:
    k = conv.kernel_size[0]
    if conv.in_channels != 4 or conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or \
            conv.padding != (k // 2,) or k % 2 != 1:
        raise ValueError("both_strands_conv_pool: needs a 4-channel, stride-1, odd-width convolution padded by "
                         f"width // 2; got {conv}")
    if codes.dim() != 2 or codes.shape[0] == 0 or codes.shape[1] < pool or pool < 1:
        raise ValueError(f"both_strands_conv_pool: codes must be [B, L] with B >= 1 and L >= pool {pool}; "
                         f"got shape {list(codes.shape)}")


@torch.no_grad()
def both_strands_conv_pool(conv: nn.Conv1d, codes: Tensor, pool: int, *, with_reverse: bool = False,
                           table: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Pooled both-strand features of base ``codes`` [B, L] (0-3 A C G T, 4 N) as a [B, T, F] view of
    a time-major buffer (T = L // pool), or with ``with_reverse`` [2B, T, F] whose rows B.. are rows
    0..B-1 reversed in time (the reverse strand's features: the filters scan both strands).

    CPU only, float32, no autograd: inference. ``table``: a precomputed :func:`lookup_table`
    (weights that do not change between calls); it must be the table of ``conv``'s weights.
    """
    _check(conv, codes, pool)
    if codes.device.type != "cpu":
        raise ValueError(f"both_strands_conv_pool: CPU only, got codes on {codes.device}")
    f, k = conv.out_channels, conv.kernel_size[0]
    g = group_size(f, k)
    tab, bias = table if table is not None else lookup_table(conv, g)
    if tab.shape[1] != 5 ** g or tab.shape[3] < f:
        raise ValueError(f"both_strands_conv_pool: a lookup table of shape {list(tab.shape)} does not fit {conv}")
    c = codes.to(torch.uint8).contiguous()
    b, length = c.shape
    t = length // pool
    rows = 2 * b if with_reverse else b
    out = torch.empty(t, rows, f)  # time-major: the BiGRU's input projection reads it without a copy
    _native.load("bsp_fast_gru_cpu").onehot_conv(
        c.data_ptr(), tab.data_ptr(), bias.data_ptr(), out.data_ptr(), rows * f, f, b * f if with_reverse else -1,
        b, length, t, pool, k // 2, tab.shape[0], g, tab.shape[3], f, torch.get_num_threads())
    return out.transpose(0, 1)


def both_strands_conv_pool_reference(conv: nn.Conv1d, codes: Tensor, pool: int, *,
                                     with_reverse: bool = False) -> Tensor:
    """The definition: ``MaxPool1d(pool)(both_strands_conv(conv, one_hot(codes)))`` as [B, T, F]
    (and the reverse strand's, the same reversed in time, as rows B.. with ``with_reverse``)."""
    _check(conv, codes, pool)
    x = nn.functional.max_pool1d(both_strands_conv(conv, one_hot(codes.long()).transpose(1, 2).float()), pool)
    x = x.transpose(1, 2)
    return torch.cat([x, x.flip(1)]) if with_reverse else x
