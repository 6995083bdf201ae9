"""Fused bidirectional GRU: :class:`FusedBiGRU` (nn.GRU-compatible), its custom ops and a
plain-PyTorch reference (:func:`gru_reference`, :func:`bigru_layer_reference`)."""

from bsp_fast.gru.module import FusedBiGRU
from bsp_fast.gru.op import (
    bigru_backward,
    bigru_backward_weights,
    bigru_forward,
    bigru_forward_inference,
    recurrent_weight_grads,
)
from bsp_fast.gru.reference import bigru_layer_reference, gru_reference

__all__ = [
    "FusedBiGRU",
    "bigru_forward",
    "bigru_backward",
    "bigru_backward_weights",
    "bigru_forward_inference",
    "recurrent_weight_grads",
    "gru_reference",
    "bigru_layer_reference",
]
