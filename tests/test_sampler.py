"""BalancedSampler / eval_bins / ChromSplit: the tests that guard the thesis' failure (positives
clustered in genome order, so the net learned nothing) and the bookkeeping of a genome-wide run."""

from __future__ import annotations

import numpy as np
import pytest

from bsp_fast.data.sampler import BalancedSampler, BinBatch, ChromSplit, eval_bins

try:  # the real classes once bsp_fast/data/labels.py is there; a stand-in with the same fields before
    from bsp_fast.data.labels import BinLabels, LabelTrack
except Exception:  # pragma: no cover - only while labels.py is being written
    from dataclasses import dataclass

    @dataclass
    class LabelTrack:  # type: ignore[no-redef]
        chrom: str
        starts: np.ndarray
        labels: np.ndarray

    @dataclass
    class BinLabels:  # type: ignore[no-redef]
        bin_size: int
        step: int
        cell: str
        source: str
        tracks: dict


CHROMS = {"chr1": 4000, "chr2": 9000, "chr3": 7000, "chr8": 3000, "chr11": 2500, "chr21": 1500}


def make_labels(seed: int = 0, pos_rate: float = 0.01, amb_rate: float = 0.01, clustered: bool = True) -> BinLabels:
    """Bins 200/50 with positives in clusters (as in real data: the thesis' genome-order trap)."""
    rng = np.random.default_rng(seed)
    tracks = {}
    for chrom, n in CHROMS.items():
        starts = np.arange(n, dtype=np.int64) * 50
        lab = np.zeros(n, dtype=np.int8)
        if clustered:
            n_clusters = max(1, int(n * pos_rate / 20))
            for c in rng.integers(0, n - 40, size=n_clusters):
                lab[c : c + 20] = 1
        else:
            lab[rng.random(n) < pos_rate] = 1
        amb = (rng.random(n) < amb_rate) & (lab == 0)
        lab[amb] = -1
        tracks[chrom] = LabelTrack(chrom, starts, lab)
    return BinLabels(200, 50, "TEST", "synthetic-test", tracks)


def stream(sampler: BalancedSampler, epoch: int):
    batches = sampler.epoch_batches(epoch)
    cat = lambda f: np.concatenate([getattr(b, f) for b in batches])  # noqa: E731
    return batches, cat("chroms"), cat("starts"), cat("strands"), cat("labels")


def lookup(labels: BinLabels, names, chroms, starts):
    out = np.empty(starts.size, dtype=np.int8)
    for i, (c, s) in enumerate(zip(chroms, starts)):
        out[i] = labels.tracks[names[c]].labels[s // 50]
    return out


def test_chrom_split_defaults_and_errors():
    labels = make_labels()
    train, valid, test = ChromSplit().resolve(labels)
    assert train == ("chr2", "chr3")
    assert valid == ("chr11",)
    assert test == ("chr1", "chr8", "chr21")
    assert ChromSplit(test="chr2, chr3", valid="chr1").resolve(list(CHROMS))[0] == ("chr8", "chr11", "chr21")
    # labels and genome together: only chromosomes present in both (chrM has no labels)
    genome_like = [("chr1", 10**6), ("chrM", 16569), ("chr2", 10**6), ("chr3", 10**6), ("chr8", 1), ("chr11", 1), ("chr21", 1)]
    assert ChromSplit().resolve(labels, genome_like)[0] == ("chr2", "chr3")
    with pytest.raises(ValueError, match="chr21"):
        ChromSplit().resolve(labels, genome_like[:4])
    with pytest.raises(ValueError, match=r"chrX.*available: chr1, chr2"):
        ChromSplit(test=("chrX",)).resolve(labels)
    with pytest.raises(ValueError, match="both in test and valid"):
        ChromSplit(test=("chr1",), valid=("chr1",))
    with pytest.raises(ValueError, match="also listed for training"):
        ChromSplit(train=("chr1", "chr2"))
    with pytest.raises(ValueError, match="no training chromosome"):
        ChromSplit(test=("chr1", "chr2", "chr3"), valid=("chr8", "chr11", "chr21")).resolve(labels)


def test_epoch_content_positives_once_negatives_unbound_only():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    s = BalancedSampler(labels, train, batch_size=32, negatives_per_positive=3.0, seed=1)
    names = list(s.chrom_names)
    _, chroms, starts, strands, y = stream(s, 0)
    truth = lookup(labels, names, chroms, starts)
    n_pos_total = sum(int((labels.tracks[c].labels == 1).sum()) for c in train)
    assert s.n_pos == n_pos_total
    # every positive exactly once, labels right, no ambiguous bin, negatives all U
    pos_keys = set(zip(chroms[y == 1].tolist(), starts[y == 1].tolist()))
    assert len(pos_keys) == n_pos_total == int((y == 1).sum())
    assert np.array_equal(truth, y.astype(np.int8))
    assert not (truth == -1).any()
    assert int((y == 0).sum()) == round(3.0 * n_pos_total)
    # held-out chromosomes never reach training
    assert set(names[c] for c in np.unique(chroms)) <= set(train)
    assert set(strands.tolist()) == {1, -1}
    assert chroms.dtype == np.int32 and starts.dtype == np.int64 and strands.dtype == np.int8 and y.dtype == np.float32


@pytest.mark.parametrize("ratio", [1.0, 5.0])
def test_positives_spread_evenly(ratio):
    """No long runs of negatives; every batch's positive share near the target."""
    labels = make_labels(clustered=True)
    train, _, _ = ChromSplit().resolve(labels)
    bs = 64
    s = BalancedSampler(labels, train, batch_size=bs, negatives_per_positive=ratio, seed=3)
    batches, _, _, _, y = stream(s, 0)
    # longest run of negatives: stratified interleaving bounds it by 2 * ratio + 2
    runs, run = [], 0
    for v in y:
        run = 0 if v == 1 else run + 1
        runs.append(run)
    assert max(runs) <= 2 * ratio + 2
    # positive share per (full) batch within 3 samples of the target (tolerance 3 / 64 ~ 4.7 points)
    target = s.positive_fraction
    for b in batches[:-1]:
        assert abs(b.labels.sum() - target * bs) <= 3, (b.labels.sum(), target * bs)
    # and also in every quarter of the epoch (no drift along the epoch)
    for q in np.array_split(y, 4):
        assert abs(q.mean() - target) < 0.02


def test_negatives_uniform_over_unbound_bins():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    s = BalancedSampler(labels, train, batch_size=256, negatives_per_positive=20.0, seed=5)
    _, chroms, _, _, y = stream(s, 0)
    names = list(s.chrom_names)
    n_u = {c: int((labels.tracks[c].labels == 0).sum()) for c in train}
    neg = chroms[y == 0]
    for c in train:
        share = np.mean([names[x] == c for x in neg])
        expected = n_u[c] / sum(n_u.values())
        assert abs(share - expected) < 0.04
    # fresh negatives each epoch
    _, c1, s1, _, y1 = stream(s, 1)
    assert not np.array_equal(s1[y1 == 0][:100], stream(s, 0)[2][y == 0][:100])


def test_determinism_and_seeds():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    kw = dict(batch_size=32, negatives_per_positive=2.0, jitter=20)
    a = stream(BalancedSampler(labels, train, seed=7, **kw), 2)
    b = stream(BalancedSampler(labels, train, seed=7, **kw), 2)
    c = stream(BalancedSampler(labels, train, seed=8, **kw), 2)
    for x, y in zip(a[1:], b[1:]):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[2], c[2])
    # epochs differ too
    d = stream(BalancedSampler(labels, train, seed=7, **kw), 3)
    assert not np.array_equal(a[2], d[2])


def test_jitter_and_no_rc():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    s0 = BalancedSampler(labels, train, batch_size=64, seed=1, rc_augment=False, jitter=0)
    s1 = BalancedSampler(labels, train, batch_size=64, seed=1, rc_augment=False, jitter=25)
    _, _, st0, sd0, _ = stream(s0, 0)
    _, _, st1, _, _ = stream(s1, 0)
    assert (sd0 == 1).all()
    assert (st0 % 50 == 0).all()
    d = st1 - st0
    assert np.abs(d).max() <= 25 and (d != 0).mean() > 0.5
    assert (st1 >= 0).all()


def test_iteration_advances_epochs_and_resume_mid_epoch():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    kw = dict(batch_size=16, negatives_per_positive=1.5, seed=11, jitter=10)
    ref = BalancedSampler(labels, train, **kw)
    full0 = list(ref)
    assert len(full0) == len(ref) and ref.epoch == 1 and ref.position == 0
    full1 = list(ref)
    assert ref.epoch == 2
    s = BalancedSampler(labels, train, **kw)
    it = iter(s)
    for _ in range(5):
        next(it)
    state = s.state_dict()
    assert state["epoch"] == 0 and state["position"] == 5
    fresh = BalancedSampler(labels, train, **kw)
    fresh.load_state_dict(state)
    rest = list(fresh)
    assert len(rest) == len(full0) - 5
    for got, want in zip(rest, full0[5:]):
        for f in BinBatch._fields:
            assert np.array_equal(getattr(got, f), getattr(want, f))
    nxt = list(fresh)  # then the next epoch, identical to an uninterrupted run
    for got, want in zip(nxt, full1):
        assert np.array_equal(got.starts, want.starts)
    # a state from a different set-up cannot resume mid-epoch
    other = BalancedSampler(labels, train, batch_size=32, negatives_per_positive=1.5, seed=11, jitter=10)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(state)


def test_negatives_per_positive_settable():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    s = BalancedSampler(labels, train, batch_size=32)
    n1 = len(s)
    s.negatives_per_positive = 4
    assert s.n_neg == 4 * s.n_pos and len(s) > 2 * n1
    assert abs(s.positive_fraction - 0.2) < 1e-9
    with pytest.raises(ValueError):
        s.negatives_per_positive = -1


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_disjoint_covering_equal_batches(world_size):
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    kw = dict(batch_size=16, negatives_per_positive=1.0, seed=4, jitter=0, rc_augment=True)
    single = stream(BalancedSampler(labels, train, **kw), 0)
    n_total = single[1].size
    per_rank = [BalancedSampler(labels, train, rank=r, world_size=world_size, **kw) for r in range(world_size)]
    lens = {len(s) for s in per_rank}
    assert len(lens) == 1
    sizes = [[b.size for b in s.epoch_batches(0)] for s in per_rank]
    assert all(sz == sizes[0] for sz in sizes)
    # positives: every one on exactly one rank (except the < world_size dropped at the tail)
    seen = []
    for s in per_rank:
        _, c, st, _, y = stream(s, 0)
        seen += list(zip(c[y == 1].tolist(), st[y == 1].tolist()))
    assert len(seen) == len(set(seen)) >= per_rank[0].n_pos - (world_size - 1)
    # the ranks' streams interleave back into the single-process stream (same samples, disjoint slots)
    merged = np.empty(sum(len(stream(s, 0)[2]) for s in per_rank), dtype=np.int64)
    for r, s in enumerate(per_rank):
        merged[r::world_size] = stream(s, 0)[2]
    assert np.array_equal(merged, single[2][: merged.size]) and merged.size > n_total - world_size


def test_chrom_order_ids_follow_the_genome():
    labels = make_labels()
    train, _, _ = ChromSplit().resolve(labels)
    genome_order = ["chr21", "chr11", "chr8", "chr3", "chr2", "chr1", "chrM"]
    s = BalancedSampler(labels, train, batch_size=64, seed=0, chrom_order=genome_order)
    _, chroms, starts, _, y = stream(s, 0)
    assert set(np.unique(chroms).tolist()) == {3, 4}
    assert np.array_equal(lookup(labels, genome_order, chroms, starts), y.astype(np.int8))
    with pytest.raises(ValueError, match="not in chrom_order"):
        BalancedSampler(labels, train, batch_size=8, chrom_order=["chr1"])


def test_errors():
    labels = make_labels()
    with pytest.raises(ValueError, match="have no labels"):
        BalancedSampler(labels, ["chrZ"], batch_size=8)
    empty = make_labels()
    empty.tracks["chr2"].labels[empty.tracks["chr2"].labels == 1] = 0
    with pytest.raises(ValueError, match="no positive"):
        BalancedSampler(empty, ["chr2"], batch_size=8)
    with pytest.raises(ValueError, match="rank"):
        BalancedSampler(labels, ["chr2"], batch_size=8, rank=2, world_size=2)


def test_eval_bins_all_unambiguous_in_order():
    labels = make_labels()
    _, _, test = ChromSplit().resolve(labels)
    ev = eval_bins(labels, test, batch_size=1000)
    batches = list(ev)
    assert len(batches) == len(ev)
    chroms = np.concatenate([b.chroms for b in batches])
    starts = np.concatenate([b.starts for b in batches])
    y = np.concatenate([b.labels for b in batches])
    names = list(ev.chrom_names)
    expect_c, expect_s, expect_y = [], [], []
    for c in test:
        t = labels.tracks[c]
        keep = t.labels >= 0
        expect_c += [c] * int(keep.sum())
        expect_s.append(t.starts[keep])
        expect_y.append(t.labels[keep])
    assert [names[c] for c in chroms] == expect_c
    assert np.array_equal(starts, np.concatenate(expect_s))
    assert np.array_equal(y, np.concatenate(expect_y).astype(np.float32))
    assert np.array_equal(ev.labels(), y.astype(np.int8))
    assert ev.n_pos == int(y.sum()) and ev.n_bins == y.size
    assert all((b.strands == 1).all() for b in batches)
    assert all(b.size == 1000 for b in batches[:-1])
    assert batches[0]._replace(strands=batches[0].strands).size == 1000
    ids, st = ev.positions()
    assert np.array_equal(ids, chroms) and np.array_equal(st, starts)
