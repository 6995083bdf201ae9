"""The built-in synthetic data set: files readable by the real readers, labels and oracle exactly as
documented (checked against an independent brute-force implementation), determinism, the cache,
and the fairness properties of the default data set."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from bsp_fast.data import synthetic as syn
from bsp_fast.data.sampler import ChromSplit, eval_bins
from bsp_fast.motif_io import read_jaspar

SMALL = dict(scale=0.05)  # ~500 kbp, < 1 s


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return syn.ensure_builtin(root, **SMALL)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _read_fasta(path: Path) -> dict[str, str]:
    seqs, name = {}, None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            seqs[name] = []
        else:
            seqs[name].append(line)
    return {k: "".join(v) for k, v in seqs.items()}


def _read_labels_tsv(path: Path) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    with gzip.open(path, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        rows: dict[str, list] = {}
        for line in fh:
            c, s, e, l = line.rstrip("\n").split("\t")
            assert int(e) - int(s) == 200
            rows.setdefault(c, []).append((int(s), {"B": 1, "U": 0, "A": -1}[l]))
    return header, {c: (np.array([r[0] for r in v]), np.array([r[1] for r in v], np.int8)) for c, v in rows.items()}


def test_layout_and_files(small):
    assert small.cell == "SYNTH" and small.fasta.exists() and small.labels.exists()
    assert small.peaks_bed.exists() and small.oracle.exists() and small.sites_bed.exists()
    assert small.cache_dir.name.startswith("builtin-v1-")  # non-default options get their own directory
    seqs = _read_fasta(small.fasta)
    names = list(seqs)
    for c in ("chr1", "chr8", "chr11", "chr21"):
        assert c in names
    train, valid, test = ChromSplit().resolve(names)
    assert len(train) >= 3 and valid == ("chr11",) and test == ("chr1", "chr8", "chr21")
    sizes = dict(syn.BuiltinParams(**SMALL).sizes())
    assert {k: len(v) for k, v in seqs.items()} == sizes
    assert set("".join(seqs.values())) <= set("ACGTN")
    # the .fai we write is what pyfaidx would write
    pyfaidx = pytest.importorskip("pyfaidx")
    fa = pyfaidx.Fasta(str(small.fasta))
    for c in names:
        assert str(fa[c][1000:1100]) == seqs[c][1000:1100]
        assert len(fa[c]) == sizes[c]
    header, tsv = _read_labels_tsv(small.labels)
    assert header == ["chr", "start", "stop", "SYNTH"]
    oracle = syn.read_oracle(small.oracle)
    assert list(oracle) == names == list(tsv)
    for c in names:
        starts, labels, scores = oracle[c]
        assert np.array_equal(tsv[c][0], starts) and np.array_equal(tsv[c][1], labels)
        assert np.array_equal(starts, np.arange(0, sizes[c] - 199, 50))
        assert scores.dtype == np.float32 and np.isfinite(scores).all()


def test_labels_follow_the_stated_rule(small):
    """B: a bound site's centre in [start + 50, start + 150]; A: in [start, start + 200]; else U."""
    oracle = syn.read_oracle(small.oracle)
    centres: dict[str, list[int]] = {}
    for line in small.sites_bed.read_text().splitlines():
        c, s, e, name, score, strand = line.split("\t")
        assert int(e) - int(s) == 14 and strand in "+-" and 0 < int(score) <= 1000
        centres.setdefault(c, []).append(int(s) + 7)
    peaks = [l.split("\t") for l in small.peaks_bed.read_text().splitlines()]
    assert len(peaks) == sum(len(v) for v in centres.values())
    n_b = 0
    for c, (starts, labels, _) in oracle.items():
        cc = np.array(centres.get(c, []))
        d = cc[None, :] - starts[:, None] if cc.size else np.zeros((starts.size, 0))
        b = ((d >= 50) & (d <= 150)).any(axis=1)
        a = ((d >= 0) & (d <= 200)).any(axis=1) & ~b
        expect = np.where(b, 1, np.where(a, -1, 0))
        assert np.array_equal(expect, labels), c
        n_b += int(b.sum())
    assert n_b > 0


def _naive_bits(motif, seq: str) -> float:
    m = motif.matrix + 0.5
    w = np.log2(m / m.sum(axis=1, keepdims=True) / 0.25)
    total = 0.0
    for k, ch in enumerate(seq):
        if ch == "N":
            return -1e9
        total += w[k, "ACGT".index(ch)]
    return total


def _rc(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def test_oracle_matches_brute_force(small):
    """Recompute P(B)/P(U) for some bins from the sequence with a direct, loop-based implementation."""
    p = syn.BuiltinParams(**SMALL)
    motifs = {m.id: m for m in read_jaspar(syn.motif_path())}
    gabpa, elk1 = motifs["MA0062.3"], motifs["MA0028.3"]
    seqs = _read_fasta(small.fasta)
    oracle = syn.read_oracle(small.oracle)
    rng = np.random.default_rng(0)
    for c in ("chr2", "chr11"):
        seq = seqs[c]
        starts, labels, scores = oracle[c]
        picks = list(rng.choice(np.flatnonzero(labels == 0), 3, replace=False))
        picks += list(np.flatnonzero(labels == 1)[:3]) + list(np.flatnonzero(scores > -2)[:2])
        for i in picks:
            s = int(starts[i])
            log_u = 0.0
            log_notb = 0.0
            for centre in range(s, s + 201):
                q = centre - 7
                if q < 0 or q + 14 > len(seq):
                    continue
                window = seq[q : q + 14]
                lo, hi = max(0, centre - 100), min(len(seq), centre + 100)
                cpg = seq[lo:hi].count("CG")
                ctx = p.beta * (min(cpg / p.cpg_full, 1.0) - 0.5)
                for strand in (+1, -1):
                    site = window if strand > 0 else _rc(window)
                    bits = _naive_bits(gabpa, site)
                    # MA0062.3 reads CCCACTTCCTGTTT; its positions 3..11 (ACTTCCTGT) are the ETS
                    # core, where ELK1 (ACCGGAAGT) lies as its reverse complement ACTTCCGGT
                    elk = _naive_bits(elk1, _rc(site[3:12]))
                    z = p.alpha * (bits - p.theta) + ctx
                    pi = 0.0 if elk >= p.elk1_gate_bits else p.pi_max / (1 + np.exp(-max(z, -700.0)))
                    log_u += np.log1p(-pi)
                    if s + 50 <= centre <= s + 150:
                        log_notb += np.log1p(-pi)
            expect = np.log(-np.expm1(log_notb)) - log_u if log_notb < 0 else -50.0
            assert scores[i] == pytest.approx(max(expect, -50.0), abs=2e-3, rel=1e-4), (c, s)


def test_elk1_decoys_never_bound_and_gabpa_partly(small):
    stats = small.stats
    frac = stats["planted_bound_fraction"]
    assert frac["ELK1"][0] == 0 and frac["ELK1"][1] > 0
    assert 0 < frac["GABPA"][2] < 0.9  # only part of the GABPA sites are bound
    planted = [l.split("\t") for l in (small.cache_dir / "planted_sites.bed").read_text().splitlines()]
    kinds = {r[3].replace("_weak", "") for r in planted}
    assert kinds == {"GABPA", "ELK1", "SP1", "NRF1", "YY1"}
    assert all(r[4] == "0" for r in planted if r[3] == "ELK1")


def test_background_gc_varies_and_cpg_depleted(small):
    seq = _read_fasta(small.fasta)["chr2"].replace("N", "")
    gc = [sum(ch in "GC" for ch in seq[i : i + 5000]) / 5000 for i in range(0, len(seq) - 5000, 5000)]
    assert max(gc) - min(gc) > 0.06
    c, g = seq.count("C"), seq.count("G")
    obs_exp = seq.count("CG") * len(seq) / (c * g)
    assert 0.15 < obs_exp < 0.5  # human-like CpG depletion (islands keep theirs)


def test_cache_reuse_determinism_and_atomicity(tmp_path, small):
    a = syn.ensure_builtin(tmp_path / "a", **SMALL)
    mtime = a.fasta.stat().st_mtime_ns
    again = syn.ensure_builtin(tmp_path / "a", **SMALL)
    assert again.fasta.stat().st_mtime_ns == mtime  # reused, not regenerated
    for f in ("fasta", "labels", "peaks_bed", "oracle"):
        assert _md5(getattr(a, f)) == _md5(getattr(small, f))  # deterministic across runs
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp dirs left
    other = syn.ensure_builtin(tmp_path / "b", seed=5, **SMALL)
    assert _md5(other.fasta) != _md5(a.fasta)
    # an incomplete directory (no stats.json) is never used: it is regenerated
    (a.cache_dir / "stats.json").unlink()
    (a.cache_dir / "genome.fa").write_text(">broken\n")
    fixed = syn.ensure_builtin(tmp_path / "a", **SMALL)
    assert _md5(fixed.fasta) == _md5(small.fasta)
    with pytest.raises(TypeError, match="unknown option"):
        syn.ensure_builtin(tmp_path / "c", sizee=3)


def test_env_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("BSP_FAST_CACHE", str(tmp_path / "env"))
    b = syn.ensure_builtin(chrom_sizes={"chr1": 30_000, "chr2": 30_000, "chr8": 20_000, "chr11": 20_000, "chr21": 20_000})
    assert b.cache_dir.parent == tmp_path / "env"


def test_oracle_scores_align_with_eval_bins(small):
    labels_mod = pytest.importorskip("bsp_fast.data.labels")
    try:
        labels = labels_mod.read_dream_labels(small.labels, small.cell)
    except ImportError:
        pytest.skip("label parser not built")
    _, valid, test = ChromSplit().resolve(labels)
    for chroms in (test, valid):
        ev = eval_bins(labels, chroms, 1000)
        scores = syn.oracle_scores(small, chroms)
        assert scores.shape == (ev.n_bins,)
        y = ev.labels()
        assert (y == 1).any()
        # the oracle ranks positives far above negatives
        assert scores[y == 1].mean() > scores[y == 0].mean() + 5
    with pytest.raises(ValueError, match="no oracle"):
        syn.oracle_scores(small, ["chrX"])


@pytest.mark.slow
def test_default_dataset_is_a_fair_test(tmp_path):
    """The full default set (~5 s): sizes, prevalence, oracle ceiling and weaker naive baselines."""
    stats = syn.generate(tmp_path / "full")
    assert stats["generation_seconds"] < 60
    assert 9_000_000 <= stats["total_bp"] <= 20_000_000
    allsplit = stats["splits"]["all"]
    assert 0.005 <= allsplit["prevalence"] <= 0.02
    test = stats["splits"]["test"]
    assert test["B"] > 300
    oracle = test["oracle"]
    assert 0.6 <= oracle["auprc"] <= 0.9 and oracle["auroc"] > 0.98
    base = test["baselines"]
    assert base["gc"]["auprc"] < 0.2 * oracle["auprc"]  # GC content alone is far from the ceiling
    assert base["consensus"]["auprc"] < oracle["auprc"] - 0.25  # so is the consensus word
    assert base["pwm_max"]["auprc"] < oracle["auprc"] - 0.1  # and the PWM without ELK1 / context
    assert stats["planted_bound_fraction"]["ELK1"][0] == 0
    json.dumps(stats)


def test_end_to_end_through_the_real_readers(small, tmp_path):
    """FASTA -> Genome, labels TSV -> read_dream_labels -> BalancedSampler -> windows: the bound
    bins' windows carry strong GABPA sites in their centre, the unbound ones rarely do."""
    try:
        from bsp_fast.data import Genome, read_dream_labels
    except ImportError:
        pytest.skip("compiled data layer not built")
    from bsp_fast.data.sampler import BalancedSampler

    genome = Genome(small.fasta, cache_dir=tmp_path / "gcache")
    labels = read_dream_labels(small.labels, small.cell, genome=genome)
    train, _, _ = ChromSplit().resolve(labels)
    sampler = BalancedSampler(labels, train, batch_size=64, seed=0, rc_augment=True, chrom_order=genome)
    motif = {m.id: m for m in read_jaspar(syn.motif_path())}["MA0062.3"]
    w = motif.log_odds(pseudocount=0.5)
    w5 = np.concatenate([w, np.full((14, 1), -20.0)], axis=1)
    best = {1.0: [], 0.0: []}
    for batch in sampler.epoch_batches(0)[:20]:
        codes = genome.codes(batch.chroms, batch.starts + 43, 114, batch.strands)  # centres in [s+50, s+150]
        for row, y in zip(codes, batch.labels):
            scores = [max(w5[np.arange(14), row[k : k + 14]].sum(), w5[np.arange(14), 3 - row[k : k + 14][::-1]].sum())
                      for k in range(0, 101) if (row[k : k + 14] < 4).all()]
            best[float(y)].append(max(scores) if scores else -99)
    assert np.median(best[1.0]) > 11 and np.median(best[0.0]) < 6
