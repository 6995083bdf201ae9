"""Hidden sizes other than 32/64/128/256 on CUDA run the next kernel size on zero-padded copies
(bsp_fast/gru/cuda_backend.py). The padding logic is checked here without a GPU: the CPU kernel
stands in for the CUDA one at the padded size, and the result must equal the CPU kernel at the
original size (the padded units are inert: r = z = 1/2, n = 0, state 0, zero gradients).
"""

from __future__ import annotations

import pytest
import torch

from bsp_fast.gru import cpu_backend, cuda_backend


@pytest.fixture
def cpu_as_kernel(monkeypatch):
    calls = []

    def fwd(gi, w_hh, b_hh, h0, keep_gates):
        calls.append(("fwd", w_hh.shape[-1]))
        y, saved = cpu_backend.forward(gi.contiguous(), w_hh.contiguous(), b_hh.contiguous(), h0.contiguous())
        return y, (saved if keep_gates else None)

    def bwd(grad_y, y, saved, w_hh, h0):
        calls.append(("bwd", w_hh.shape[-1]))
        return cpu_backend.backward(grad_y.contiguous(), y.contiguous(), saved.contiguous(), w_hh.contiguous(),
                                    h0.contiguous())

    monkeypatch.setattr(cuda_backend, "_forward", fwd)
    monkeypatch.setattr(cuda_backend, "_backward", bwd)
    return calls


@pytest.mark.parametrize("T,B,H", [(1, 1, 4), (7, 3, 17), (5, 4, 40), (3, 2, 100), (4, 3, 200)])
def test_padded_hidden_sizes_equal_unpadded(cpu_as_kernel, T, B, H):
    torch.manual_seed(T + B + H)
    k = H ** -0.5
    gi = torch.randn(T, B, 6 * H)
    w_hh = torch.empty(2, 3 * H, H).uniform_(-k, k)
    b_hh = torch.empty(2, 3 * H).uniform_(-k, k)
    h0 = torch.randn(2, B, H)
    grad_y = torch.randn(T, B, 2 * H)

    y, saved = cuda_backend.forward(gi, w_hh, b_hh, h0)
    y_ref, saved_ref = cpu_backend.forward(gi, w_hh, b_hh, h0)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(saved, saved_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cuda_backend.forward_inference(gi, w_hh, b_hh, h0), y_ref, rtol=1e-5, atol=1e-6)

    got = cuda_backend.backward(grad_y, y, saved, w_hh, h0)
    ref = cpu_backend.backward(grad_y, y_ref, saved_ref, w_hh, h0)
    for a, b, n in zip(got, ref, ["grad_gi", "grad_gh", "grad_h0"]):
        assert a.shape == b.shape, n
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=n)
    Hp = cuda_backend.padded_hidden(H)
    assert Hp > H and ("fwd", Hp) in cpu_as_kernel and ("bwd", Hp) in cpu_as_kernel


def test_padded_hidden():
    assert [cuda_backend.padded_hidden(h) for h in (1, 32, 33, 64, 65, 128, 129, 256)] == [32, 32, 64, 64, 128, 128,
                                                                                            256, 256]
    with pytest.raises(ValueError):
        cuda_backend.padded_hidden(257)
