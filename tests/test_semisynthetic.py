"""Semi-synthetic panel genomes (bsp_fast/data/semisynthetic.py): the binding process, labels, oracle
and PWM scan against plain per-position / per-bin references; planting; writing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bsp_fast.data import semisynthetic as S
from bsp_fast.motif_io import Motif, read_jaspar

PANEL_MOTIFS = __import__("pathlib").Path(__file__).resolve().parent.parent / "benchmarks" / "panel" / "motifs.jaspar"


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    """A 'real-like' FASTA: two records of Markov-chain DNA with GC drift and an N run."""
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("bg")
    recs = []
    for name, n in (("recA", 260_000), ("recB", 330_000)):
        gc = np.repeat(rng.uniform(0.3, 0.6, n // 10_000 + 1), 10_000)[:n]
        strong = rng.random(n) < gc
        coin = rng.random(n) < 0.5
        s = np.where(strong, np.where(coin, 1, 2), np.where(coin, 0, 3))
        seq = np.frombuffer(b"ACGT", dtype=np.uint8)[s].copy()
        seq[5000:5600] = ord("N")
        recs.append((name, seq.tobytes().decode()))
    recs.append(("tiny", "ACGT" * 100))
    fa = d / "bg.fa"
    fa.write_text("".join(f">{n} some description\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n"
                          for n, s in recs))
    return fa


def _spec(**kw):
    base = dict(name="t", factor="MA0114.4", prevalence=0.01, partner="MA0148.5", partner_fraction=0.6,
                partner_boost=3.0, blocker="MA0095.4", lookalikes_per_site=0.5, beta=0.5, seed=3)
    base.update(kw)
    return S.PanelSpec(**base)


def test_cut_segments(background):
    segs = S.cut_segments(background, 100_000, "ctg")
    # recA: 100k, 160k (the 60k tail joins); recB: 100k, 100k, 130k; 'tiny' skipped (under min_bp)
    assert [s.codes.size for s in segs] == [100_000, 160_000, 100_000, 100_000, 130_000]
    assert [s.name for s in segs] == [f"ctg_{k}" for k in range(1, 6)]
    assert segs[0].source == "recA:0-100000" and segs[1].source == "recA:100000-260000"
    assert (segs[0].codes[5000:5600] == 4).all() and segs[0].codes.max() == 4
    capped = S.cut_segments(background, 100_000, "c", max_bp=250_000, start=10_000)
    assert sum(s.codes.size for s in capped) == 250_000 and capped[0].source == "recA:10000-110000"
    with pytest.raises(ValueError, match="no record of at least"):
        S.cut_segments(background, 100_000, "c", min_bp=10_000_000)


def _ref_probabilities(codes, spec, mot, thr, gc_mean, theta):
    """Per position and strand, by plain loops over the definition in the module docstring."""
    L = codes.size

    def score(w5, p):  # window starting at p, either orientation
        m = w5.shape[0]
        if p < 0 or p + m > L or (codes[p:p + m] == 4).any():
            return -1e9, -1e9
        fw = sum(w5[k, codes[p + k]] for k in range(m))
        rc = S._rc5(w5)
        rv = sum(rc[k, codes[p + k]] for k in range(m))
        return fw, rv

    wf = S._pwm5(mot.factor)
    m = wf.shape[0]
    part = S._pwm5(mot.partner)
    blk = S._pwm5(mot.blocker)
    best_p = np.array([max(score(part, c - part.shape[0] // 2)) for c in range(L)])
    best_b = np.array([max(score(blk, c - blk.shape[0] // 2)) for c in range(L)])
    pp, pm = np.zeros(L), np.zeros(L)
    for c in range(L):
        fw, rv = score(wf, c - m // 2)
        near = best_p[max(0, c - spec.partner_window):c + spec.partner_window + 1].max() >= thr["partner"]
        bw = int(thr["blocker_window"])
        blocked = best_b[max(0, c - bw):c + bw + 1].max() >= thr["blocker"]
        lo, hi = max(0, c - 100), min(L, c + 100)
        w = codes[lo:hi]
        gc = ((w == 1) | (w == 2)).sum() / max((w < 4).sum(), 1)
        z = spec.beta * (gc - gc_mean) / 0.05 + spec.partner_boost * near
        for s, out in ((fw, pp), (rv, pm)):
            if s < -1e8 or blocked:
                continue
            out[c] = spec.pi_max / (1 + math.exp(-(spec.alpha * (s - theta) + z)))
    return pp, pm


def test_binding_labels_oracle_scan_match_references(background):
    spec = _spec()
    mot = S._motifs(spec, PANEL_MOTIFS)
    rng = np.random.default_rng(0)
    codes = S.cut_segments(background, 100_000, "c")[0].codes[:3000].copy()
    codes[100:120] = 4
    # plant a factor site next to a partner, and a look-alike, so every branch is exercised
    inst = S._sample_above(rng, S._ppm(mot.factor), S._pwm5(mot.factor), 1, 14.0)[0]
    codes[1000:1000 + inst.size] = inst
    pinst = S._sample_above(rng, S._ppm(mot.partner), S._pwm5(mot.partner), 1, 12.0)[0]
    codes[1025:1025 + pinst.size] = pinst
    codes[2000:2000 + inst.size] = inst
    binst = S._sample_above(rng, S._ppm(mot.blocker), S._pwm5(mot.blocker), 1, 12.0)[0]
    codes[2016:2016 + binst.size] = binst
    thr = {"theta": 12.0, "partner": 8.0, "blocker": 9.0, "blocker_window": 14}
    ch = S._Chrom(codes, spec, mot, thr, 0.45)
    pp, pm = ch.probabilities(spec, 12.0)
    rp, rm = _ref_probabilities(codes, spec, mot, thr, 0.45, 12.0)
    np.testing.assert_allclose(pp, rp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pm, rm, rtol=1e-9, atol=1e-12)
    assert pp[1000 + inst.size // 2] + pm[1000 + inst.size // 2] > 0.3  # the partnered site
    assert pp[2000 + inst.size // 2] == pm[2000 + inst.size // 2] == 0.0  # the look-alike
    assert (pp[100:120] == 0).all()
    centres = np.array([1006, 1500, 2900])
    starts, labels, oracle, mid, whole = S._labels_oracle_scan(ch, pp, pm, centres)
    assert starts[0] == 0 and starts[-1] == (3000 - 200) // 50 * 50
    best = np.maximum(ch.s_plus, ch.s_minus)
    lq = np.log1p(-pp) + np.log1p(-pm)
    for j, s0 in enumerate(starts.tolist()):
        c_in = [c for c in centres if s0 + 50 <= c <= s0 + 150]
        r_in = [c for c in centres if s0 <= c <= s0 + 200]
        assert labels[j] == (1 if c_in else (-1 if r_in else 0))
        central = lq[s0 + 50:min(s0 + 151, 3000)].sum()
        relaxed = lq[s0:min(s0 + 201, 3000)].sum()
        want = np.clip(np.log(-np.expm1(central)) - relaxed if central < 0 else -50.0, -50, 50)
        assert oracle[j] == pytest.approx(want, rel=1e-5, abs=1e-5)
        assert mid[j] == pytest.approx(best[s0 + 50:s0 + 151].max(), abs=1e-4)
        assert whole[j] == pytest.approx(best[s0:s0 + 201].max(), abs=1e-4)


def test_generate_hits_prevalence_and_the_rules(background):
    segs = S.cut_segments(background, 100_000, "c")
    spec = _spec()
    res = S.generate_panel_genome(spec, segs, PANEL_MOTIFS)
    assert abs(res["prevalence"] - spec.prevalence) <= 0.35 * spec.prevalence
    thr = res["thresholds"]
    mot = S._motifs(spec, PANEL_MOTIFS)
    n_bound = sum(p["centres"].size for p in res["segments"])
    assert n_bound > 50 and res["n_plant"] > 10
    for seg, p, rows in zip(segs, res["segments"], res["planted"]):
        ch = S._Chrom(p["codes"], spec, mot, thr, res["gc_mean"])
        assert not ch.blocked[p["centres"]].any()  # nothing bound where a blocker sits
        assert (p["codes"][seg.codes == 4] == 4).all()  # nothing planted over N
        kinds = {k for _, _, k, _ in rows}
        assert {"factor", "partner", "lookalike", "blocker"} <= kinds
    # partners raise binding: bound sites have one far more often than candidates do
    bound_with = sum(int(p["partner"].sum()) for p in res["segments"]) / n_bound
    assert bound_with > 0.4
    again = S.generate_panel_genome(spec, segs, PANEL_MOTIFS)
    assert all(np.array_equal(a["labels"], b["labels"]) for a, b in zip(res["segments"], again["segments"]))
    other = S.generate_panel_genome(_spec(seed=4), segs, PANEL_MOTIFS)
    assert not all(np.array_equal(a["labels"], b["labels"]) for a, b in zip(res["segments"], other["segments"]))


def test_write_and_read_back(background, tmp_path):
    from bsp_fast.data import Genome
    from bsp_fast.data.labels import read_dream_labels

    segs = S.cut_segments(background, 100_000, "c")
    out = tmp_path / "g"
    stats = S.write_panel_genome(out, _spec(), segs, PANEL_MOTIFS, test=["c_1", "c_4"], valid=["c_3"])
    assert json.loads((out / "stats.json").read_text()) == stats
    g = Genome(out / "genome.fa", cache_dir=tmp_path / "cache")
    assert [c for c, _ in g.chromosomes] == [s.name for s in segs]
    labels = read_dream_labels(out / "MA0114.4.train.labels.tsv.gz", "SEMI", genome=g)
    table = S.read_panel_oracle(out / "oracle.npz")
    for s in segs:
        assert table[s.name]["starts"].size == (s.codes.size - 200) // 50 + 1
    y = np.concatenate([table[c]["labels"] for c in ("c_1", "c_4")])
    assert stats["test_oracle"]["n_pos"] == int((y == 1).sum()) and stats["test_oracle"]["auprc"] > stats["prevalence"]
    assert set(labels.tracks) == {s.name for s in segs}
    with pytest.raises(ValueError, match="held-out segment 'nope'"):
        S.write_panel_genome(tmp_path / "h", _spec(), segs, PANEL_MOTIFS, test=["nope"], valid=[])
    assert not (tmp_path / "h").exists() and not list(tmp_path.glob(".h.*"))
    with pytest.raises(ValueError, match="no motif 'MA0000.0'"):
        S.generate_panel_genome(_spec(factor="MA0000.0"), segs, PANEL_MOTIFS)


def test_oracle_ablation(background):
    """Everything on reproduces the stored oracle; a term the spec lacks gets no row; removing the
    partner of a genome it helps lowers the oracle's auPRC; motif only = all terms off."""
    segs = S.cut_segments(background, 100_000, "c")
    names = [s.name for s in segs]
    spec = _spec(blocker=None, beta=0.0, partner_boost=4.0)
    res = S.generate_panel_genome(spec, segs, PANEL_MOTIFS)
    keep = names[1::2]
    rows = S.oracle_ablation(spec, res, PANEL_MOTIFS, names, keep)
    assert set(rows) == {"oracle", "no partner", "motif only"}
    y = np.concatenate([p["labels"] for n, p in zip(names, res["segments"]) if n in keep])
    o = np.concatenate([p["oracle"] for n, p in zip(names, res["segments"]) if n in keep])
    assert rows["oracle"] == S._metrics(y, o)
    assert rows["no partner"]["auprc"] < rows["oracle"]["auprc"] - 0.01
    assert rows["motif only"] == rows["no partner"]  # the partner was the only term
    full = S.oracle_ablation(_spec(), S.generate_panel_genome(_spec(), segs, PANEL_MOTIFS), PANEL_MOTIFS, names, keep)
    assert set(full) == {"oracle", "no GC", "no partner", "no blocker", "motif only"}
    with pytest.raises(ValueError, match="none of the segments"):
        S.oracle_ablation(spec, res, PANEL_MOTIFS, names, ["nope"])
