"""bsp_fast.strand_conv: the native both-strand one-hot convolution + pool against its definition,
and hybrid-dense's scoring through it against the model's own torch layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bsp_fast import _native
from bsp_fast import strand_conv as sc
from bsp_fast.models import build_model

TOL = 2e-5


def _codes(b: int, length: int, seed: int, n_frac: float = 0.1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 4, (b, length), generator=g, dtype=torch.uint8)
    c[torch.rand(b, length, generator=g) < n_frac] = 4
    return c


@pytest.mark.parametrize("filters, k, pool, b, length", [
    (32, 19, 10, 3, 1115), (1, 1, 1, 1, 1), (5, 3, 1, 2, 7), (17, 21, 4, 3, 403), (40, 25, 3, 2, 100),
    (16, 9, 7, 1, 13), (33, 5, 10, 4, 29),
])
@pytest.mark.parametrize("with_reverse", [False, True])
def test_kernel_matches_reference(filters, k, pool, b, length, with_reverse):
    torch.manual_seed(filters * 1000 + k)
    conv = nn.Conv1d(4, filters, k, padding=k // 2)
    codes = _codes(b, length, seed=k + length)
    got = sc.both_strands_conv_pool(conv, codes, pool, with_reverse=with_reverse)
    want = sc.both_strands_conv_pool_reference(conv, codes, pool, with_reverse=with_reverse)
    assert got.shape == want.shape == (2 * b if with_reverse else b, length // pool, filters)
    assert torch.allclose(got, want, atol=TOL, rtol=TOL), (got - want).abs().max()


@pytest.mark.parametrize("isa", ["avx512", "avx2", "base"])
def test_every_instruction_set(isa):
    lib = _native.load("bsp_fast_gru_cpu")
    try:
        lib.set_isa(isa)
    except ValueError:
        pytest.skip(f"this CPU has no {isa}")
    try:
        conv = nn.Conv1d(4, 24, 19, padding=9)
        codes = _codes(2, 517, seed=3)
        got = sc.both_strands_conv_pool(conv, codes, 10, with_reverse=True)
        want = sc.both_strands_conv_pool_reference(conv, codes, 10, with_reverse=True)
        assert torch.allclose(got, want, atol=TOL, rtol=TOL)
    finally:
        lib.set_isa("auto")


def test_chromosome_ends_and_n_runs_add_nothing():
    """Past the input's ends and over N the filters see zeros: an all-N input gives ReLU(bias) per strand."""
    conv = nn.Conv1d(4, 8, 5, padding=2)
    with torch.no_grad():
        conv.bias.copy_(torch.linspace(-1, 1, 8))
    out = sc.both_strands_conv_pool(conv, torch.full((1, 20), 4, dtype=torch.uint8), 4)
    assert torch.allclose(out, (2 * conv.bias.relu()).expand(1, 5, 8), atol=1e-6)
    # a base one filter matches exactly, next to the start: half the filter hangs over the edge
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 2, 2] = 1.0  # G at the centre
    codes = torch.tensor([[2, 4, 4, 4, 4, 4, 4, 4]], dtype=torch.uint8)
    out = sc.both_strands_conv_pool(conv, codes, 1)
    want = sc.both_strands_conv_pool_reference(conv, codes, 1)
    assert torch.equal(out, want) and out[0, 0, 0] == 1.0 and out[0, 1:, 0].abs().sum() == 0


def test_lookup_table_of_single_bases_is_the_weights():
    conv = nn.Conv1d(4, 3, 5, padding=2)
    table, bias = sc.lookup_table(conv, 1)
    assert table.shape == (5, 5, 2, 16)
    w = conv.weight.detach()
    for k in range(5):
        assert torch.equal(table[k, :4, 0, :3], w[:, :, k].t())
        assert torch.equal(table[k, :4, 1, :3], w.flip(1).flip(2)[:, :, k].t())
        assert table[k, 4].abs().sum() == 0 and table[k, :, :, 3:].abs().sum() == 0
    assert torch.equal(bias[0, :3], conv.bias.detach()) and torch.equal(bias[1, :3], conv.bias.detach())


def test_group_size_keeps_tables_small():
    assert sc.group_size(32, 19) == 3
    assert sc.group_size(512, 31) < 3


def test_bad_input_is_a_clear_error():
    conv = nn.Conv1d(4, 8, 5, padding=2)
    with pytest.raises(ValueError, match="codes must be"):
        sc.both_strands_conv_pool(conv, torch.zeros(1, 3, dtype=torch.uint8), 4)  # shorter than a pool
    with pytest.raises(ValueError, match="codes must be"):
        sc.both_strands_conv_pool(conv, torch.zeros(5, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="odd-width"):
        sc.both_strands_conv_pool(nn.Conv1d(4, 8, 4, padding=2), torch.zeros(1, 9, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="odd-width"):
        sc.both_strands_conv_pool(nn.Conv1d(4, 8, 5), torch.zeros(1, 9, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="does not fit"):
        sc.both_strands_conv_pool(conv, torch.zeros(1, 9, dtype=torch.uint8), 1, table=sc.lookup_table(conv, 2))
    with pytest.raises(ValueError, match="need B, L"):  # the kernel's own checks
        _native.load("bsp_fast_gru_cpu").onehot_conv(0, 0, 0, 0, 8, 8, -1, 1, 4, 2, 4, 2, 1, 3, 16, 8, 1)


# ---- the model ----------------------------------------------------------------------------------

def _dense(**options):
    torch.manual_seed(options.pop("seed", 0))
    return build_model("hybrid-dense", **options).eval()


def _both_ways(model, codes):
    with torch.no_grad():
        fast = model(codes)
        for m in getattr(model, "members", [model]):
            m.native_inference = False
        slow = model(codes)
        for m in getattr(model, "members", [model]):
            m.native_inference = True
    return fast, slow


@pytest.mark.parametrize("rc_average", [True, False])
@pytest.mark.parametrize("n_bins", [1, 2, 37])
def test_model_scores_through_the_kernel_as_through_its_layers(rc_average, n_bins):
    m = _dense(rc_average=rc_average, seed=n_bins)
    codes = _codes(3, 400 + 50 * (n_bins - 1), seed=n_bins, n_frac=0.02)
    codes[1, 100:700] = 4  # an N run
    fast, slow = _both_ways(m, codes)
    assert fast.shape == slow.shape
    assert torch.allclose(fast, slow, atol=1e-4, rtol=1e-4), (fast - slow).abs().max()


def test_ensemble_and_odd_widths_score_the_same_both_ways():
    m = _dense(members=2, filters=21, kernel_size=25, hidden=9, dense=11, seed=4)
    fast, slow = _both_ways(m, _codes(2, 400 + 50 * 12, seed=5))
    assert torch.allclose(fast, slow, atol=1e-4, rtol=1e-4)


def test_the_kernel_is_what_scores_and_only_in_inference(monkeypatch):
    m = _dense(seed=1)
    calls = []
    real = sc.both_strands_conv_pool
    monkeypatch.setattr(sc, "both_strands_conv_pool", lambda *a, **k: calls.append(1) or real(*a, **k))
    codes = _codes(2, 400 + 50 * 5, seed=2)
    with torch.no_grad():
        m(codes)
    assert len(calls) == 1
    m(codes)  # gradients on: the torch layers (autograd)
    m.train()
    with torch.no_grad():
        m(codes)  # training mode: dropout, the torch layers
    m.eval()
    m.conv.register_forward_hook(lambda mod, i, o: None)  # a hook (motif influence) sees the conv module called
    with torch.no_grad():
        m(codes)
    assert len(calls) == 1


def test_lookup_table_follows_the_weights():
    """The cached table is rebuilt after an optimiser step or a load_state_dict."""
    m = _dense(seed=2)
    codes = _codes(1, 400 + 50 * 3, seed=9)
    with torch.no_grad():
        before = m(codes)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m.train()
    m(codes).sum().backward()
    opt.step()
    m.eval()
    fast, slow = _both_ways(m, codes)
    assert not torch.allclose(fast, before) and torch.allclose(fast, slow, atol=1e-4, rtol=1e-4)
    other = _dense(seed=3)
    m.load_state_dict(other.state_dict())
    fast, slow = _both_ways(m, codes)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        assert torch.allclose(fast, other(codes), atol=1e-6)


def test_dense_grid_scores_equal_through_the_layers(tmp_path):
    """score_grid over a chromosome (N runs, both ends) through the kernel and through the layers."""
    from bsp_fast.data import Genome
    from bsp_fast.dense import score_grid

    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGT"), 9000))
    seq = "N" * 300 + seq[:4000] + "N" * 500 + seq[4000:] + "NNN"
    fa = tmp_path / "g.fa"
    fa.write_text(">s1\n" + seq + "\n")
    g = Genome(str(fa), cache_dir=str(tmp_path / "c"))
    m = _dense(members=2, seed=7)
    n = (len(seq) - 200) // 50 + 1
    fast = score_grid(m, g, 0, 0, n, bins_per_stretch=30)
    for mem in m.members:
        mem.native_inference = False
    slow = score_grid(m, g, 0, 0, n, bins_per_stretch=30)
    assert np.allclose(fast, slow, atol=1e-4, rtol=1e-4), np.abs(fast - slow).max()
