"""CUDA bi-GRU (bsp_fast/gru/cuda_backend.py, csrc/gru_cuda*.cu*) against references. Needs a GPU.

Tolerances (all scale-aware: max|a - b| <= tol * max(1, max|b|)):
  fp32 kernel vs float64 reference / cuDNN fp32 (TF32 off): outputs 2e-5, gradients 1e-4
  bf16 kernels (tensor-core and FFMA) vs float64 reference (same bf16-rounded inputs): outputs 2e-2,
  gradients 5e-2
  fp64 kernel: torch.autograd.gradcheck (eps 1e-6, atol 1e-5)
"""

from __future__ import annotations

import math

import pytest
import torch
from _gru_layer_ref import ref_backward, ref_forward  # tests/ is on sys.path (conftest.py)

pytestmark = pytest.mark.cuda

DEV = "cuda"


@pytest.fixture(autouse=True)
def _no_tf32():
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def cb():
    from bsp_fast.gru import cuda_backend

    assert cuda_backend.available(), "bsp_fast_gru_cuda is not built or no GPU"
    return cuda_backend


def close(a, b, tol, what=""):
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    assert torch.isfinite(a).all(), f"{what}: non-finite values"
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, b.abs().max().item() if b.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max abs err {err:.3e} > {tol:.1e} * {scale:.3g}"


def random_layer(T, B, H, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = 1 / math.sqrt(H)
    gi = torch.randn(T, B, 6 * H, generator=g, dtype=torch.float64) * 0.7
    w_hh = (torch.rand(2, 3 * H, H, generator=g, dtype=torch.float64) * 2 - 1) * k
    b_hh = (torch.rand(2, 3 * H, generator=g, dtype=torch.float64) * 2 - 1) * k
    h0 = torch.randn(2, B, H, generator=g, dtype=torch.float64) * 0.5
    grad_y = torch.randn(T, B, 2 * H, generator=g, dtype=torch.float64)
    return [t.to(DEV, dtype) for t in (gi, w_hh, b_hh, h0, grad_y)]


# ---- autograd over the backend (the contract's weight-gradient GEMMs), independent of op.py ----------


class BackendLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, w_hh, b_hh, h0):
        y, saved = cb().forward(gi, w_hh, b_hh, h0)
        ctx.save_for_backward(y, saved, w_hh, h0)
        return y

    @staticmethod
    def backward(ctx, gy):
        y, saved, w_hh, h0 = ctx.saved_tensors
        g_gi, g_gh, g_h0 = cb().backward(gy.contiguous(), y, saved, w_hh, h0)
        H = w_hh.shape[2]
        acc = torch.float64 if y.dtype == torch.float64 else torch.float32
        yf, gghf = y.to(acc), g_gh.to(acc)
        hp0 = torch.cat([h0[0:1].to(acc), yf[:-1, :, :H]], 0)  # h_prev of direction 0 at each t
        hp1 = torch.cat([yf[1:, :, H:], h0[1:2].to(acc)], 0)   # h_prev of direction 1 at each t
        dw0 = gghf[..., : 3 * H].reshape(-1, 3 * H).T @ hp0.reshape(-1, H)
        dw1 = gghf[..., 3 * H:].reshape(-1, 3 * H).T @ hp1.reshape(-1, H)
        db = gghf.sum((0, 1)).view(2, 3 * H)
        return g_gi, torch.stack([dw0, dw1]).to(w_hh.dtype), db.to(w_hh.dtype), g_h0


def layer_params(gru, k=0):
    sfx = [f"_l{k}", f"_l{k}_reverse"]
    w_ih = [getattr(gru, "weight_ih" + s) for s in sfx]
    b_ih = [getattr(gru, "bias_ih" + s) for s in sfx]
    w_hh = torch.stack([getattr(gru, "weight_hh" + s) for s in sfx])
    b_hh = torch.stack([getattr(gru, "bias_hh" + s) for s in sfx])
    return w_ih, b_ih, w_hh, b_hh


# ---- shapes ------------------------------------------------------------------------------------------

# (T, B, H): CPU-test-like small shapes, odd B, T = 1, long T, every H.
LAYER_SHAPES = [
    (1, 1, 32), (5, 3, 32), (7, 5, 64), (20, 17, 128), (13, 9, 256), (80, 64, 32),
    (3, 1000, 64), (1000, 4, 32), (1000, 3, 256), (50, 515, 128),
]


@pytest.mark.parametrize("T,B,H", LAYER_SHAPES)
def test_backend_fp32_matches_reference(T, B, H):
    gi, w_hh, b_hh, h0, grad_y = random_layer(T, B, H, seed=T * 31 + B * 7 + H)
    be = cb()
    y, saved = be.forward(gi, w_hh, b_hh, h0)
    ry, rsaved, _ = ref_forward(gi.double(), w_hh.double(), b_hh.double(), h0.double())
    close(y, ry, 2e-5, "y")
    close(saved, rsaved, 2e-5, "saved")
    assert torch.equal(be.forward_inference(gi, w_hh, b_hh, h0), y)
    g_gi, g_gh, g_h0 = be.backward(grad_y, y, saved, w_hh, h0)
    r_gi, r_gh, r_h0 = ref_backward(gi, w_hh, b_hh, h0, grad_y)
    close(g_gi, r_gi, 1e-4, "grad_gi")
    close(g_gh, r_gh, 1e-4, "grad_gh")
    close(g_h0, r_h0, 1e-4, "grad_h0")
    assert y.dtype == saved.dtype == g_gi.dtype == g_gh.dtype == g_h0.dtype == torch.float32


BF16_SHAPES = [(5, 3, 32), (20, 17, 128), (13, 9, 256), (400, 33, 128), (1000, 3, 64), (7, 300, 32), (9, 513, 64)]


@pytest.mark.parametrize("mma", ["1", "0"], ids=["tensor-core", "ffma"])
@pytest.mark.parametrize("T,B,H", BF16_SHAPES)
def test_backend_bf16_matches_fp32_reference(T, B, H, mma, monkeypatch):
    monkeypatch.setenv("BSP_FAST_GRU_MMA", mma)
    gi, w_hh, b_hh, h0, grad_y = random_layer(T, B, H, dtype=torch.bfloat16, seed=T + B + H)
    h0 = h0.float()
    b_hh = b_hh.float()
    be = cb()
    expect = "mma" if (mma == "1" and H <= 128) else "ffma"
    assert be.plan(torch.bfloat16, B, H)["kernel"] == expect
    assert be.plan(torch.bfloat16, B, H, backward=True)["kernel"] == expect
    y, saved = be.forward(gi, w_hh, b_hh, h0)
    assert torch.equal(be.forward_inference(gi, w_hh, b_hh, h0), y)
    assert y.dtype == saved.dtype == torch.bfloat16
    ry, rsaved, _ = ref_forward(gi.double(), w_hh.double(), b_hh.double(), h0.double())
    close(y, ry, 2e-2, "y bf16")
    close(saved, rsaved, 2e-2, "saved bf16")
    g_gi, g_gh, g_h0 = be.backward(grad_y, y, saved, w_hh, h0)
    assert g_gi.dtype == g_gh.dtype == torch.bfloat16 and g_h0.dtype == torch.float32
    r_gi, r_gh, r_h0 = ref_backward(gi, w_hh, b_hh, h0, grad_y)
    close(g_gi, r_gi, 5e-2, "grad_gi bf16")
    close(g_gh, r_gh, 5e-2, "grad_gh bf16")
    close(g_h0, r_h0, 5e-2, "grad_h0 bf16")


@pytest.mark.parametrize("H", [32, 64, 128, 256])
def test_backend_fp64_gradcheck(H):
    gi, w_hh, b_hh, h0, _ = random_layer(3, 2, H, dtype=torch.float64, seed=H)
    args = [t.clone().requires_grad_(True) for t in (gi, w_hh, b_hh, h0)]
    assert torch.autograd.gradcheck(BackendLayer.apply, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


# (B, T, input_size, H)
GRU_SHAPES = [(1, 1, 4, 32), (3, 5, 4, 32), (64, 80, 4, 32), (7, 30, 8, 64), (32, 400, 4, 128),
              (5, 1000, 4, 32), (8, 1000, 4, 256), (9, 40, 16, 256)]


@pytest.mark.parametrize("B,T,I,H", GRU_SHAPES)
def test_backend_layer_matches_cudnn_fp32(B, T, I, H):
    """One bidirectional layer: backend + the contract's GEMMs vs cuDNN nn.GRU (TF32 off), all grads."""
    torch.manual_seed(B + T + I + H)
    gru = torch.nn.GRU(I, H, num_layers=1, bidirectional=True, batch_first=True).to(DEV)
    x = torch.randn(B, T, I, device=DEV, requires_grad=True)
    h0 = (torch.randn(2, B, H, device=DEV) * 0.5).requires_grad_(True)
    g_out = torch.randn(B, T, 2 * H, device=DEV)
    g_hn = torch.randn(2, B, H, device=DEV)

    out_ref, hn_ref = gru(x, h0)
    loss_ref = (out_ref * g_out).sum() + (hn_ref * g_hn).sum()
    params = list(gru.parameters())
    grads_ref = torch.autograd.grad(loss_ref, [x, h0, *params])

    w_ih, b_ih, w_hh, b_hh = layer_params(gru)
    gi = torch.cat([x @ w_ih[0].T + b_ih[0], x @ w_ih[1].T + b_ih[1]], -1).transpose(0, 1)  # [T, B, 6H]
    y = BackendLayer.apply(gi, w_hh, b_hh, h0)
    out = y.transpose(0, 1)
    hn = torch.stack([y[-1, :, :H], y[0, :, H:]])
    loss = (out * g_out).sum() + (hn * g_hn).sum()
    grads = torch.autograd.grad(loss, [x, h0, *params])

    close(out, out_ref, 2e-5, "output")
    close(hn, hn_ref, 2e-5, "h_n")
    names = ["x", "h0"] + [n for n, _ in gru.named_parameters()]
    for n, a, b in zip(names, grads, grads_ref):
        close(a, b, 1e-4, f"grad {n}")


def test_current_stream_and_zero_sizes():
    be = cb()
    gi, w_hh, b_hh, h0, _ = random_layer(6, 5, 32, seed=3)
    y_ref, _ = be.forward(gi, w_hh, b_hh, h0)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        y, saved = be.forward(gi, w_hh, b_hh, h0)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    close(y, y_ref, 0.0, "y on a side stream")
    y0, s0 = be.forward(gi[:0], w_hh, b_hh, h0)
    assert y0.shape == (0, 5, 64) and s0.shape == (0, 5, 256)
    g_gi, g_gh, g_h0 = be.backward(y0, y0, s0, w_hh, h0)
    assert g_gi.shape == (0, 5, 192) and float(g_h0.abs().sum()) == 0.0


def test_bf16_tensor_core_and_ffma_kernels_agree(monkeypatch):
    gi, w_hh, b_hh, h0, grad_y = random_layer(50, 40, 128, dtype=torch.bfloat16, seed=99)
    b_hh, h0 = b_hh.float(), h0.float()
    be = cb()
    outs = {}
    for mma in ("1", "0"):
        monkeypatch.setenv("BSP_FAST_GRU_MMA", mma)
        y, saved = be.forward(gi, w_hh, b_hh, h0)
        outs[mma] = (y, saved, *be.backward(grad_y, y, saved, w_hh, h0))
    for n, a, b in zip(["y", "saved", "grad_gi", "grad_gh", "grad_h0"], outs["1"], outs["0"]):
        close(a, b, 3e-2, f"{n} mma vs ffma")


def test_plans_cover_both_weight_paths():
    be = cb()
    p_small = be.plan(torch.float32, 512, 64)
    p_big = be.plan(torch.float32, 512, 256)
    assert p_big["w_in_smem"] is False  # 768 KB of fp32 W_hh never fits on chip
    assert p_small["w_in_smem"] is True
    for B in (1, 7, 513, 4096):
        p = be.plan(torch.bfloat16, B, 128, backward=True)
        assert p["blocks_per_dir"] == -(-B // p["rows_per_block"])  # no whole block wasted


# ---- through the module (op.py + FusedBiGRU), and CPU vs CUDA --------------------------------------------


def _fused_from(gru, num_layers):
    from bsp_fast.gru import FusedBiGRU

    m = FusedBiGRU(gru.input_size, gru.hidden_size, num_layers=num_layers, batch_first=True)
    m.load_state_dict(gru.state_dict())
    return m


@pytest.mark.parametrize("B,T,I,H", [(3, 5, 4, 32), (64, 80, 4, 32), (17, 50, 4, 128), (5, 1000, 4, 64),
                                     (6, 120, 4, 256)])
def test_fused_bigru_on_cuda_matches_cudnn(B, T, I, H):
    torch.manual_seed(7 * B + T + H)
    gru = torch.nn.GRU(I, H, num_layers=2, bidirectional=True, batch_first=True).to(DEV)
    m = _fused_from(gru, 2).to(DEV)
    x = torch.randn(B, T, I, device=DEV)
    h0 = torch.randn(4, B, H, device=DEV) * 0.5
    g_out = torch.randn(B, T, 2 * H, device=DEV)
    g_hn = torch.randn(4, B, H, device=DEV)

    names = [n for n, _ in gru.named_parameters()]  # compare parameters by name, not by order

    def run(mod):
        xx = x.clone().requires_grad_(True)
        hh = h0.clone().requires_grad_(True)
        out, hn = mod(xx, hh)
        loss = (out * g_out).sum() + (hn * g_hn).sum()
        params = dict(mod.named_parameters())
        grads = torch.autograd.grad(loss, [xx, hh, *(params[n] for n in names)])
        return out, hn, grads

    out_r, hn_r, g_r = run(gru)
    out, hn, g = run(m)
    close(out, out_r, 2e-5, "output")
    close(hn, hn_r, 2e-5, "h_n")
    for n, a, b in zip(["x", "h0", *names], g, g_r):
        close(a, b, 1e-4, f"grad {n}")


@pytest.mark.parametrize("B,T,H", [(4, 30, 32), (9, 25, 128)])
def test_fused_bigru_cpu_and_cuda_agree(B, T, H):
    torch.manual_seed(B * T + H)
    gru = torch.nn.GRU(4, H, num_layers=2, bidirectional=True, batch_first=True)
    m_cpu = _fused_from(gru, 2)
    m_gpu = _fused_from(gru, 2).to(DEV)
    x = torch.randn(B, T, 4)
    out_c, hn_c = m_cpu(x.clone().requires_grad_(True))
    xg = x.to(DEV).requires_grad_(True)
    out_g, hn_g = m_gpu(xg)
    close(out_g, out_c, 2e-5, "output cpu vs cuda")
    close(hn_g, hn_c, 2e-5, "h_n cpu vs cuda")
    (out_c.sum() + hn_c.sum()).backward()
    (out_g.sum() + hn_g.sum()).backward()
    gpu_params = dict(m_gpu.named_parameters())
    for n, pc in m_cpu.named_parameters():
        close(gpu_params[n].grad, pc.grad, 1e-4, f"grad {n} cpu vs cuda")


def test_backends_cpu_and_cuda_agree():
    from bsp_fast.gru import cpu_backend

    gi, w_hh, b_hh, h0, grad_y = random_layer(9, 5, 64, seed=11)
    y_g, s_g = cb().forward(gi, w_hh, b_hh, h0)
    y_c, s_c = cpu_backend.forward(gi.cpu(), w_hh.cpu(), b_hh.cpu(), h0.cpu())
    close(y_g, y_c, 2e-5, "y")
    close(s_g, s_c, 2e-5, "saved")
    bg = cb().backward(grad_y, y_g, s_g, w_hh, h0)
    bc = cpu_backend.backward(grad_y.cpu(), y_c, s_c, w_hh.cpu(), h0.cpu())
    for n, a, b in zip(["grad_gi", "grad_gh", "grad_h0"], bg, bc):
        close(a, b, 1e-4, n)


def test_fused_bigru_bf16_on_cuda():
    """bf16 module (if op.py routes bf16 to the bf16 kernels) against the fp32 cuDNN reference."""
    torch.manual_seed(5)
    B, T, H = 33, 200, 128
    gru = torch.nn.GRU(4, H, num_layers=2, bidirectional=True, batch_first=True).to(DEV)
    m = _fused_from(gru, 2).to(DEV).to(torch.bfloat16)
    x = torch.randn(B, T, 4, device=DEV)
    out_r, hn_r = gru(x)
    out, hn = m(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    close(out, out_r, 3e-2, "bf16 output")
    close(hn, hn_r, 3e-2, "bf16 h_n")
