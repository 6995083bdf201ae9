"""The dense hybrid's GC-context inputs (bsp_fast.models.gc_features, ``gc_windows``): against a
readable per-site reference, strands, N runs, both scoring paths, configs old and new."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsp_fast.checkpoint import model_from_checkpoint
from bsp_fast.models import (GC_CENTER, GC_SCALE, build_model, gc_features, gc_norm_from_codes, model_from_config, one_hot,
                             revcomp_codes)


def gc_reference(codes: np.ndarray, windows: tuple[int, ...], pool: int) -> np.ndarray:
    """Site by site: the G/C share of [centre - w // 2, centre - w // 2 + w), an N counting as GC_CENTER."""
    b, length = codes.shape
    t = length // pool
    out = np.zeros((b, t, len(windows)))
    for r in range(b):
        for i in range(t):
            centre = i * pool + pool // 2
            for j, w in enumerate(windows):
                part = codes[r, max(0, centre - w // 2):max(0, min(length, centre - w // 2 + w))]
                frac = (np.isin(part, (1, 2)).sum() + GC_CENTER * (part == 4).sum()) / part.size
                out[r, i, j] = (frac - GC_CENTER) / GC_SCALE
    return out


def _codes(rng: np.random.Generator, b: int, length: int, gc: float = 0.5) -> np.ndarray:
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    codes = rng.choice(4, size=(b, length), p=p).astype(np.uint8)
    for r in range(b):  # an N run somewhere in every row
        s = int(rng.integers(0, length))
        codes[r, s:s + int(rng.integers(1, 300))] = 4
    return codes


@pytest.mark.parametrize("length, pool, windows", [(97, 1, (2, 7)), (1234, 10, (100, 300, 1000)),
                                                   (601, 3, (5, 64, 5000)), (40, 10, (1000,))])
def test_gc_features_match_the_reference(length, pool, windows):
    rng = np.random.default_rng(length)
    codes = _codes(rng, 3, length, gc=float(rng.uniform(0.2, 0.7)))
    c = torch.from_numpy(codes)
    got = gc_features((c == 1) | (c == 2), c < 4, windows, pool)
    assert got.shape == (3, length // pool, len(windows)) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), gc_reference(codes, windows, pool), rtol=1e-6, atol=1e-5)
    # from one-hot input (the model's training path) the same values
    x = one_hot(c.long()).transpose(1, 2)
    np.testing.assert_allclose(gc_features(x[:, 1] + x[:, 2], x.sum(1), windows, pool).numpy(), got.numpy(),
                               rtol=0, atol=1e-6)


def test_all_n_and_no_windows():
    c = torch.full((2, 500), 4, dtype=torch.uint8)
    assert torch.equal(gc_features(c == 1, c < 4, (100,), 10), torch.zeros(2, 50, 1))
    assert gc_features(c == 1, c < 4, (), 10).shape == (2, 50, 0)
    # pure GC reads +5, pure AT -5 on the (fraction - 0.5) / 0.1 scale
    g = torch.full((1, 200), 2, dtype=torch.uint8)
    assert torch.allclose(gc_features((g == 1) | (g == 2), g < 4, (50,), 10), torch.full((1, 20, 1), 5.0))


def test_reverse_strand_reverses_the_sites_exactly():
    rng = np.random.default_rng(5)
    c = torch.from_numpy(_codes(rng, 2, 2350))
    rc = revcomp_codes(c)

    def f(z):
        return gc_features((z == 1) | (z == 2), z < 4, (100, 300, 1000), 10)

    assert torch.equal(f(rc), f(c).flip(1))


def _randomise_gc_columns(model, scale: float = 0.5) -> None:
    with torch.no_grad():
        model.site[0].weight[:, -len(model.gc_windows):].normal_(0, scale)


def test_native_and_reference_paths_read_gc_alike():
    torch.manual_seed(0)
    m = build_model("hybrid-dense").eval()
    assert m.gc_windows == (100, 300, 1000)
    _randomise_gc_columns(m)
    rng = np.random.default_rng(1)
    codes = torch.from_numpy(_codes(rng, 3, 200 + 2 * 100 + 50 * 12, gc=0.35))
    with torch.no_grad():
        native = m(codes)
        m.native_inference = False
        ref = m(codes)
        # the GC columns matter: zeroing them moves the scores
        m.site[0].weight[:, -3:] = 0
        without = m(codes)
    torch.testing.assert_close(native, ref, rtol=1e-4, atol=1e-4)
    assert (ref - without).abs().max() > 1e-2
    # differentiable in the one-hot input through the GC inputs too
    m.native_inference = True
    x = one_hot(codes.long()).transpose(1, 2).requires_grad_(True)
    m.forward_one_hot(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gc_context_follows_the_sequence_gc():
    """A model whose site head reads only the 1000 bp GC input ranks GC-rich stretches above AT-rich ones."""
    torch.manual_seed(2)
    m = build_model("hybrid-dense").eval()
    with torch.no_grad():
        m.site[0].weight.zero_()
        m.site[0].bias.zero_()
        m.site[0].weight[:, -1] = 1.0
        m.site[-1].weight.fill_(0.1)
    rng = np.random.default_rng(3)
    L = 200 + 2 * 100 + 50 * 20
    rich = torch.from_numpy(_codes(rng, 1, L, gc=0.7))
    poor = torch.from_numpy(_codes(rng, 1, L, gc=0.3))
    with torch.no_grad():
        assert (m(rich) > m(poor)).all()


def test_configs_old_and_new():
    assert build_model("hybrid-dense", gc_windows=[100, 300]).config["gc_windows"] == (100, 300)
    none = build_model("hybrid-dense", gc_windows=())
    assert none.site[0].in_features == 32 + 2 * 64
    with pytest.raises(ValueError, match="gc_windows must be >= 2 bp"):
        build_model("hybrid-dense", gc_windows=[0])
    with pytest.raises(ValueError, match="gc_windows must be a list"):
        build_model("hybrid-dense", gc_windows="wide")
    with pytest.raises(ValueError, match="must be even"):
        build_model("hybrid-dense", gc_windows=[101])
    with pytest.raises(ValueError, match="GC inputs not given"):
        build_model("hybrid-dense").sites_from_features(torch.zeros(1, 32, 10))
    # a config saved before gc_windows existed rebuilds the model it came from, and its weights load
    old = dict(none.config)
    del old["gc_windows"]
    rebuilt = model_from_config(old)
    assert rebuilt.gc_windows == ()
    rebuilt.load_state_dict(none.state_dict())
    loaded = model_from_checkpoint({"model_config": old, "model": none.state_dict()})
    assert loaded.gc_windows == ()
    # a new config round-trips, ensembles too
    ens = build_model("hybrid-dense", members=2)
    again = model_from_config(ens.config)
    again.load_state_dict(ens.state_dict())
    assert again.members[0].gc_windows == (100, 300, 1000)


def test_gc_norm_from_codes_matches_the_reference():
    rng = np.random.default_rng(7)
    codes = _codes(rng, 4, 3000, gc=0.25)
    windows, pool = (100, 300, 1000), 10
    got = gc_norm_from_codes(torch.from_numpy(codes), windows, pool)
    for j, w in enumerate(windows):
        fracs = []
        for r in range(codes.shape[0]):
            for t in range(3000 // pool):
                c = t * pool + pool // 2
                lo, hi = c - w // 2, c - w // 2 + w
                if lo < 0 or hi > 3000:
                    continue
                part = codes[r, lo:hi]
                known = part[part < 4]
                if known.size >= w / 2:
                    fracs.append(np.isin(known, (1, 2)).sum() / known.size)
        assert got[0, j] == pytest.approx(np.mean(fracs), rel=1e-9)
        assert got[1, j] == pytest.approx(np.std(fracs, ddof=1), rel=1e-9)
    assert 0.2 < got[0, 0] < 0.3
    with pytest.raises(ValueError, match="no whole 1000 bp window"):
        gc_norm_from_codes(torch.from_numpy(codes[:, :900]), (1000,), 10)
    with pytest.raises(ValueError, match="half their bases known"):
        gc_norm_from_codes(torch.full((2, 2000), 4, dtype=torch.uint8), (100,), 10)


def test_gc_norm_centres_the_inputs_and_travels_with_the_weights():
    torch.manual_seed(4)
    m = build_model("hybrid-dense").eval()
    rng = np.random.default_rng(8)
    train = torch.from_numpy(_codes(rng, 8, 5000, gc=0.2))
    before = m.gc_inputs(one_hot(train.long()).transpose(1, 2))
    assert before[..., 2].mean() < -2  # 20 % GC on the default (fraction - 0.5) / 0.1 scale
    m.set_gc_norm(train)
    after = m.gc_inputs(one_hot(train.long()).transpose(1, 2))
    assert abs(float(after[:, 50:-50].mean())) < 0.2 and 0.5 < float(after[:, 50:-50, 0].std()) < 1.5
    # native scoring reads the same centred inputs
    with torch.no_grad():
        native = m(train)
        m.native_inference = False
        torch.testing.assert_close(m(train), native, rtol=1e-4, atol=1e-4)
    assert "gc_norm" in m.state_dict()
    loaded = model_from_checkpoint({"model_config": m.config, "model": m.state_dict()})
    assert torch.equal(loaded.gc_norm, m.gc_norm)
