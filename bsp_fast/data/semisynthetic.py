"""Semi-synthetic binding data on REAL DNA: known motifs planted into a real genome sequence, bound by
a known, sequence-only process, with its exact oracle and an exact-PWM scan beside it.

The built-in data set (:mod:`bsp_fast.data.synthetic`) draws its background base by base; here the
background is a real genome (repeats, GC drift, real k-mer statistics), cut into named segments, and
one :class:`PanelSpec` says which factor binds and what helps or stops it. The benchmark panel
(``benchmarks/panel.py``) builds several of these; a user can build one on their own genome to see
what a model learns there.

Binding process (every number is a :class:`PanelSpec` field)
-------------------------------------------------------------
1. Every position and strand is a candidate site of the factor's JASPAR matrix (length m, centre
   ``start + m // 2``) with log-odds S (bits, uniform background, an N never a site).
2. ``P(bound) = pi_max * sigmoid(alpha * (S - theta) + boost * partner + beta * gc_z)`` where
   ``partner`` is 1 when a partner motif (its own log-odds >= ``partner_bits``, either strand) has its
   centre within ``partner_window`` bp of the candidate's centre (cooperative binding), and ``gc_z``
   is the GC fraction of the 200 bp around the centre minus the genome's mean, over 0.05 (open,
   GC-rich or AT-rich chromatin). A candidate with a blocker motif (log-odds >= ``blocker_bits``)
   centred within ``blocker_window`` bp is never bound (a look-alike: occupied by another factor,
   as ELK1 occupies GABPA's ETS core in the built-in set). ``theta`` is ``theta_below`` bits under the
   mean score of instances drawn from the matrix, raised in 0.5-bit steps while the real background
   alone would give more than a third of the target bound-site count (but not past the motif's best
   score minus 0.5 bits: a short motif's own genomic matches may then make most of the bound sites).
3. Planted instances (sampled from the matrices, ``weak_fraction`` of the factor's from a
   flattened matrix): factor sites alone and in clusters (``clustered_fraction``, ``cluster_sites``
   per cluster within ``cluster_span`` bp), a partner next to ``partner_fraction`` of them, and
   look-alikes (a strong factor instance with a blocker beside it). Strong factor instances are
   drawn from the matrix until they score at least ``theta - 1`` bits. Their number is set so that
   about ``prevalence`` of the scored bins are bound (two rounds: plant, measure, rescale).
4. Labels and oracle exactly as the built-in set: 200 bp bins every 50 bp, B when a bound site's
   centre lies in the bin's middle half, A when only in the bin, U otherwise; the oracle is
   ``log P(B | seq) - log P(U | seq)`` from the per-site probabilities.
5. The PWM scan: per bin, the best factor log-odds (either strand) with its centre in the bin's
   middle half, and in the whole bin; what a FIMO user with the exact matrix would rank by.

Output (``write_panel_genome``): ``genome.fa`` (+ ``.fai``), ``<TF>.train.labels.tsv.gz`` (cell
column ``SEMI``), ``oracle.npz`` (per segment: bin starts, labels, oracle, scan_mid, scan_bin),
``bound_sites.bed``, ``planted_sites.bed``, ``spec.json`` and ``stats.json`` (written last; the
directory is renamed into place when complete).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bsp_fast.data import synthetic as _synthetic
from bsp_fast.motif_io import Motif, read_motifs

__all__ = ["PanelSpec", "Segment", "cut_segments", "generate_panel_genome", "write_panel_genome", "read_panel_oracle",
           "oracle_ablation"]

CELL = "SEMI"
BIN, STEP = 200, 50
_A, _C, _G, _T, _N = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class PanelSpec:
    """One semi-synthetic genome: the factor, what helps it, what blocks it, how often it binds."""

    name: str
    factor: str  # motif id in the motif file
    prevalence: float = 0.005  # target fraction of scored bins that are B
    partner: str | None = None
    partner_window: int = 40
    partner_boost: float = 3.0
    partner_bits: float = 0.0  # 0: the mean score of sampled partner instances minus 2 bits
    partner_fraction: float = 0.0
    blocker: str | None = None
    blocker_window: int = 0  # 0: (m_factor + m_blocker) // 2 + 4, i.e. the blocker adjacent to the site
    blocker_bits: float = 0.0  # 0: the mean score of sampled blocker instances minus 2 bits
    lookalikes_per_site: float = 0.0  # planted look-alikes per planted factor site
    clustered_fraction: float = 0.3
    cluster_sites: float = 3.0  # mean factor sites per cluster (1 + Poisson(mean - 1))
    cluster_span: int = 500
    weak_fraction: float = 0.3
    weak_temperature: float = 0.5
    pi_max: float = 0.85
    alpha: float = 1.0
    theta_below: float = 1.0
    beta: float = 0.0
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Segment:
    """A named piece of real sequence (codes A=0 C=1 G=2 T=3 N=4) and where it came from."""

    name: str
    codes: np.ndarray
    source: str  # "record:start-end" of the background FASTA


def cut_segments(fasta: str | os.PathLike, segment_bp: int, prefix: str, max_bp: int | None = None,
                 min_bp: int = 200_000, start: int = 0) -> list[Segment]:
    """Cut the records of a real FASTA, from ``start`` bp on in each, into segments of about
    ``segment_bp`` (the last piece of a record joins the one before if shorter than ``min_bp``;
    records shorter than ``min_bp`` are skipped), named ``<prefix>_<k>`` (k from 1), at most
    ``max_bp`` in all."""
    import pyfaidx


    lut = np.full(256, _N, dtype=np.uint8)
    for i, ch in enumerate(b"ACGT"):
        lut[ch] = i
        lut[ord(chr(ch).lower())] = i
    out: list[Segment] = []
    total = 0
    fa = pyfaidx.Fasta(str(fasta), as_raw=True, sequence_always_upper=False, rebuild=False)
    try:
        for rec in fa.keys():
            n = len(fa[rec])
            if n < min_bp:
                continue
            if n - start < min_bp:
                continue
            cuts = list(range(start, n, segment_bp)) + [n]
            if len(cuts) > 2 and cuts[-1] - cuts[-2] < min_bp:
                cuts.pop(-2)
            for a, b in zip(cuts[:-1], cuts[1:]):
                if max_bp is not None and total >= max_bp:
                    return out
                b = min(b, a + (max_bp - total)) if max_bp is not None else b
                if b - a < min(min_bp, segment_bp):  # a piece cut short by max_bp
                    continue
                seq = np.frombuffer(str(fa[rec][a:b]).encode("ascii"), dtype=np.uint8)
                out.append(Segment(f"{prefix}_{len(out) + 1}", lut[seq], f"{rec}:{a}-{b}"))
                total += b - a
    finally:
        fa.close()
    if not out:
        raise ValueError(f"{fasta}: no record of at least {min_bp:,} bp")
    return out


# ---- motif arithmetic ---------------------------------------------------------------------------


# the built-in generator's matrix helpers: probabilities with pseudocount 0.5, log-odds in bits with
# an N column of -20, its reverse complement, sampling base by base
_ppm, _pwm5, _rc5, _sample = _synthetic._ppm, _synthetic._pwm5, _synthetic._rc_pwm5, _synthetic._sample_instances


def _scan(codes: np.ndarray, w5: np.ndarray) -> np.ndarray:
    """The built-in generator's scan (score of every full window), with -1e9 where the window holds
    an N: never a site, not merely a poor one."""
    out = _synthetic._scan(codes, w5)
    m, n = w5.shape[0], out.size
    if n > 0:
        nc = np.concatenate([[0], np.cumsum(codes == _N)])
        out[nc[m:m + n] - nc[:n] > 0] = -1e9
    return out


def _centred(scores: np.ndarray, m: int, length: int, fill: float = -1e9) -> np.ndarray:
    """Per-position array [length]: scores of windows starting at p placed at their centre p + m // 2."""
    out = np.full(length, fill)
    out[m // 2:m // 2 + scores.size] = scores
    return out


def _best_centred(codes: np.ndarray, w5: np.ndarray) -> np.ndarray:
    """Best of both strands' log-odds, by site centre [len(codes)]."""
    s = np.maximum(_scan(codes, w5), _scan(codes, _rc5(w5)))
    return _centred(s, w5.shape[0], codes.size)


def _near_max(x: np.ndarray, half: int) -> np.ndarray:
    """max of x over [i - half, i + half] (the ends padded with -inf)."""
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(x, size=2 * half + 1, mode="constant", cval=-1e9)


def _score_rows(inst: np.ndarray, w5: np.ndarray) -> np.ndarray:
    return w5[np.arange(inst.shape[1])[None, :], inst].sum(axis=1)


def _sample_above(rng: np.random.Generator, ppm: np.ndarray, w5: np.ndarray, n: int, bits: float) -> np.ndarray:
    """Instances with log-odds >= bits: redrawn up to 50 times from the matrix, then from sharper
    versions of it (p ** t, t = 1.5 ... 6), which reach the high scores of low-information motifs;
    ``bits`` above the best score gives the best-scoring draws."""
    inst = _sample(rng, ppm, n)
    for t in [1.0] * 50 + [1.5] * 20 + [2.0] * 20 + [3.0] * 20 + [6.0] * 20:
        bad = _score_rows(inst, w5) < bits
        if not bad.any():
            break
        inst[bad] = _sample(rng, ppm, int(bad.sum()), t)
    return inst


# ---- the generator --------------------------------------------------------------------------------


@dataclass
class _Motifs:
    factor: Motif
    partner: Motif | None
    blocker: Motif | None


def _motifs(spec: PanelSpec, motif_file: str | os.PathLike) -> _Motifs:
    by_id = {m.id: m for m in read_motifs(motif_file)}

    def get(i: str | None, what: str) -> Motif | None:
        if i is None:
            return None
        if i not in by_id:
            raise ValueError(f"{motif_file}: no motif {i!r} ({what} of panel genome {spec.name!r}); "
                             f"it has {', '.join(sorted(by_id))}")
        return by_id[i]

    return _Motifs(get(spec.factor, "factor"), get(spec.partner, "partner"), get(spec.blocker, "blocker"))


def _mean_instance_bits(rng: np.random.Generator, m: Motif) -> float:
    return float(_score_rows(_sample(rng, _ppm(m), 4000), _pwm5(m)).mean())


def _gc_z(codes: np.ndarray, gc_mean: float) -> np.ndarray:
    """(GC fraction of the 200 bp around each position - genome mean) / 0.05."""
    strong = ((codes == _C) | (codes == _G)).astype(np.float64)
    known = (codes < _N).astype(np.float64)
    cs = np.concatenate([[0.0], np.cumsum(strong)])
    ck = np.concatenate([[0.0], np.cumsum(known)])
    i = np.arange(codes.size)
    lo, hi = np.clip(i - 100, 0, codes.size), np.clip(i + 100, 0, codes.size)
    gc = (cs[hi] - cs[lo]) / np.maximum(ck[hi] - ck[lo], 1.0)
    return (gc - gc_mean) / 0.05


class _Chrom:
    """Per-segment arrays of the binding process (recomputed after planting)."""

    def __init__(self, codes: np.ndarray, spec: PanelSpec, mot: _Motifs, thr: dict[str, float], gc_mean: float) -> None:
        wf = _pwm5(mot.factor)
        m = wf.shape[0]
        self.codes = codes
        L = codes.size
        s_plus = _centred(_scan(codes, wf), m, L)
        s_minus = _centred(_scan(codes, _rc5(wf)), m, L)
        ctx = np.zeros(L)
        if spec.beta:
            ctx += spec.beta * _gc_z(codes, gc_mean)
        self.partner = np.zeros(L, dtype=bool)
        if mot.partner is not None:
            self.partner = _near_max(_best_centred(codes, _pwm5(mot.partner)), spec.partner_window) >= thr["partner"]
            ctx += spec.partner_boost * self.partner
        self.blocked = np.zeros(L, dtype=bool)
        if mot.blocker is not None:
            self.blocked = _near_max(_best_centred(codes, _pwm5(mot.blocker)), thr["blocker_window"]) >= thr["blocker"]
        self.s_plus, self.s_minus, self.ctx = s_plus, s_minus, ctx

    def probabilities(self, spec: PanelSpec, theta: float) -> tuple[np.ndarray, np.ndarray]:
        def pi(s: np.ndarray) -> np.ndarray:
            z = np.clip(spec.alpha * (s - theta) + self.ctx, -60, 60)
            out = spec.pi_max / (1.0 + np.exp(-z))
            out[self.blocked] = 0.0
            out[s < -1e8] = 0.0
            return out

        return pi(self.s_plus), pi(self.s_minus)


_window_sum = _synthetic._window_sum  # sum over [lo, hi] inclusive from a prefix sum with a leading 0


def _labels_oracle_scan(ch: _Chrom, pi_plus: np.ndarray, pi_minus: np.ndarray, centres: np.ndarray):
    L = ch.codes.size
    starts = np.arange(max((L - BIN) // STEP + 1, 0), dtype=np.int64) * STEP
    lq = np.log1p(-pi_plus) + np.log1p(-pi_minus)
    cum = np.concatenate([[0.0], np.cumsum(lq)])
    central = _window_sum(cum, starts + 50, starts + 150)
    relaxed = _window_sum(cum, starts, starts + 200)
    with np.errstate(divide="ignore"):
        oracle = np.clip(np.log(-np.expm1(central)) - relaxed, -50.0, 50.0).astype(np.float32)
    cnt = np.zeros(L + 1, dtype=np.int64)
    np.add.at(cnt, centres, 1)
    ccum = np.concatenate([[0], np.cumsum(cnt)])
    b = _window_sum(ccum, starts + 50, starts + 150) > 0
    a = _window_sum(ccum, starts, starts + 200) > 0
    labels = np.where(b, 1, np.where(a, -1, 0)).astype(np.int8)
    best = np.maximum(ch.s_plus, ch.s_minus)
    from numpy.lib.stride_tricks import sliding_window_view as swv

    pad = np.concatenate([best, np.full(BIN + 1, -1e9)])
    mid = swv(pad, 101)[starts + 50].max(axis=1)
    whole = swv(pad, 201)[starts].max(axis=1)
    return starts, labels, oracle, mid.astype(np.float32), whole.astype(np.float32)


def _plant(rng: np.random.Generator, segs: list[np.ndarray], spec: PanelSpec, mot: _Motifs, thr: dict[str, float],
           n_sites: int) -> list[list[tuple[int, int, str, str]]]:
    """Write planted instances into ``segs`` (in place); returns per segment (start, end, kind, strand)."""
    total = sum(s.size for s in segs)
    frac = np.array([s.size / total for s in segs])
    ppm_f, wf = _ppm(mot.factor), _pwm5(mot.factor)
    m = wf.shape[0]
    rows: list[list[tuple[int, int, str, str]]] = [[] for _ in segs]

    def put(k: int, centre: int, inst: np.ndarray, kind: str) -> bool:
        codes = segs[k]
        w = inst.size
        a = int(centre) - w // 2
        if a < 0 or a + w > codes.size or (codes[a:a + w] == _N).any():
            return False
        minus = rng.random() < 0.5
        codes[a:a + w] = (3 - inst[::-1]) if minus else inst
        rows[k].append((a, a + w, kind, "-" if minus else "+"))
        return True

    def factor_instances(n: int) -> np.ndarray:
        # strong instances: drawn from the matrix until they score within a bit of theta (a real
        # factor's sites are its good matches); weak ones from the flattened matrix, as drawn
        weak = rng.random(n) < spec.weak_fraction
        inst = _sample_above(rng, ppm_f, wf, n, thr["theta"] - 1.0)
        if weak.any():
            inst[weak] = _sample(rng, ppm_f, int(weak.sum()), spec.weak_temperature)
        return inst

    # centres of factor sites: clusters and singletons
    centres: list[tuple[int, int]] = []
    n_clustered = int(round(n_sites * spec.clustered_fraction))
    while n_clustered > 0:
        k = int(rng.choice(len(segs), p=frac))
        c0 = int(rng.integers(0, segs[k].size))
        size = min(n_clustered, 1 + int(rng.poisson(max(spec.cluster_sites - 1.0, 0.0))))
        for c in c0 + rng.integers(-spec.cluster_span // 2, spec.cluster_span // 2 + 1, size=size):
            centres.append((k, int(c)))
        n_clustered -= size
    for _ in range(n_sites - int(round(n_sites * spec.clustered_fraction))):
        k = int(rng.choice(len(segs), p=frac))
        centres.append((k, int(rng.integers(0, segs[k].size))))
    for (k, c), inst in zip(centres, factor_instances(len(centres))):
        if put(k, c, inst, "factor") and mot.partner is not None and rng.random() < spec.partner_fraction:
            pm = len(mot.partner)
            lo = (m + pm) // 2 + 1
            d = int(rng.integers(lo, max(lo + 1, spec.partner_window + 1)))
            inst_p = _sample_above(rng, _ppm(mot.partner), _pwm5(mot.partner), 1, thr["partner"])[0]
            put(k, c + d * (1 if rng.random() < 0.5 else -1), inst_p, "partner")
    if mot.blocker is not None and spec.lookalikes_per_site > 0:
        bm = len(mot.blocker)
        n_look = int(round(n_sites * spec.lookalikes_per_site))
        strong = _sample_above(rng, ppm_f, wf, n_look, thr["theta"] + 1.0)
        blockers = _sample_above(rng, _ppm(mot.blocker), _pwm5(mot.blocker), n_look, thr["blocker"])
        bw = int(thr["blocker_window"])
        for inst, binst in zip(strong, blockers):
            k = int(rng.choice(len(segs), p=frac))
            c = int(rng.integers(0, segs[k].size))
            if not put(k, c, inst, "lookalike"):
                continue
            lo = min((m + bm) // 2 + 1, bw)
            d = int(rng.integers(lo, bw + 1)) if bw > lo else bw
            put(k, c + d * (1 if rng.random() < 0.5 else -1), binst, "blocker")
    return rows


def generate_panel_genome(spec: PanelSpec, background: Sequence[Segment], motif_file: str | os.PathLike) -> dict[str, Any]:
    """The semi-synthetic genome of ``spec`` on ``background`` (not written): a dict with the segments'
    final codes, labels, oracle, scans, bound sites, planted rows, the thresholds used and stats."""
    rng_root = np.random.SeedSequence([spec.seed, 0x5E41])
    mot = _motifs(spec, motif_file)
    m = len(mot.factor)
    r0 = np.random.default_rng(rng_root.spawn(1)[0])
    thr: dict[str, float] = {"theta": _mean_instance_bits(r0, mot.factor) - spec.theta_below}
    if mot.partner is not None:
        thr["partner"] = spec.partner_bits or _mean_instance_bits(r0, mot.partner) - 2.0
    if mot.blocker is not None:
        thr["blocker"] = spec.blocker_bits or _mean_instance_bits(r0, mot.blocker) - 2.0
        thr["blocker_window"] = spec.blocker_window or (m + len(mot.blocker)) // 2 + 4
    base = [s.codes for s in background]
    known = sum(int((c < _N).sum()) for c in base)
    gc_mean = sum(int(((c == _C) | (c == _G)).sum()) for c in base) / max(known, 1)
    n_bins = sum(max((c.size - BIN) // STEP + 1, 0) for c in base)
    target_sites = spec.prevalence * n_bins / 2.5  # ~2.5 B bins per bound site (3 alone, fewer in clusters)

    # theta: the real background alone may not make more than a third of the bound sites
    chs = [_Chrom(c, spec, mot, thr, gc_mean) for c in base]

    def expected(theta: float) -> float:
        return float(sum(sum(p.sum() for p in ch.probabilities(spec, theta)) for ch in chs))

    best_bits = float(_pwm5(mot.factor)[:, :4].max(axis=1).sum())
    bg_expected = expected(thr["theta"])
    while bg_expected > target_sites / 3 and thr["theta"] < best_bits - 0.5:
        thr["theta"] += 0.5
        bg_expected = expected(thr["theta"])
    thr["background_expected_sites"] = bg_expected

    n_plant = max(10, int(round((target_sites - bg_expected) / (0.5 * spec.pi_max))))
    result: dict[str, Any] = {}
    for round_ in range(4):
        rng = np.random.default_rng(rng_root.spawn(2 + round_)[-1])
        segs = [c.copy() for c in base]
        planted = _plant(rng, segs, spec, mot, thr, n_plant)
        chs = [_Chrom(c, spec, mot, thr, gc_mean) for c in segs]
        per, n_b, n_scored = [], 0, 0
        for k, ch in enumerate(chs):
            pp, pm = ch.probabilities(spec, thr["theta"])
            bp, bm = rng.random(pp.size) < pp, rng.random(pm.size) < pm
            where = np.concatenate([np.flatnonzero(bp), np.flatnonzero(bm)])
            order = np.argsort(where, kind="stable")
            centres, prob = where[order], np.concatenate([pp[bp], pm[bm]])[order]
            starts, labels, oracle, mid, whole = _labels_oracle_scan(ch, pp, pm, centres)
            per.append(dict(starts=starts, labels=labels, oracle=oracle, scan_mid=mid, scan_bin=whole,
                            centres=centres, prob=prob, partner=ch.partner[centres], codes=ch.codes))
            n_b += int((labels == 1).sum())
            n_scored += int((labels >= 0).sum())
        got = n_b / max(n_scored, 1)
        result = dict(segments=per, planted=planted, n_plant=n_plant, prevalence=got)
        if abs(got - spec.prevalence) <= 0.1 * spec.prevalence:
            break
        # rescale the planted sites' share of the bound sites (the background's own sites stay)
        bound_now = sum(p["centres"].size for p in per)
        planted_share = max(bound_now - bg_expected, 1.0)
        want = max(bound_now * spec.prevalence / max(got, 1e-9) - bg_expected, 1.0)
        n_plant = max(10, int(round(n_plant * want / planted_share)))
    result["thresholds"] = thr
    result["gc_mean"] = gc_mean
    result["factor_bp"] = m
    return result


def oracle_ablation(spec: PanelSpec, result: dict[str, Any], motif_file: str | os.PathLike,
                    names: Sequence[str], keep: Sequence[str]) -> dict[str, dict[str, float]]:
    """What each context term of the binding process is worth: the oracle's test metrics with it removed.

    ``result`` is :func:`generate_panel_genome`'s (same ``spec``), ``names`` its segments' names in
    order, ``keep`` the segments to score (the test segments). The labels stay those drawn with every
    term on; only the oracle's score changes. Rows: ``oracle`` (everything, as stored), ``no GC``
    (beta 0), ``no partner``, ``no blocker`` (each only where the spec has it) and ``motif only``
    (all three off: the exact-matrix occupancy that a perfect PWM model without context would give).
    The gap between ``oracle`` and ``motif only`` is what a model must learn beyond the motif.
    """
    variants = {"oracle": spec}
    if spec.beta:
        variants["no GC"] = dataclasses.replace(spec, beta=0.0)
    if spec.partner is not None:
        variants["no partner"] = dataclasses.replace(spec, partner=None)
    if spec.blocker is not None:
        variants["no blocker"] = dataclasses.replace(spec, blocker=None)
    variants["motif only"] = dataclasses.replace(spec, beta=0.0, partner=None, blocker=None)
    thr, gc_mean = result["thresholds"], result["gc_mean"]
    wanted = set(keep)
    chosen = [(n, per) for n, per in zip(names, result["segments"]) if n in wanted]
    if not chosen:
        raise ValueError(f"oracle_ablation: none of the segments {list(keep)[:5]} is in the result")
    y = np.concatenate([per["labels"] for _, per in chosen])
    out = {}
    for label, sp in variants.items():
        mot = _motifs(sp, motif_file)
        scores = []
        for _, per in chosen:
            ch = _Chrom(per["codes"], sp, mot, thr, gc_mean)
            pp, pm = ch.probabilities(sp, thr["theta"])
            scores.append(_labels_oracle_scan(ch, pp, pm, per["centres"])[2])
        out[label] = _metrics(y, np.concatenate(scores))
    return out


def _metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from bsp_fast.metrics import binary_metrics

    keep = y >= 0
    m = binary_metrics(y[keep], s[keep])
    return {"auroc": round(float(m["auroc"]), 4), "auprc": round(float(m["auprc"]), 4),
            "n_pos": int(m["n_pos"]), "n_neg": int(m["n_neg"])}


def write_panel_genome(out_dir: str | os.PathLike, spec: PanelSpec, background: Sequence[Segment],
                       motif_file: str | os.PathLike, test: Sequence[str], valid: Sequence[str]) -> dict[str, Any]:
    """Generate ``spec`` on ``background`` and write it into ``out_dir`` (complete or absent: built in a
    temporary directory beside it, renamed into place). Returns stats.json's contents."""
    from bsp_fast.data.synthetic import _gzip_text, _write_fasta

    t0 = time.perf_counter()
    out = Path(out_dir)
    res = generate_panel_genome(spec, background, motif_file)
    names = [s.name for s in background]
    for c in list(test) + list(valid):
        if c not in names:
            raise ValueError(f"panel genome {spec.name}: held-out segment {c!r} not in {names}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_fasta(tmp / "genome.fa", [(n, p["codes"]) for n, p in zip(names, res["segments"])])

        def lines():
            yield f"chr\tstart\tstop\t{CELL}\n"
            for n, p in zip(names, res["segments"]):
                letters = np.array(["U", "B", "A"])[np.where(p["labels"] == -1, 2, p["labels"])]
                yield "".join(f"{n}\t{a}\t{a + BIN}\t{l}\n" for a, l in zip(p["starts"].tolist(), letters.tolist()))

        tf = spec.factor.replace("/", "_")
        _gzip_text(tmp / f"{tf}.train.labels.tsv.gz", lines())
        arrays = {}
        for n, p in zip(names, res["segments"]):
            for key in ("starts", "labels", "oracle", "scan_mid", "scan_bin"):
                arrays[f"{key}:{n}"] = p[key]
        np.savez(tmp / "oracle.npz", chroms=np.array(names), **arrays)
        m = res["factor_bp"]
        with open(tmp / "bound_sites.bed", "w") as fh:
            for n, p in zip(names, res["segments"]):
                for c, pr, part in zip(p["centres"].tolist(), p["prob"].tolist(), p["partner"].tolist()):
                    fh.write(f"{n}\t{c - m // 2}\t{c - m // 2 + m}\t{spec.factor}{'+partner' if part else ''}\t"
                             f"{int(round(pr * 1000))}\t.\n")
        with open(tmp / "planted_sites.bed", "w") as fh:
            for n, rows in zip(names, res["planted"]):
                for a, b, kind, strand in sorted(rows):
                    fh.write(f"{n}\t{a}\t{b}\t{kind}\t0\t{strand}\n")
        stats: dict[str, Any] = {"spec": spec.to_json(), "motif_file": str(motif_file),
                                 "segments": [{"name": s.name, "source": s.source, "bp": int(s.codes.size)} for s in background],
                                 "test": list(test), "valid": list(valid),
                                 "thresholds": {k: round(float(v), 3) for k, v in res["thresholds"].items()},
                                 "gc_mean": round(res["gc_mean"], 4), "planted_factor_sites": res["n_plant"],
                                 "bound_sites": int(sum(p["centres"].size for p in res["segments"])),
                                 "bound_with_partner": int(sum(p["partner"].sum() for p in res["segments"])),
                                 "prevalence": round(res["prevalence"], 5)}
        sel = [k for k, n in enumerate(names) if n in set(test)]
        y = np.concatenate([res["segments"][k]["labels"] for k in sel])
        for key in ("oracle", "scan_mid", "scan_bin"):
            stats[f"test_{key}"] = _metrics(y, np.concatenate([res["segments"][k][key] for k in sel]))
        stats["test_prevalence"] = round(float((y == 1).sum() / max((y >= 0).sum(), 1)), 5)
        stats["seconds"] = round(time.perf_counter() - t0, 1)
        (tmp / "spec.json").write_text(json.dumps(spec.to_json(), indent=1) + "\n")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def read_panel_oracle(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``oracle.npz`` of a panel genome: per segment {starts, labels, oracle, scan_mid, scan_bin}."""
    with np.load(path) as z:
        out: dict[str, dict[str, np.ndarray]] = {}
        for name in z["chroms"].tolist():
            out[name] = {k: z[f"{k}:{name}"] for k in ("starts", "labels", "oracle", "scan_mid", "scan_bin")}
    return out
