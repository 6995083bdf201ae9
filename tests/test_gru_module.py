"""FusedBiGRU against nn.GRU(bidirectional=True): parity, state dicts, DNA codes, dropout, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bsp_fast.gru import FusedBiGRU, gru_reference


def _pair(input_size, hidden, layers=2, dropout=0.0, batch_first=True, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    ref = nn.GRU(input_size, hidden, layers, batch_first=batch_first, bidirectional=True, dropout=dropout).to(dtype)
    fused = FusedBiGRU(input_size, hidden, layers, dropout=dropout, batch_first=batch_first).to(dtype)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def _run(module, x, h0, r_out, r_hn):
    """Forward + backward of a random projection; returns out, h_n, dx, dh0, param grads."""
    x = x.detach().clone().requires_grad_(x.is_floating_point())
    h0 = None if h0 is None else h0.detach().clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    out, hn = module(x, h0)
    ((out * r_out).sum() + (hn * r_hn).sum()).backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    return out, hn, (x.grad if x.is_floating_point() else None), (None if h0 is None else h0.grad), grads


def _close(actual, expected, rel):
    """|actual - expected| <= rel * max|expected| elementwise (scale-relative closeness)."""
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


def one_hot(codes: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    return F.one_hot(codes.long(), 5)[..., :4].to(dtype)


# B in {1, 3, 67}, T in {1, 7, 400}, H in {4, 32, 128}, input sizes 4 and 2H, zero / non-zero h0:
# a subset of the product that covers every value (and the long sequence with the large H).
PARITY_CASES = [
    # B, T, H, input_size, nonzero h0
    (1, 1, 4, 4, False),
    (3, 7, 4, 8, True),
    (67, 7, 32, 4, True),
    (3, 1, 32, 64, False),
    (3, 400, 32, 64, True),
    (1, 400, 128, 4, True),
    (3, 7, 128, 256, False),
    (67, 1, 128, 4, True),
]


@pytest.mark.parametrize("B,T,H,I,nonzero_h0", PARITY_CASES)
def test_parity_with_nn_gru_float32(B, T, H, I, nonzero_h0):
    ref, fused = _pair(I, H)
    torch.manual_seed(1)
    x = torch.randn(B, T, I)
    h0 = torch.randn(4, B, H) if nonzero_h0 else None
    r_out, r_hn = torch.randn(B, T, 2 * H), torch.randn(4, B, H)
    a = _run(ref, x, h0, r_out, r_hn)
    b = _run(fused, x, h0, r_out, r_hn)
    _close(b[0], a[0], 1e-5)  # output
    _close(b[1], a[1], 1e-5)  # h_n
    _close(b[2], a[2], 1e-5)  # input gradient
    if nonzero_h0:
        _close(b[3], a[3], 1e-5)
    assert len(a[4]) == len(b[4]) == 16
    for name in a[4]:
        _close(b[4][name], a[4][name], 1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_parity_float64_and_layout(batch_first):
    B, T, H, I = 3, 7, 5, 6
    ref, fused = _pair(I, H, layers=3, batch_first=batch_first, dtype=torch.float64)
    torch.manual_seed(2)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(*shape, dtype=torch.float64)
    h0 = torch.randn(6, B, H, dtype=torch.float64)
    r_out = torch.randn(*shape[:2], 2 * H, dtype=torch.float64)
    r_hn = torch.randn(6, B, H, dtype=torch.float64)
    a = _run(ref, x, h0, r_out, r_hn)
    b = _run(fused, x, h0, r_out, r_hn)
    for u, v in zip(a[:4], b[:4]):
        torch.testing.assert_close(v, u, rtol=1e-10, atol=1e-12)
    for name in a[4]:
        torch.testing.assert_close(b[4][name], a[4][name], rtol=1e-10, atol=1e-12)


def test_reference_matches_nn_gru():
    ref, _ = _pair(4, 6, layers=2)
    x, h0 = torch.randn(2, 9, 4), torch.randn(4, 2, 6)
    out, hn = gru_reference(x, dict(ref.named_parameters()), 2, h0)
    eo, eh = ref(x, h0)
    torch.testing.assert_close(out, eo, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hn, eh, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_both_ways():
    ref = nn.GRU(4, 8, 2, batch_first=True, bidirectional=True)
    fused = FusedBiGRU(4, 8, 2)
    assert list(fused.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert fused.state_dict()[k].shape == v.shape
    fused.load_state_dict(ref.state_dict())
    back = nn.GRU(4, 8, 2, batch_first=True, bidirectional=True)
    back.load_state_dict(fused.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(back(x)[0], fused(x)[0], rtol=1e-5, atol=1e-6)
    assert fused.weight_ih_l1_reverse.shape == (24, 16)


@pytest.mark.parametrize("code_dtype", [torch.uint8, torch.int64])
def test_codes_equal_one_hot(code_dtype):
    torch.manual_seed(3)
    fused = FusedBiGRU(4, 16, 2)
    codes = torch.randint(0, 5, (5, 33)).to(code_dtype)
    codes[0, :4] = 4  # N run
    h0 = torch.randn(4, 5, 16)
    r_out, r_hn = torch.randn(5, 33, 32), torch.randn(4, 5, 16)
    a = _run(fused, one_hot(codes), h0, r_out, r_hn)
    b = _run(fused, codes, h0, r_out, r_hn)
    torch.testing.assert_close(b[0], a[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b[1], a[1], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b[3], a[3], rtol=1e-5, atol=1e-6)
    for name in a[4]:
        torch.testing.assert_close(b[4][name], a[4][name], rtol=1e-5, atol=1e-6)
    # and nn.GRU on the one-hot floats
    ref = nn.GRU(4, 16, 2, batch_first=True, bidirectional=True)
    ref.load_state_dict(fused.state_dict())
    torch.testing.assert_close(b[0], ref(one_hot(codes), h0)[0], rtol=1e-5, atol=1e-6)


def test_codes_time_major_and_float64():
    fused = FusedBiGRU(4, 8, 1, batch_first=False).double()
    codes = torch.randint(0, 5, (11, 3), dtype=torch.uint8)
    out, hn = fused(codes)
    eo, eh = fused(one_hot(codes, torch.float64))
    assert out.dtype == torch.float64 and out.shape == (11, 3, 16) and hn.shape == (2, 3, 8)
    torch.testing.assert_close(out, eo)
    torch.testing.assert_close(hn, eh)


def test_dropout_masks_follow_nn_gru():
    ref, fused = _pair(6, 5, layers=3, dropout=0.4)
    x = torch.randn(4, 9, 6)
    ref.train()
    fused.train()
    # same RNG stream, same mask: nn.GRU drops each layer's [T, B, 2H] output with p (not the last)
    torch.manual_seed(7)
    eo, eh = ref(x)
    torch.manual_seed(7)
    out, hn = fused(x)
    torch.testing.assert_close(out, eo, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hn, eh, rtol=1e-5, atol=1e-6)
    # eval mode: deterministic, no dropout, equal to nn.GRU
    ref.eval()
    fused.eval()
    o1, o2 = fused(x)[0], fused(x)[0]
    assert torch.equal(o1, o2)
    torch.testing.assert_close(o1, ref(x)[0], rtol=1e-5, atol=1e-6)


def test_dropout_statistics(monkeypatch):
    import bsp_fast.gru.module as module

    p = 0.3
    seen = []
    real = F.dropout

    def spy(t, prob, training=True, inplace=False):
        out = real(t, prob, training, inplace)
        seen.append((t.detach(), out.detach(), prob, training))
        return out

    monkeypatch.setattr(module.F, "dropout", spy)
    fused = FusedBiGRU(4, 64, 3, dropout=p).train()
    fused(torch.randint(0, 4, (32, 50), dtype=torch.uint8))
    assert len(seen) == 2  # between layers only, not after the last one
    for inp, out, prob, training in seen:
        assert prob == p and training
        kept = out != 0
        frac_dropped = 1 - kept.float().mean().item()
        n = out.numel()
        assert abs(frac_dropped - p) < 5 * (p * (1 - p) / n) ** 0.5
        torch.testing.assert_close(out[kept], inp[kept] / (1 - p))
    seen.clear()
    fused.eval()
    fused(torch.randint(0, 4, (2, 5), dtype=torch.uint8))
    assert seen == []


def test_non_contiguous_input_and_h0():
    ref, fused = _pair(6, 7)
    base = torch.randn(9, 4, 12)
    x = base[:, :, ::2].transpose(0, 1)  # [4, 9, 6], non-contiguous
    h0 = torch.randn(3, 4, 7, 2)[..., 0].repeat(2, 1, 1)[:4]
    assert not x.is_contiguous()
    out, hn = fused(x, h0)
    eo, eh = ref(x.contiguous(), h0.contiguous())
    torch.testing.assert_close(out, eo, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hn, eh, rtol=1e-5, atol=1e-6)
    codes = torch.randint(0, 5, (12, 40), dtype=torch.uint8)[::3, ::2]
    f4 = FusedBiGRU(4, 3)
    torch.testing.assert_close(f4(codes)[0], f4(one_hot(codes))[0])


def test_unbatched_input_like_nn_gru():
    ref, fused = _pair(5, 4)
    x, h0 = torch.randn(7, 5), torch.randn(4, 4)
    out, hn = fused(x, h0)
    eo, eh = ref(x, h0)
    assert out.shape == eo.shape and hn.shape == eh.shape
    torch.testing.assert_close(out, eo, rtol=1e-5, atol=1e-6)


def test_no_grad_inference_path_matches():
    fused = FusedBiGRU(4, 12, 2)
    codes = torch.randint(0, 5, (6, 21), dtype=torch.uint8)
    with torch.no_grad():
        a = fused(codes)
    b = fused(codes)
    assert not a[0].requires_grad and b[0].requires_grad
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)


def test_bad_input_errors():
    fused = FusedBiGRU(4, 8, 2)
    f6 = FusedBiGRU(6, 8, 2)
    with pytest.raises(ValueError, match="3-D"):
        fused(torch.randn(2, 3, 4, 1))
    with pytest.raises(ValueError, match="2-D"):
        fused(torch.zeros(2, 3, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="features"):
        fused(torch.randn(2, 3, 5))
    with pytest.raises(TypeError, match="input_size=4"):
        f6(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype"):
        fused(torch.randn(2, 3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        fused(torch.randn(2, 3, 4).half())
    with pytest.raises(TypeError, match="dtype"):
        fused(torch.zeros(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="h0 must have shape"):
        fused(torch.randn(2, 3, 4), torch.zeros(2, 2, 8))
    with pytest.raises(ValueError, match="h0 must have shape"):
        fused(torch.randn(2, 3, 4), torch.zeros(4, 3, 8))
    with pytest.raises(TypeError, match="h0"):
        fused(torch.randn(2, 3, 4), torch.zeros(4, 2, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        fused(torch.randn(0, 3, 4))
    with pytest.raises(ValueError, match="empty"):
        fused(torch.randn(2, 0, 4))
    with pytest.raises(ValueError, match="empty"):
        fused(torch.zeros(2, 0, dtype=torch.uint8))
    with pytest.raises(ValueError, match="0..4"):
        fused(torch.full((2, 3), 7, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fused([[0, 1, 2]])
    meta = FusedBiGRU(4, 8, 2, device="meta")
    with pytest.raises(ValueError, match="on cpu but the parameters are on meta"):
        meta(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="h0 is on meta"):
        fused(torch.randn(2, 3, 4), torch.zeros(4, 2, 8, device="meta"))
    with pytest.raises(ValueError, match="positive"):
        FusedBiGRU(4, 0)
    with pytest.raises(ValueError, match="dropout"):
        FusedBiGRU(4, 8, dropout=1.5)


def test_torch_compile_aot_eager_matches_eager():
    torch._dynamo.reset()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = FusedBiGRU(4, 8, 2)
            self.head = nn.Linear(16, 1)

        def forward(self, codes):
            out, _ = self.gru(codes)
            return self.head(out.mean(1)).squeeze(-1)

    torch.manual_seed(0)
    net = Net()
    codes = torch.randint(0, 5, (3, 10), dtype=torch.uint8)
    eager = net(codes)
    eager.sum().backward()
    g_eager = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    got = compiled(codes)
    got.sum().backward()
    torch.testing.assert_close(got, eager)
    for p, g in zip(net.parameters(), g_eager):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.slow
def test_torch_compile_inductor_matches_eager():
    torch._dynamo.reset()
    gru = FusedBiGRU(6, 5, 2)
    x = torch.randn(2, 7, 6)
    compiled = torch.compile(gru)
    out, hn = compiled(x)
    eo, eh = gru(x)
    torch.testing.assert_close(out, eo)
    torch.testing.assert_close(hn, eh)
    out.sum().backward()
