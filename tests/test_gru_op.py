"""The bsp_fast::bigru_* custom ops: reference parity, gradcheck, opcheck, threads, instruction sets."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import bsp_fast_gru_cpu as _gru_cpu
from bsp_fast.gru import (
    FusedBiGRU,
    bigru_backward,
    bigru_backward_weights,
    bigru_forward,
    bigru_forward_inference,
    bigru_layer_reference,
    recurrent_weight_grads,
)
from bsp_fast.gru import cpu_backend
from bsp_fast.gru.op import fold_grad_hn


def _inputs(T, B, H, dtype=torch.float32, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    gi = torch.randn(T, B, 6 * H, generator=g, dtype=dtype)
    w_hh = torch.randn(2, 3 * H, H, generator=g, dtype=dtype) / H**0.5
    b_hh = torch.randn(2, 3 * H, generator=g, dtype=dtype) * 0.1
    h0 = torch.randn(2, B, H, generator=g, dtype=dtype) * 0.5
    return [t.requires_grad_(requires_grad) for t in (gi, w_hh, b_hh, h0)]


@pytest.mark.parametrize("T,B,H", [(1, 1, 4), (7, 3, 17), (50, 67, 32), (20, 5, 128)])
def test_forward_matches_reference(T, B, H):
    args = _inputs(T, B, H, seed=T + B + H)
    y, _, saved = bigru_forward(*args)
    ey, esaved = bigru_layer_reference(*args)
    torch.testing.assert_close(y, ey, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(saved, esaved, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(bigru_forward_inference(*args), y, rtol=0, atol=0)


@pytest.mark.parametrize("T,B,H", [(1, 2, 3), (9, 3, 17), (30, 10, 40)])
def test_backward_matches_reference_autograd(T, B, H):
    args = _inputs(T, B, H, seed=1, requires_grad=True)
    gy = torch.randn(T, B, 2 * H)
    y, _, _ = bigru_forward(*args)
    got = torch.autograd.grad(y, args, gy)
    ey, _ = bigru_layer_reference(*args)
    want = torch.autograd.grad(ey, args, gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


@pytest.mark.parametrize("use_y", [False, True])
@pytest.mark.parametrize("T,B,H", [(1, 2, 3), (8, 5, 16)])
def test_final_states_output_and_gradient(T, B, H, use_y):
    """h_n is y's last forward / first reverse slice; its gradient (alone or with y's) is folded in."""
    args = _inputs(T, B, H, seed=11 + T, requires_grad=True)
    y, hn, _ = bigru_forward(*args)
    assert torch.equal(hn, torch.stack([y[-1, :, :H], y[0, :, H:]]))
    ghn = torch.randn(2, B, H)
    gy = torch.randn(T, B, 2 * H)
    outs, grads = ([hn, y], [ghn, gy]) if use_y else ([hn], [ghn])
    got = torch.autograd.grad(outs, args, grads)
    ey, _ = bigru_layer_reference(*args)
    ehn = torch.stack([ey[-1, :, :H], ey[0, :, H:]])
    want = torch.autograd.grad([ehn, ey] if use_y else [ehn], args, grads)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_backward_op_outputs():
    """grad_gi / grad_gh / grad_h0 of bigru_backward against the reference's autograd."""
    T, B, H = 6, 4, 5
    gi, w_hh, b_hh, h0 = _inputs(T, B, H, dtype=torch.float64, seed=3)
    y, _, saved = bigru_forward(gi, w_hh, b_hh, h0)
    gy = torch.randn(T, B, 2 * H, dtype=torch.float64)
    grad_gi, grad_gh, grad_h0 = bigru_backward(gy, y, saved, w_hh, h0)
    gi_, h0_ = gi.clone().requires_grad_(), h0.clone().requires_grad_()
    ey, _ = bigru_layer_reference(gi_, w_hh, b_hh, h0_)
    egi, eh0 = torch.autograd.grad(ey, (gi_, h0_), gy)
    torch.testing.assert_close(grad_gi, egi)
    torch.testing.assert_close(grad_h0, eh0)
    # grad_gh = [dr, dz, dn * r]: equal to grad_gi in the r and z blocks
    g = grad_gh.view(T, B, 2, 3, H)
    torch.testing.assert_close(g[:, :, :, :2], grad_gi.view(T, B, 2, 3, H)[:, :, :, :2])
    r = saved.view(T, B, 2, 4, H)[:, :, :, 0]
    torch.testing.assert_close(g[:, :, :, 2], grad_gi.view(T, B, 2, 3, H)[:, :, :, 2] * r)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T,B,H,threads", [(1, 1, 1, 1), (7, 3, 4, 2), (5, 67, 32, 2), (9, 67, 33, 4), (3, 13, 7, 3),
                                           (2, 5, 128, 2)])
@pytest.mark.parametrize("with_hn", [False, True])
def test_backward_weights_equals_backward_then_gemms(dtype, T, B, H, threads, with_hn):
    """The kernel's step-by-step dW_hh / db_hh (grad_gh never written) and its grad_hn carry against
    bigru_backward of grad_y with grad_hn folded in + recurrent_weight_grads (the torch GEMMs over all
    rows), on one or several batch tiles."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gi, w_hh, b_hh, h0 = _inputs(T, B, H, dtype=dtype, seed=T * 100 + B + H)
        y, _, saved = bigru_forward(gi, w_hh, b_hh, h0)
        gy = torch.randn_like(y)
        ghn = torch.randn_like(h0) if with_hn else None
        grad_gi, grad_gh, grad_h0 = bigru_backward(fold_grad_hn(gy, ghn), y, saved, w_hh, h0)
        want = (grad_gi, *recurrent_weight_grads(grad_gh, y, h0), grad_h0)
        got = bigru_backward_weights(gy, ghn, y, saved, w_hh, h0)
    finally:
        torch.set_num_threads(old)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    for name, a, b in zip(("grad_gi", "grad_w_hh", "grad_b_hh", "grad_h0"), got, want):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        scale = max(b.abs().max().item(), 1.0)
        torch.testing.assert_close(a / scale, b / scale, **tol, msg=lambda m, n=name: f"{n}: {m}")


def test_backward_weights_as_precise_as_torch_gemms():
    """Summed over T*B = 25,600 rows in float32, the kernel's dW_hh / db_hh stay as close to float64 as
    torch's GEMM over all rows (the kernel sums blocks of ~256 rows, then the blocks)."""
    T, B, H = 400, 64, 32
    args64 = _inputs(T, B, H, dtype=torch.float64, seed=11)
    y64, _, saved64 = bigru_forward(*args64)
    gy64 = torch.randn_like(y64)
    gi64, gw64, gb64, _ = bigru_backward_weights(gy64, None, y64, saved64, args64[1], args64[3])
    gi, w_hh, b_hh, h0 = (a.float() for a in args64)
    y, _, saved = bigru_forward(gi, w_hh, b_hh, h0)
    gy = gy64.float()
    _, gw, gb, _ = bigru_backward_weights(gy, None, y, saved, w_hh, h0)
    _, grad_gh, _ = bigru_backward(gy, y, saved, w_hh, h0)
    tw, tb = recurrent_weight_grads(grad_gh, y, h0)

    def err(a, ref):
        return float((a.double() - ref).abs().max() / ref.abs().max())

    assert err(gw, gw64) <= max(2 * err(tw, gw64), 1e-6), (err(gw, gw64), err(tw, gw64))
    assert err(gb, gb64) <= max(2 * err(tb, gb64), 1e-6), (err(gb, gb64), err(tb, gb64))


def test_backward_weights_needs_an_output():
    gi, w_hh, b_hh, h0 = _inputs(3, 2, 4)
    y, _, saved = bigru_forward(gi, w_hh, b_hh, h0)
    gy = torch.randn_like(y)
    lib = cpu_backend._lib()
    ptrs = [t.data_ptr() for t in (gy, y, saved, w_hh, h0, torch.empty_like(gi))]
    with pytest.raises(ValueError, match="needs grad_gh or grad_w_hh"):
        lib.backward(ptrs[0], 0, *ptrs[1:], 0, torch.empty(2, 2, 4).data_ptr(), 0, 0, 3, 2, 4, 0, 0, 0, 0, False, 1)
    with pytest.raises(ValueError, match="go together"):
        lib.backward(ptrs[0], 0, *ptrs[1:], 0, torch.empty(2, 2, 4).data_ptr(), torch.empty(2, 12, 4).data_ptr(), 0,
                     3, 2, 4, 0, 0, 0, 0, False, 1)
    with pytest.raises(ValueError, match="grad_y row strides"):
        lib.backward(ptrs[0], 0, *ptrs[1:], 0, torch.empty(2, 2, 4).data_ptr(), torch.empty(2, 12, 4).data_ptr(),
                     torch.empty(2, 12).data_ptr(), 3, 2, 4, 0, 0, 8, 4, False, 1)


@pytest.mark.parametrize("T,B,H", [(1, 1, 3), (6, 5, 4), (40, 67, 32), (3, 2, 128)])
def test_batch_major_layout(T, B, H):
    """batch_major=True: the same y, laid out [B, T, 2H]; the backward ops read y and grad_y in that
    layout (and any other row strides) and give what they give for contiguous copies."""
    gi, w_hh, b_hh, h0 = _inputs(T, B, H, seed=7 + T + B)
    y, hn, saved = bigru_forward(gi, w_hh, b_hh, h0)
    yb, hnb, savedb = bigru_forward(gi, w_hh, b_hh, h0, True)
    assert yb.stride() == (2 * H, 2 * H * T, 1) and yb.transpose(0, 1).is_contiguous()
    torch.testing.assert_close(yb, y, rtol=0, atol=0)
    torch.testing.assert_close(hnb, hn, rtol=0, atol=0)
    torch.testing.assert_close(savedb, saved, rtol=0, atol=0)
    yi = bigru_forward_inference(gi, w_hh, b_hh, h0, True)
    assert yi.stride() == yb.stride()
    torch.testing.assert_close(yi, y, rtol=0, atol=0)
    gy_bf = torch.randn(B, T, 2 * H).transpose(0, 1)  # batch-major grad, as autograd hands it back
    ghn = torch.randn_like(h0)
    want = bigru_backward_weights(gy_bf.contiguous(), ghn, y, saved, w_hh, h0)
    got = bigru_backward_weights(gy_bf, ghn, yb, saved, w_hh, h0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    want = bigru_backward(gy_bf.contiguous(), y, saved, w_hh, h0)
    got = bigru_backward(gy_bf, yb, saved, w_hh, h0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # rows that are not each contiguous (a strided slice) are copied first
    wide = torch.randn(T, B, 4 * H)[..., ::2]
    got = bigru_backward(wide, yb, saved, w_hh, h0)
    want = bigru_backward(wide.contiguous(), y, saved, w_hh, h0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gradcheck_op_float64():
    args = _inputs(4, 3, 3, dtype=torch.float64, seed=4, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: bigru_forward(*a)[0], args)


def test_gradcheck_module_float64():
    gru = FusedBiGRU(3, 2, 2).double()
    names = [n for n, _ in gru.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in gru.parameters()]
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)

    def fn(x, h0, *ps):
        out, hn = torch.func.functional_call(gru, dict(zip(names, ps)), (x, h0))
        return out, hn

    assert torch.autograd.gradcheck(fn, (x, h0, *params))


def test_gradcheck_module_codes_float64():
    gru = FusedBiGRU(4, 2, 1).double()
    names = [n for n, _ in gru.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in gru.parameters()]
    codes = torch.tensor([[0, 1, 4, 3, 2], [3, 3, 0, 4, 1]], dtype=torch.uint8)

    def fn(*ps):
        return torch.func.functional_call(gru, dict(zip(names, ps)), (codes,))[0]

    assert torch.autograd.gradcheck(fn, params)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_forward(requires_grad):
    args = _inputs(5, 3, 4, seed=5, requires_grad=requires_grad)
    for batch_major in (False, True):
        torch.library.opcheck(torch.ops.bsp_fast.bigru_forward.default, (*args, batch_major))
        torch.library.opcheck(torch.ops.bsp_fast.bigru_forward_inference.default,
                              (*[a.detach() for a in args], batch_major))


def test_opcheck_backward():
    gi, w_hh, b_hh, h0 = _inputs(5, 3, 4, seed=6)
    y, _, saved = bigru_forward(gi, w_hh, b_hh, h0)
    gy = torch.randn_like(y)
    torch.library.opcheck(torch.ops.bsp_fast.bigru_backward.default, (gy, y, saved, w_hh, h0))
    for ghn in (None, torch.randn_like(h0)):
        torch.library.opcheck(torch.ops.bsp_fast.bigru_backward_weights.default, (gy, ghn, y, saved, w_hh, h0))
    yb, _, saved = bigru_forward(gi, w_hh, b_hh, h0, True)
    gyb = torch.randn(3, 5, 8).transpose(0, 1)
    torch.library.opcheck(torch.ops.bsp_fast.bigru_backward_weights.default, (gyb, None, yb, saved, w_hh, h0))


def test_op_argument_errors():
    gi, w_hh, b_hh, h0 = _inputs(3, 2, 4)
    with pytest.raises(ValueError, match="gi must have shape"):
        bigru_forward(gi[..., :-1], w_hh, b_hh, h0)
    with pytest.raises(ValueError, match="h0 must have shape"):
        bigru_forward(gi, w_hh, b_hh, h0[:, :1])
    with pytest.raises(TypeError, match="dtype"):
        bigru_forward(gi, w_hh.double(), b_hh, h0)
    with pytest.raises(ValueError, match=r"gi must be \[T, B, 6H\]"):
        bigru_forward(gi[0], w_hh, b_hh, h0)


@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
def test_instruction_set_variants_agree(isa):
    best = _gru_cpu.isa()
    order = ["base", "avx2", "avx512"]
    if order.index(isa) > order.index(best):
        pytest.skip(f"CPU has no {isa}")
    args = _inputs(9, 7, 19, seed=7, requires_grad=True)
    gy = torch.randn(9, 7, 38)
    try:
        _gru_cpu.set_isa(isa)
        y, _, _ = bigru_forward(*args)
        got = torch.autograd.grad(y, args, gy)
    finally:
        _gru_cpu.set_isa("auto")
    ey, _ = bigru_layer_reference(*args)
    want = torch.autograd.grad(ey, args, gy)
    torch.testing.assert_close(y, ey, rtol=1e-5, atol=2e-6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_results_do_not_depend_on_thread_count():
    args = _inputs(11, 37, 24, seed=8, requires_grad=True)
    gy = torch.randn(11, 37, 48)
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 4):
            torch.set_num_threads(n)
            y, _, _ = bigru_forward(*args)
            results.append((y, *torch.autograd.grad(y, args, gy)))
    finally:
        torch.set_num_threads(before)
    for r in results[1:]:
        # the kernel's own outputs (y, grad gi, grad h0) are bitwise equal; the weight gradients
        # are torch GEMMs/sums, whose summation order may depend on the thread count
        for i in (0, 1, 4):
            assert torch.equal(r[i], results[0][i])
        for i in (2, 3):
            torch.testing.assert_close(r[i], results[0][i])


def test_interleaved_with_torch_ops_two_threads_no_hang(tmp_path):
    """torch's ops and the fused kernel take turns on 2 threads in one process: no hang, and every
    iteration's output and gradients match nn.GRU (fp64) on the same weights.

    Not bitwise across iterations: the loss also goes through torch's own GEMMs and sums, whose
    results MKL does not promise to repeat bit for bit (the fused kernel's own determinism is
    test_results_do_not_depend_on_thread_count's). Every iteration's deviation is printed on failure."""
    code = textwrap.dedent(
        """
        import torch
        import torch.nn.functional as F
        from bsp_fast.gru import FusedBiGRU
        torch.set_num_threads(2)
        torch.manual_seed(0)
        gru = FusedBiGRU(4, 32, 2)
        codes = torch.randint(0, 5, (16, 40), dtype=torch.uint8)
        ref = torch.nn.GRU(4, 32, 2, batch_first=True, bidirectional=True).double()
        ref.load_state_dict({k: v.double() for k, v in gru.state_dict().items()})
        x = F.one_hot(codes.long(), 5)[..., :4].double()  # N (4) is the all-zero row
        r_out, _ = ref(x)
        torch.tanh(r_out).sum().backward()
        r_grads = [p.grad for p in ref.parameters()]
        a = torch.randn(256, 256)
        report, bad = [], False
        for i in range(8):
            gru.zero_grad()
            b = a @ a.t()                                  # torch op (OpenMP pool)
            out, hn = gru(codes)                           # fused op (the same pool)
            c = torch.tanh(out).sum() + b.sum() * 0        # torch ops on the result
            c.backward()                                   # fused backward + torch GEMMs
            d_out = (out.double() - r_out).abs().max().item()
            d_grad = max(((p.grad.double() - g).abs().max() / (1 + g.abs().max())).item()
                         for p, g in zip(gru.parameters(), r_grads))
            report.append(f"{i}: loss {c.item():.9g} max|out - ref| {d_out:.2e} grad {d_grad:.2e}")
            bad |= not (d_out < 1e-5 and d_grad < 1e-5)
        print("\\n".join(report))
        print("ok" if not bad else "MISMATCH", torch.get_num_threads())
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-2:] == ["ok", "2"], res.stdout


@pytest.mark.parametrize("torch_first", [True, False])
def test_one_openmp_runtime_shared_with_torch(tmp_path, torch_first):
    """The kernel's OpenMP (if built with it) is torch's: one OpenMP library mapped, whatever the import order."""
    imports = "import torch\nimport bsp_fast_gru_cpu" if torch_first else "import bsp_fast_gru_cpu\nimport torch"
    code = imports + textwrap.dedent(
        """
        import os
        from bsp_fast.gru import FusedBiGRU
        torch.set_num_threads(2)
        out, hn = FusedBiGRU(4, 8, 1)(torch.randint(0, 4, (6, 10), dtype=torch.uint8))
        (out.sum() + hn.sum()).backward()
        names = ("libgomp", "libomp", "libiomp")
        libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if any(n in line for n in names)})
        torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
        print(len(libs), int(any(l.startswith(torch_lib) for l in libs)), int(any(os.path.isfile(os.path.join(torch_lib, f)) and f.startswith(names) for f in os.listdir(torch_lib))))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    n_libs, uses_torch_copy, torch_ships_one = map(int, res.stdout.split())
    assert n_libs <= 1, res.stdout
    if torch_ships_one and torch_first:
        assert uses_torch_copy == 1


def test_projection_ops_opcheck_and_values():
    from bsp_fast.gru.op import codes_projection, time_major_linear

    codes = torch.randint(0, 5, (6, 3), dtype=torch.uint8)
    table = torch.randn(5, 12, requires_grad=True)
    torch.library.opcheck(torch.ops.bsp_fast.codes_projection.default, (codes, table))
    out = codes_projection(codes, table)
    torch.testing.assert_close(out, table[codes.long()])
    g = torch.randn_like(out)
    (gt,) = torch.autograd.grad(out, table, g)
    torch.testing.assert_close(gt, torch.autograd.grad(table[codes.long()], table, g)[0])
    x = torch.randn(6, 3, 4, requires_grad=True)
    w = torch.randn(12, 4, requires_grad=True)
    b = torch.randn(12, requires_grad=True)
    torch.library.opcheck(torch.ops.bsp_fast.time_major_linear.default, (x, w, b))
    torch.testing.assert_close(time_major_linear(x, w, b), torch.nn.functional.linear(x, w, b))


def test_buffer_pool_never_overwrites_live_tensors():
    """Large outputs are recycled storages: two forwards kept alive, then both backwards."""

    ref = torch.nn.GRU(4, 64, 2, batch_first=True, bidirectional=True)
    fused = FusedBiGRU(4, 64, 2)
    fused.load_state_dict(ref.state_dict())
    xs = [torch.randint(0, 5, (16, 70), dtype=torch.uint8) for _ in range(3)]
    assert 70 * 16 * 8 * 64 * 4 >= cpu_backend._POOL_MIN_BYTES  # saved goes through the pool
    outs = [fused(x) for x in xs]  # three graphs alive at once
    loss = sum((o.square().mean() + h.sum()) for o, h in outs)
    loss.backward()
    onehot = [torch.nn.functional.one_hot(x.long(), 5)[..., :4].float() for x in xs]
    eouts = [ref(x) for x in onehot]
    sum((o.square().mean() + h.sum()) for o, h in eouts).backward()
    for (o, h), (eo, eh) in zip(outs, eouts):
        torch.testing.assert_close(o, eo, rtol=1e-5, atol=1e-6)
    for (n, p), q in zip(fused.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5 * q.grad.abs().max().item())
    # and again, now reusing the storages freed by the first round
    fused.zero_grad()
    out2 = fused(xs[0])[0]
    torch.testing.assert_close(out2, outs[0][0], rtol=0, atol=0)


def test_cuda_glue_of_the_new_ops_on_a_stand_in_backend(monkeypatch):
    """The CUDA registrations of bigru_backward_weights and of batch_major are torch code around the
    CUDA backend (fold grad_hn, backward, recurrent_weight_grads; copy into the batch-major layout).
    Run that glue here with the CPU kernels standing in for the CUDA backend (same contract), and
    hold it to the CPU registrations: this checks the glue, not the CUDA kernels."""
    import bsp_fast.gru.op as op

    class StandIn:
        forward = staticmethod(cpu_backend.forward)
        backward = staticmethod(cpu_backend.backward)

    monkeypatch.setattr(op, "_cuda_backend", lambda: StandIn)
    T, B, H = 9, 5, 6
    gi, w_hh, b_hh, h0 = _inputs(T, B, H, dtype=torch.float64, seed=21)
    for batch_major in (False, True):
        y, hn, saved = op._forward_cuda(gi, w_hh, b_hh, h0, batch_major)
        ey, ehn, esaved = op._forward_cpu(gi, w_hh, b_hh, h0, batch_major)
        assert y.stride() == ey.stride()
        for a, b in ((y, ey), (hn, ehn), (saved, esaved)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        yi = op._forward_inference_cuda(gi, w_hh, b_hh, h0, batch_major)
        assert yi.stride() == ey.stride()
        torch.testing.assert_close(yi, ey, rtol=0, atol=0)
        gy = torch.randn(B, T, 2 * H, dtype=torch.float64).transpose(0, 1)
        for ghn in (None, torch.randn_like(h0)):
            got = op._backward_weights_cuda(gy, ghn, y, saved, w_hh, h0)
            want = op._backward_weights_cpu(gy, ghn, ey, esaved, w_hh, h0)
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b)
