"""First-layer filters initialised from known motifs (``train --init-motifs FILE``), as DanQ-JASPAR did.

A motif of length m becomes one convolution filter: its log-odds (bits against a uniform
background) centred in the filter's width, zero elsewhere, scaled so that the filter's response
(before the ReLU) is 0 at a site scoring ``floor`` bits (the mean score of a typical instance
minus ``FLOOR_BELOW_TYPICAL`` = 4 bits) and ``peak`` at the motif's best site; the remaining filters keep their random
initialisation. The convolutions here scan both strands with each filter (``rc_conv`` /
``both_strands_conv``), so one filter per motif covers both orientations.

In models with a per-position site head (``hybrid-dense``, the occupancy ``hybrid``) the head starts
as a scan of those motifs (:func:`init_site_head_from_motifs`): one hidden unit per motif passes its
filter's response on, weighted so that the site logit rises ln 2 per bit of the motif's score (the
odds of binding double per bit, as a log-odds scan reads it), plus the other, random units, so the
model begins near a PWM scan with the same matrices and learns the partners, context and
look-alikes from there, instead of first having to find its own way to read its motif filters. On
the real-DNA panel (two seeds each) this lifted ctcf-human20 from 0.79 to 0.815 auPRC (the scan:
0.815) and cost max-bjaponicum ~0.01 (0.578 -> 0.566; the scan 0.535); scaling the random units'
output down to a tenth at the start cost max more (0.556) for the same ctcf. The floor 4 bits under
a typical site (not 2) and the ln 2 per bit (not a fixed 2 per unit of response): the ReLU floor
at 2 bits capped what even the exact model restricted to it could reach on ctcf-human20 (0.807
auPRC, under the scan's 0.815; at 4 bits 0.836, the oracle 0.840).

The motif filters then train with the rest, as DanQ-JASPAR's did. ``train --freeze-motifs`` keeps
them as given instead (:func:`freeze_motif_filters`: their gradients are zeroed, so Adam never
moves them): an exact scanner of the known motif with everything around it learnt. On the real-DNA
panel freezing was no better where the matrix is all there is to binding and clearly worse where
look-alikes must be told apart (the filter can then not learn what separates them), so it is an
option, not the default.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch
from torch import nn

from bsp_fast.motif_io import Motif, read_motifs

__all__ = ["motif_filter", "filter_gain", "init_conv_from_motifs", "init_model_from_motifs", "init_site_head_from_motifs",
           "freeze_motif_filters", "kernel_size_for", "read_init_motifs"]

FLOOR_BELOW_TYPICAL = 4.0  # bits: a motif filter responds from this far under a typical instance's score
SITE_NATS_PER_BIT = math.log(2.0)  # the site head's start: binding odds double per bit of motif score


def read_init_motifs(path: str | os.PathLike) -> list[Motif]:
    """The motifs of a JASPAR or MEME file (ValueError naming the file when it holds none)."""
    motifs = read_motifs(path)
    if not motifs:
        raise ValueError(f"{path}: no motif in the file")
    return motifs


def kernel_size_for(motifs: Sequence[Motif], kernel_size: int) -> int:
    """The filter width that fits every motif: ``kernel_size``, or the longest motif's length made odd."""
    longest = max(len(m) for m in motifs)
    k = max(int(kernel_size), longest)
    return k + 1 if k % 2 == 0 else k


def filter_gain(motif: Motif, peak: float = 4.0) -> tuple[float, float]:
    """(floor in bits, filter response per bit) of ``motif``'s filter: 0 at ``floor``, ``peak`` at its best site."""
    lo = motif.log_odds(pseudocount=0.5)  # [m, 4] bits
    best = float(lo.max(axis=1).sum())
    p = motif.probabilities(pseudocount=0.5)
    typical = float((p * lo).sum())  # expected score of an instance drawn from the matrix
    floor = min(typical - FLOOR_BELOW_TYPICAL, best - 1.0)
    return floor, peak / (best - floor)


def motif_filter(motif: Motif, kernel_size: int, peak: float = 4.0) -> tuple[np.ndarray, float]:
    """(weight [4, kernel_size], bias) of the filter for ``motif`` (see the module docstring)."""
    m = len(motif)
    if m > kernel_size:
        raise ValueError(f"motif {motif.id} is {m} bp, longer than the filters ({kernel_size} bp)")
    lo = motif.log_odds(pseudocount=0.5)  # [m, 4] bits
    floor, gain = filter_gain(motif, peak)
    w = np.zeros((4, kernel_size))
    a = (kernel_size - m) // 2
    w[:, a:a + m] = gain * lo.T
    return w, -gain * floor


def init_conv_from_motifs(conv: nn.Conv1d, motifs: Sequence[Motif]) -> None:
    """Overwrite the first ``len(motifs)`` filters of ``conv`` (in place)."""
    f, c, k = conv.weight.shape
    if c != 4:
        raise ValueError(f"expected a convolution over one-hot DNA (4 input channels), got {c}")
    if len(motifs) > f:
        raise ValueError(f"{len(motifs)} motifs for {f} filters: give at most {f} motifs or more --filters")
    with torch.no_grad():
        for i, motif in enumerate(motifs):
            w, b = motif_filter(motif, k)
            conv.weight[i].copy_(torch.as_tensor(w, dtype=conv.weight.dtype))
            if conv.bias is not None:
                conv.bias[i] = b


def init_model_from_motifs(model: nn.Module, motifs: Sequence[Motif]) -> int:
    """Initialise the first convolution of every member of ``model`` (an Ensemble or one model) from
    ``motifs``; returns how many convolutions were set. ValueError for a model without one."""
    members = list(getattr(model, "members", [model]))
    n = 0
    for member in members:
        conv = getattr(member, "conv", None)
        if not isinstance(conv, nn.Conv1d):
            raise ValueError(f"model {getattr(member, 'name', type(member).__name__)!r} has no first-layer "
                             "convolution to initialise (use cnn, hybrid or hybrid-dense)")
        init_conv_from_motifs(conv, motifs)
        init_site_head_from_motifs(member, [SITE_NATS_PER_BIT / filter_gain(m)[1] for m in motifs])
        n += 1
    return n


def init_site_head_from_motifs(member: nn.Module, gains: Sequence[float]) -> bool:
    """Make ``member``'s site head read its first ``len(gains)`` filters as a scan (see the module
    docstring): hidden unit i reads filter i's pooled response only (weight 1 at the centre, bias 0,
    nothing from the other inputs) and adds ``gains[i]`` times it to the site logit; the other units
    and the output bias (the model's P(B) ~ 0.1 start) keep their initialisation. Returns False for
    a model without a site head."""
    site = getattr(member, "site", None)
    if not isinstance(site, nn.Sequential) or not hasattr(site[0], "weight") or not hasattr(site[-1], "weight"):
        return False
    first, last = site[0], site[-1]
    w = first.weight.view(first.weight.shape[0], first.weight.shape[1], -1)  # [d, C, width]
    m = min(len(gains), w.shape[0], w.shape[1])
    with torch.no_grad():
        w[:m] = 0
        for i in range(m):
            w[i, i, w.shape[2] // 2] = 1.0
        if first.bias is not None:
            first.bias[:m] = 0
        last.weight.view(-1)[:m] = torch.as_tensor([float(g) for g in gains[:m]], dtype=last.weight.dtype)
    return True


def freeze_motif_filters(model: nn.Module, n: int) -> int:
    """Keep the first ``n`` filters (weights and biases) of every member's first convolution fixed
    in training (a gradient hook zeroes their rows); returns how many convolutions were hooked."""
    if n <= 0:
        return 0
    k = 0
    for member in list(getattr(model, "members", [model])):
        conv = member.conv

        def zero_rows(grad: torch.Tensor) -> torch.Tensor:
            grad = grad.clone()
            grad[:n] = 0
            return grad

        conv.weight.register_hook(zero_rows)
        if conv.bias is not None:
            conv.bias.register_hook(zero_rows)
        k += 1
    return k
