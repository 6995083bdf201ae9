"""StretchSampler: a genome-wide epoch of stretches (every bin once), A masked, RC, sharding, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsp_fast.data.labels import BinLabels, LabelTrack
from bsp_fast.data.stretches import StretchSampler, grid_labels, positive_weight
from bsp_fast.train import stretch_loss


def _labels(seed=0, sizes=(("c1", 997), ("c2", 403), ("c3", 61))):
    rng = np.random.default_rng(seed)
    tracks = {}
    for name, n in sizes:
        lab = np.where(rng.random(n) < 0.05, 1, 0).astype(np.int8)
        lab[rng.random(n) < 0.1] = -1
        tracks[name] = LabelTrack(name, np.arange(n, dtype=np.int64) * 50, lab)
    return BinLabels(bin_size=200, step=50, cell="X", source="test", tracks=tracks)


def _seen(batches, sampler):
    """(chrom name, grid index) -> label of every labelled bin the batches hold (strands undone)."""
    seen = {}
    for b in batches:
        for c, s, st, lab in zip(b.chroms, b.starts, b.strands, b.labels):
            lab = lab[::-1] if st < 0 else lab
            name = sampler.chrom_names[c]
            for i, v in enumerate(lab):
                if v >= 0:
                    key = (name, int(s) // 50 + i)
                    assert key not in seen, f"bin {key} seen twice in one epoch"
                    seen[key] = v
    return seen


@pytest.mark.parametrize("n", [1, 7, 40])
def test_every_labelled_bin_once_per_epoch(n):
    labels = _labels()
    s = StretchSampler(labels, ["c1", "c2", "c3"], 5, n, seed=3)
    for epoch in (0, 1):
        seen = _seen(s.epoch_batches(epoch), s)
        want = {(c, i): float(v) for c, t in labels.tracks.items() for i, v in enumerate(t.labels) if v >= 0}
        assert seen == want
    assert s.n_pos + s.n_neg == len(seen)
    # the cut moves between epochs (random offsets per chromosome)
    a = [b.starts.tolist() for b in s.epoch_batches(0)]
    b = [b.starts.tolist() for b in s.epoch_batches(1)]
    assert a != b


def test_labels_are_masked_outside_the_grid_and_reversed_with_the_strand():
    labels = _labels()
    s = StretchSampler(labels, ["c3"], 4, 40, seed=0)
    batches = s.epoch_batches(0)
    assert all(b.labels.shape[1] == 40 and b.labels.dtype == np.float32 for b in batches)
    flat = np.concatenate([b.labels.reshape(-1) for b in batches])
    assert (flat == -1).sum() > 0  # past c3's 61 bins, and its A bins
    assert any((b.strands < 0).any() for b in s.epoch_batches(1)) or any((b.strands < 0).any() for b in batches)
    s_fwd = StretchSampler(labels, ["c1"], 4, 10, seed=5, rc_augment=False)
    assert all((b.strands == 1).all() for b in s_fwd.epoch_batches(0))


def test_sharding_is_disjoint_and_covers():
    labels = _labels()
    full = StretchSampler(labels, ["c1", "c2"], 3, 9, seed=1)
    shards = [StretchSampler(labels, ["c1", "c2"], 3, 9, seed=1, rank=r, world_size=3) for r in range(3)]
    per_rank = [_seen(sh.epoch_batches(0), sh) for sh in shards]
    union = {}
    for p in per_rank:
        assert not set(p) & set(union)
        union.update(p)
    assert set(union) <= set(_seen(full.epoch_batches(0), full))
    assert len({len(sh) for sh in shards}) == 1  # same number of batches everywhere


def test_resume_mid_epoch_is_exact():
    labels = _labels()
    a = StretchSampler(labels, ["c1", "c2", "c3"], 4, 11, seed=2)
    it = iter(a)
    for _ in range(5):
        next(it)
    state = a.state_dict()
    rest_a = [b.starts.tolist() for b in a]
    b = StretchSampler(labels, ["c1", "c2", "c3"], 4, 11, seed=0)
    b.load_state_dict(state)
    rest_b = [x.starts.tolist() for x in b]
    assert rest_a == rest_b and rest_a
    c = StretchSampler(labels, ["c1", "c2", "c3"], 5, 11, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        c.load_state_dict(state)
    with pytest.raises(ValueError, match="not a stretch sampler state"):
        c.load_state_dict({"version": 1, "position": 0, "epoch": 0, "seed": 0})


def test_bad_arguments():
    labels = _labels()
    with pytest.raises(ValueError, match="bins_per_stretch"):
        StretchSampler(labels, ["c1"], 4, 0)
    with pytest.raises(ValueError, match="batch_size"):
        StretchSampler(labels, ["c1"], 0, 4)
    with pytest.raises(ValueError, match="have no labels"):
        StretchSampler(labels, ["chrZ"], 4, 4)
    gappy = LabelTrack("g", np.array([0, 50, 175]), np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="not on a 50 bp grid"):
        grid_labels(gappy, 50)


def test_grid_labels_fill_gaps_with_ambiguous():
    s0, g = grid_labels(LabelTrack("g", np.array([100, 150, 300]), np.array([1, 0, 1], np.int8)), 50)
    assert s0 == 100 and g.tolist() == [1, 0, -1, -1, 1]


def test_positive_weight_and_loss():
    assert positive_weight(10, 1000, 10.0) == 10.0
    assert positive_weight(10, 50, 10.0) == 1.0  # never below 1
    assert positive_weight(0, 50, 10.0) == 1.0
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, -2.0]])
    labels = torch.tensor([[1.0, 0.0, -1.0], [0.0, -1.0, 1.0]])
    loss, n = stretch_loss(logits, labels, 4.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    terms = [4 * bce(torch.tensor(0.5), torch.tensor(1.0)), bce(torch.tensor(-1.0), torch.tensor(0.0)),
             bce(torch.tensor(0.0), torch.tensor(0.0)), 4 * bce(torch.tensor(-2.0), torch.tensor(1.0))]
    assert n == 4
    torch.testing.assert_close(loss, sum(terms) / 10.0)
    # members: the mean of the members' own losses
    loss2, _ = stretch_loss(torch.stack([logits, logits]), labels, 4.0)
    torch.testing.assert_close(loss2, loss)


def test_jitter_shifts_the_read_not_the_labels():
    """jitter J: each stretch's start moves by an integer in [-J, J] (both signs seen), its labels,
    chromosome and strand are the jitter-free stream's; jitter 0 is the earlier stream exactly;
    a mid-epoch resume with another jitter is refused."""
    labels = _labels(3)
    plain = StretchSampler(labels, ["c1", "c2", "c3"], 5, 7, seed=4)
    jit = StretchSampler(labels, ["c1", "c2", "c3"], 5, 7, seed=4, jitter=10)
    shifts = []
    for a, b in zip(plain.epoch_batches(2), jit.epoch_batches(2)):
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.chroms, b.chroms)
        assert np.array_equal(a.strands, b.strands)
        shifts.extend((b.starts - a.starts).tolist())
    shifts = np.array(shifts)
    assert np.abs(shifts).max() <= 10 and shifts.min() < 0 < shifts.max() and np.unique(shifts).size > 5
    zero = StretchSampler(labels, ["c1", "c2", "c3"], 5, 7, seed=4, jitter=0)
    assert all(np.array_equal(a.starts, b.starts) for a, b in zip(plain.epoch_batches(1), zero.epoch_batches(1)))
    it = iter(jit)
    next(it)
    state = jit.state_dict()
    with pytest.raises(ValueError, match="jitter"):
        plain.load_state_dict(state)
    with pytest.raises(ValueError, match="jitter"):
        StretchSampler(labels, ["c1"], 5, 7, jitter=-1)
