"""Training losses for binary binding labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["binary_focal_loss_with_logits"]


def binary_focal_loss_with_logits(logits: Tensor, target: Tensor, gamma: float = 2.0,
                                  pos_weight: Tensor | float | None = None) -> Tensor:
    """Mean focal loss (Lin et al. 2017) of ``logits`` against 0/1 ``target``:
    ``-w * (1 - p_t) ** gamma * log(p_t)``, p_t the probability given to the true class, w =
    ``pos_weight`` for positives and 1 for negatives.

    ``gamma = 0`` is ``F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)``;
    larger ``gamma`` takes weight off the examples the model already gets right, so rare, hard
    positives (e.g. an uncommon binding-site variant among thousands of easy negatives) keep
    driving the updates. Computed in log space: finite for any finite logits.
    """
    if gamma < 0:
        raise ValueError(f"focal loss: gamma must be >= 0, got {gamma}")
    target = target.to(logits.dtype)
    if pos_weight is not None:
        pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    if gamma == 0:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    log_pt = target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)
    loss = (-torch.expm1(log_pt)).pow(gamma) * -log_pt  # (1 - p_t) ** gamma * -log p_t
    if pos_weight is not None:
        loss = loss * (1 + (pos_weight - 1) * target)
    return loss.mean()
