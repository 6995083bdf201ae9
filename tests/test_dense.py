"""Dense scoring (hybrid-dense): one pass per stretch against the windowed definition, offsets,
chromosome ends, N runs, RC, the fast both-strand convolution, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsp_fast.dense import score_grid, score_grid_windowed, stretch_length
from bsp_fast.models import (bin_logits_from_sites, both_strands_conv, build_model, occupancy_logit, one_hot,
                             revcomp_codes, strand_conv)


class ArrayGenome:
    """The part of Genome that scoring uses, over in-memory code arrays (N past the ends)."""

    def __init__(self, seqs: list[np.ndarray]):
        self.seqs = seqs

    def codes(self, chroms, starts, length, strand=None):
        out = np.full((len(starts), length), 4, np.uint8)
        for r, (c, s) in enumerate(zip(np.asarray(chroms).tolist(), np.asarray(starts).tolist())):
            seq = self.seqs[c]
            lo, hi = max(s, 0), min(s + length, seq.size)
            if hi > lo:
                out[r, lo - s:hi - s] = seq[lo:hi]
        return out


def _conv_only(model):
    """Zero GRU weights and the site head's GC inputs: the GRU's output is 0 everywhere and the GC
    context (clipped to the stretch) unread, the model is convolution-only."""
    with torch.no_grad():
        for p in model.gru.parameters():
            p.zero_()
        if model.gc_windows:
            model.site[0].weight[:, -len(model.gc_windows):] = 0
    return model


@pytest.mark.parametrize("k, pad, both", [(19, 9, True), (24, 0, True), (5, 2, True), (7, 3, False)])
def test_both_strands_conv_matches_strand_conv(k, pad, both):
    torch.manual_seed(k)
    conv = torch.nn.Conv1d(4, 6, k, padding=pad)
    codes = torch.randint(0, 5, (3, 97))
    x = one_hot(codes).transpose(1, 2)
    if both:
        torch.testing.assert_close(both_strands_conv(conv, x), strand_conv(conv, x, True), rtol=1e-5, atol=1e-5)
    # and the strand symmetry it relies on: reverse complement in, reversed response out
    y = strand_conv(conv, x, True)
    yr = strand_conv(conv, one_hot(revcomp_codes(codes)).transpose(1, 2), True)
    torch.testing.assert_close(yr, y.flip(2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_bins, per_bin, per_step, first", [(1, 20, 5, 10), (7, 20, 5, 10), (5, 40, 10, 0), (3, 8, 8, 4)])
def test_bin_logits_from_sites_match_occupancy_logit(n_bins, per_bin, per_step, first):
    torch.manual_seed(n_bins)
    T = first * 2 + per_bin + per_step * (n_bins - 1)
    a = torch.randn(4, T) * 3 - 4
    got = bin_logits_from_sites(a, first, per_bin, per_step, n_bins)
    pool = 10
    ref = []
    for j in range(n_bins):
        lo = first + j * per_step - first  # the bin's own window: first sites of flank on each side
        win = a[:, lo:lo + 2 * first + per_bin]
        centres = torch.arange(win.shape[1]) * pool + pool // 2
        ref.append(occupancy_logit(win, centres, first * pool, win.shape[1] * pool))
    torch.testing.assert_close(got, torch.stack(ref, 1), rtol=1e-5, atol=1e-5)


def test_model_contract_and_rc():
    torch.manual_seed(0)
    m = build_model("hybrid-dense").eval()
    L = stretch_length(m.config, 9)
    codes = torch.randint(0, 5, (2, L), dtype=torch.uint8)
    out = m(codes)
    assert out.shape == (2, 9)
    # reverse complement in, the same bins in reverse order out (both strands averaged)
    torch.testing.assert_close(m(revcomp_codes(codes)).flip(1), out, rtol=1e-5, atol=1e-5)
    # a one-bin window is a [B] logit like every windowed model, equal to the first bin of its stretch
    w = m(codes[:, :stretch_length(m.config, 1)])
    assert w.shape == (2,)
    m.train()
    assert m(codes).shape == (2, 9)
    ens = build_model("hybrid-dense", members=3).train()
    assert ens(codes).shape == (3, 2, 9)
    assert ens.eval()(codes).shape == (2, 9)


def test_bad_layouts():
    m = build_model("hybrid-dense")
    with pytest.raises(ValueError, match="not 2 \\* flank 100"):
        m(torch.zeros(1, 425, dtype=torch.uint8))  # not a whole number of steps
    with pytest.raises(ValueError, match="shorter"):
        m(torch.zeros(1, 300, dtype=torch.uint8))  # stretch shorter than one bin with its flanks
    with pytest.raises(ValueError, match="pool 8 must divide step 50"):
        build_model("hybrid-dense", pool=8)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        build_model("hybrid-dense", kernel_size=20)
    g = ArrayGenome([np.zeros(5000, np.uint8)])
    with pytest.raises(ValueError, match="margin must be >= the model's flank"):
        score_grid(m, g, 0, 0, 10, margin=50)  # flank larger than the stretch margin
    with pytest.raises(ValueError, match="multiple of its step"):
        score_grid(m, g, 0, 0, 10, margin=125)
    with pytest.raises(ValueError, match="bins per stretch"):
        score_grid(m, g, 0, 0, 10, bins_per_stretch=0)


@pytest.mark.parametrize("bins_per_stretch, margin", [(7, 100), (23, 300), (200, 500)])
def test_conv_only_dense_equals_windowed_exactly(bins_per_stretch, margin):
    """Without the GRU's context, dense and windowed scores are the same definition: equal to float
    rounding, at chromosome ends and across N runs too."""
    torch.manual_seed(1)
    m = _conv_only(build_model("hybrid-dense")).eval()
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 4, 6_000).astype(np.uint8)
    seq[2_000:2_600] = 4  # an N run
    g = ArrayGenome([seq])
    n = (seq.size - 200) // 50 + 1
    dense = score_grid(m, g, 0, 0, n, bins_per_stretch=bins_per_stretch, margin=margin, batch_size=3)
    windowed = score_grid_windowed(m, g, 0, 0, n)
    assert dense.shape == (n,)
    np.testing.assert_allclose(dense, windowed, rtol=1e-5, atol=2e-5)


def test_scores_barely_move_with_the_stretch_offset():
    """With the BiGRU, a bin's score depends on its stretch only through context beyond the margin:
    tiles cut at other offsets change interior scores by less than the stated tolerance."""
    torch.manual_seed(2)
    m = build_model("hybrid-dense").eval()
    rng = np.random.default_rng(1)
    seq = rng.integers(0, 4, 12_000).astype(np.uint8)
    g = ArrayGenome([seq])
    n = (seq.size - 200) // 50 + 1
    base = score_grid(m, g, 0, 0, n, bins_per_stretch=40, margin=500)
    for shift in (1, 7, 19):  # the same bins, tiles starting `shift` bins later
        other = score_grid(m, g, 0, shift * 50, n - shift, bins_per_stretch=40, margin=500)
        diff = np.abs(other - base[shift:])
        assert diff.max() < 1e-3, (shift, diff.max())
    # and the dense scores stay close to the one-bin windows' (the GRU's extra context is all that differs)
    windowed = score_grid_windowed(m, g, 0, 0, n)
    assert np.abs(windowed - base).max() < 0.5


def test_score_grid_tiles_shard_and_reassemble():
    torch.manual_seed(3)
    m = build_model("hybrid-dense").eval()
    seq = np.random.default_rng(2).integers(0, 4, 4_000).astype(np.uint8)
    g = ArrayGenome([seq])
    n = (seq.size - 200) // 50 + 1
    full = score_grid(m, g, 0, 0, n, bins_per_stretch=10)
    parts = [score_grid(m, g, 0, 0, n, bins_per_stretch=10, tiles=slice(r, None, 3)) for r in range(3)]
    out = np.empty((sum(p.shape[0] for p in parts), 10), np.float32)
    for r, p in enumerate(parts):
        out[r::3] = p
    np.testing.assert_allclose(out.reshape(-1)[:n], full, rtol=1e-6, atol=1e-6)


def test_hooked_convolution_takes_the_module_path():
    """A forward hook on the first conv (motifs' kernel influence) sees and changes its output; the
    unhooked fused path gives the same logits."""
    torch.manual_seed(4)
    m = build_model("hybrid-dense").eval()
    codes = torch.randint(0, 4, (2, stretch_length(m.config, 3)), dtype=torch.uint8)
    fused = m(codes)
    calls = []
    h = m.conv.register_forward_hook(lambda mod, i, o: calls.append(o.shape))
    try:
        hooked = m(codes)
    finally:
        h.remove()
    assert calls  # the module ran
    torch.testing.assert_close(hooked, fused, rtol=1e-5, atol=1e-5)
    h = m.conv.register_forward_hook(lambda mod, i, o: torch.zeros_like(o))
    try:
        assert not torch.allclose(m(codes), fused)  # and the hook's replacement is used
    finally:
        h.remove()
