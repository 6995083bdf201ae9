"""The built-in synthetic GABPA data set: a small genome with a known, sequence-only binding process.

``ensure_builtin()`` generates it on first use (deterministic, ~10 Mbp, well under a minute) and
caches it; the default ``python -m bsp_fast.train`` trains on it through the same readers as real
data (FASTA, ENCODE-DREAM label TSV), and every evaluation can compare a model with the *oracle*:
the exact log-odds of the generating process (no model can do better in expectation).

Generative process (``GENERATOR_VERSION`` names it; all numbers are :class:`BuiltinParams` fields)
-------------------------------------------------------------------------------------------------
1. Chromosomes chr1, chr2, chr3, chr4, chr5, chr6, chr8, chr11, chr21 (10.0 Mbp at ``scale=1``),
   so the default split applies: test chr1/chr8/chr21 (2.9 Mbp), valid chr11, train the rest.
2. Background: isochore-like segments (exponential lengths, mean 150 kb) whose GC content is drawn
   from the human isochore families (L1 37 %, L2 41 %, H1 46 %, H2 50 %, H3 55 %), with +-1.5 %
   noise per 2 kb block; bases i.i.d. given the local GC, then CpG depletion: outside CpG islands
   each CpG is mutated (C->T or G->A, as methylated-CpG deamination does) with probability 0.78,
   which leaves CpG observed/expected ~0.2 as in human DNA. A 10 kb N run at each chromosome start
   (telomere-like) and one internal N gap (assembly-gap-like).
3. Regulatory clusters (promoter-like CpG islands, 40 per Mbp, 0.5-1.2 kb, GC 60-70 %, no CpG
   depletion; ~3 % of the genome), preferentially in GC-rich isochores, each holding
   Poisson(3.5) GABPA sites and Poisson(2) decoy sites (ELK1, SP1, NRF1, YY1), so bound sites
   cluster along the genome; further GABPA (80 per Mbp) and decoy (160 per Mbp) sites are
   scattered through the background (enhancer-like). Overall GC ~42 %, CpG o/e ~0.34.
4. Motif instances are *sampled* from the JASPAR 2024 matrices (``bsp_fast/resources/motifs.jaspar``:
   GABPA MA0062.3, ELK1 MA0028.3, YY1 MA0095.4, SP1 MA0079.5, NRF1 MA0506.3), base by base, on a
   random strand; 30 % of the planted GABPA sites come from a flattened matrix (p ** 0.5), i.e.
   weak sites. ELK1 sites are drawn conditioned on being good ELK1 sites (ELK1 log-odds >= 10 bits).
5. Binding, a function of the final sequence only. Every position and strand is a candidate GABPA
   site; with S its GABPA MA0062.3 log-odds (bits, uniform background) and f the CpG count in the
   200 bp around the site centre divided by 16 (capped at 1; promoters are open chromatin),
   ``P(bound) = pi_max * sigmoid(alpha * (S - theta) + beta * (f - 0.5))``
   with pi_max 0.85, alpha 1.2 per bit, theta 13 bits, beta 3 -- except where the ETS core
   is a good ELK1 site (ELK1 log-odds >= 10 bits at the aligned offset): ELK1 occupies it and
   GABPA is never bound there. Candidates are bound independently. So only part of the motif
   occurrences are bound, background positions with weak motifs are sometimes bound, and the
   ELK1 look-alikes (same GGAA core, one base apart) never are.
6. Labels, ENCODE-DREAM style, bins of 200 bp every 50 bp: each bound site (centre c = site start
   + 7) gets a 100 bp conservative peak [c - 50, c + 50) and a 200 bp relaxed peak
   [c - 100, c + 100). A bin is B when a conservative peak covers at least half of it (c in
   [start + 50, start + 150]), A when only a relaxed peak does (c in [start, start + 200]), U
   otherwise. About 1 bin in 100 is B. (``labels_from_peaks(peaks_bed, ...)``, which takes the
   union of peaks, gives the same B bins except ~2 % where two overlapping peaks together, but
   neither alone, cover half a bin; the label file is the reference.)
7. Oracle: per bin, ``log P(B | sequence) - log P(U | sequence)`` (A bins are dropped from
   training and scoring, so B against U is the question), computed exactly from the per-site
   probabilities of step 5: ``log(1 - prod_central(1 - p)) - sum_relaxed log(1 - p)``.
   The window a model reads (flank 100 + bin 200 + flank 100) contains everything the oracle uses.

At the defaults (seed 20240611; ``stats.json`` has every figure): 10.0 Mbp, 199,973 bins, 1,837 B
(0.93 % of scored bins), 939 bound sites (62 % of them planted GABPA sites, 28 % of the 2,082
planted GABPA sites bound, 0 of 570 ELK1 decoys), test chromosomes 433 B / 57,153 U (0.75 %).
Oracle on the test chromosomes: auROC 0.995, auPRC 0.75. Naive models on the same bins, auPRC:
GC content of the window 0.06, CpG count 0.05, GABPA consensus word 0.37, best GABPA PWM score
in the bin (no ELK1 rule, no context) 0.57. Generation takes ~5 s on one core.

Usage::

    from bsp_fast.data import Genome, read_dream_labels, ChromSplit, eval_bins
    from bsp_fast.data.synthetic import ensure_builtin, oracle_scores
    b = ensure_builtin()                       # cached after the first call
    genome = Genome(b.fasta)
    labels = read_dream_labels(b.labels, b.cell, genome=genome)
    train, valid, test = ChromSplit().resolve(labels)
    ev = eval_bins(labels, test, 4096, chrom_order=genome)
    ceiling = oracle_scores(b, test)           # aligned with ev.labels()

Files in the cache directory: ``genome.fa`` (+ ``.fai``), ``GABPA.train.labels.tsv.gz`` (header
``chr start stop SYNTH``), ``GABPA.conservative.peaks.bed`` (the 100 bp peaks, BED6),
``GABPA.bound_sites.bed`` (the 14 bp bound sites, with their probability),
``planted_sites.bed`` (every planted instance, by factor), ``oracle.npz`` (per chromosome: bin
starts, labels, oracle log-odds; see :func:`read_oracle`), ``stats.json`` (counts, oracle and
baseline metrics per split) and ``params.json``. A directory is complete when ``stats.json``
exists (written last, then the directory is renamed into place).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bsp_fast.motif_io import Motif, read_jaspar

__all__ = [
    "BuiltinData",
    "BuiltinParams",
    "GENERATOR_VERSION",
    "ensure_builtin",
    "generate",
    "oracle_scores",
    "read_oracle",
    "motif_path",
]

_log = logging.getLogger(__name__)

GENERATOR_VERSION = "builtin-v1"
#: bumped with any change of the generator's code that changes its output, so caches regenerate
GENERATOR_REVISION = 1
CELL = "SYNTH"
TF = "GABPA"
BIN_SIZE = 200
STEP = 50
SITE_CENTER = 7  # centre offset of a 14 bp GABPA (MA0062.3) window

DEFAULT_CHROMS: tuple[tuple[str, int], ...] = (
    ("chr1", 1_400_000),
    ("chr2", 1_600_000),
    ("chr3", 1_400_000),
    ("chr4", 1_200_000),
    ("chr5", 1_100_000),
    ("chr6", 900_000),
    ("chr8", 1_000_000),
    ("chr11", 900_000),
    ("chr21", 500_000),
)

MOTIF_IDS = {"GABPA": "MA0062.3", "ELK1": "MA0028.3", "YY1": "MA0095.4", "SP1": "MA0079.5", "NRF1": "MA0506.3"}
DECOYS = ("ELK1", "SP1", "NRF1", "YY1")

# A=0 C=1 G=2 T=3 N=4
_A, _C, _G, _T, _N = 0, 1, 2, 3, 4
_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


def motif_path() -> Path:
    """The JASPAR file shipped with the package (JASPAR 2024, CC BY 4.0; see resources/README.md)."""
    return Path(__file__).resolve().parent.parent / "resources" / "motifs.jaspar"


@dataclass(frozen=True)
class BuiltinParams:
    """Every number of the generative process (see the module docstring)."""

    seed: int = 20240611
    chrom_sizes: tuple[tuple[str, int], ...] = DEFAULT_CHROMS
    scale: float = 1.0
    # background
    isochore_mean_bp: float = 150_000.0
    isochore_gc: tuple[float, ...] = (0.37, 0.41, 0.46, 0.50, 0.55)
    isochore_weight: tuple[float, ...] = (0.30, 0.30, 0.20, 0.12, 0.08)
    gc_block_bp: int = 2_000
    gc_block_sd: float = 0.015
    cpg_depletion: float = 0.78
    telomere_n_bp: int = 10_000
    gap_n_bp: int = 20_000
    # clusters and sites (rates per Mbp)
    clusters_per_mbp: float = 40.0
    island_bp: tuple[int, int] = (500, 1200)
    island_gc: tuple[float, float] = (0.60, 0.70)
    gabpa_per_cluster: float = 3.5
    decoys_per_cluster: float = 2.0
    dispersed_gabpa_per_mbp: float = 80.0
    dispersed_decoys_per_mbp: float = 160.0  # split evenly over the four decoys
    weak_fraction: float = 0.3
    weak_temperature: float = 0.5
    elk1_min_bits: float = 10.0
    # binding
    pi_max: float = 0.85
    alpha: float = 1.2
    theta: float = 13.0
    beta: float = 3.0
    cpg_window: int = 200
    cpg_full: float = 16.0
    elk1_gate_bits: float = 10.0

    def sizes(self) -> list[tuple[str, int]]:
        return [(c, max(4 * BIN_SIZE, int(round(n * self.scale)))) for c, n in self.chrom_sizes]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["generator"] = GENERATOR_VERSION
        d["revision"] = GENERATOR_REVISION
        return json.loads(json.dumps(d))  # tuples -> lists, as read back


@dataclass(frozen=True)
class BuiltinData:
    """Paths of a generated built-in data set (``cache_dir`` is its directory)."""

    fasta: Path
    labels: Path
    peaks_bed: Path
    oracle: Path
    cell: str
    cache_dir: Path
    sites_bed: Path | None = None
    stats: dict = field(default_factory=dict, compare=False, repr=False)
    tf: str = TF


# --------------------------------------------------------------------------------------------
# motifs
# --------------------------------------------------------------------------------------------


def _load_motifs() -> dict[str, Motif]:
    by_id = {m.id: m for m in read_jaspar(motif_path())}
    missing = [i for i in MOTIF_IDS.values() if i not in by_id]
    if missing:
        raise RuntimeError(f"{motif_path()}: motif(s) {missing} missing from the shipped JASPAR file")
    return {name: by_id[i] for name, i in MOTIF_IDS.items()}


def _ppm(m: Motif) -> np.ndarray:
    return m.probabilities(pseudocount=0.5)


def _pwm5(m: Motif) -> np.ndarray:
    """Log-odds in bits [L, 5] with an N column of -20 bits (a site with an N is never a site)."""
    w = np.log2(_ppm(m) / 0.25)
    return np.concatenate([w, np.full((w.shape[0], 1), -20.0)], axis=1)


def _rc_pwm5(w5: np.ndarray) -> np.ndarray:
    return np.concatenate([w5[::-1, 3::-1], w5[::-1, 4:5]], axis=1)


def _scan(codes: np.ndarray, w5: np.ndarray) -> np.ndarray:
    """score[p] = sum_k w5[k, codes[p + k]] for every full window (float64 [L - m + 1])."""
    m = w5.shape[0]
    n = codes.shape[0] - m + 1
    out = np.zeros(max(n, 0), dtype=np.float64)
    for k in range(m):
        out += w5[k][codes[k : k + n]]
    return out


def _sample_instances(rng: np.random.Generator, ppm: np.ndarray, n: int, temperature: float = 1.0) -> np.ndarray:
    p = ppm ** temperature
    p = p / p.sum(axis=1, keepdims=True)
    cum = np.cumsum(p, axis=1)[:, :3]
    u = rng.random((n, p.shape[0]))
    return (u[:, :, None] > cum[None, :, :]).sum(axis=2).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# one chromosome
# --------------------------------------------------------------------------------------------


def _chromosome(rng: np.random.Generator, length: int, p: BuiltinParams, motifs: dict[str, Motif]):
    """(codes uint8 [length], planted sites list of (start, end, factor, strand, weak))."""
    # isochores and per-block GC
    seg_lengths = []
    total = 0
    while total < length:
        seg = max(20_000, int(rng.exponential(p.isochore_mean_bp)))
        seg_lengths.append(seg)
        total += seg
    fam = rng.choice(len(p.isochore_gc), size=len(seg_lengths), p=np.asarray(p.isochore_weight) / sum(p.isochore_weight))
    seg_gc = np.asarray(p.isochore_gc)[fam] + rng.normal(0, 0.01, len(seg_lengths))
    gc = np.repeat(seg_gc, seg_lengths)[:length]
    n_blocks = -(-length // p.gc_block_bp)
    gc = gc + np.repeat(rng.normal(0, p.gc_block_sd, n_blocks), p.gc_block_bp)[:length]

    # clusters (CpG islands), preferring GC-rich isochores
    mbp = length / 1e6
    n_try = rng.poisson(p.clusters_per_mbp * mbp * 2.5)
    centres = rng.integers(0, length, size=n_try)
    accept = rng.random(n_try) < np.exp(12.0 * (gc[centres] - 0.55)).clip(max=1.0)
    centres = np.sort(centres[accept][: rng.poisson(p.clusters_per_mbp * mbp)])
    island = np.zeros(length, dtype=bool)
    islands = []
    for c in centres:
        half = int(rng.integers(p.island_bp[0], p.island_bp[1] + 1)) // 2
        a, b = max(0, int(c) - half), min(length, int(c) + half)
        island[a:b] = True
        gc[a:b] = rng.uniform(*p.island_gc)
        islands.append((a, b))
    gc = gc.clip(0.2, 0.8)

    # bases given the local GC, then CpG depletion outside islands
    strong = rng.random(length) < gc
    coin = rng.random(length) < 0.5
    codes = np.where(strong, np.where(coin, _C, _G), np.where(coin, _A, _T)).astype(np.uint8)
    del strong, coin
    cg = (codes[:-1] == _C) & (codes[1:] == _G) & ~island[:-1] & ~island[1:]
    hit = np.flatnonzero(cg & (rng.random(length - 1) < p.cpg_depletion))
    to_t = rng.random(hit.size) < 0.5
    codes[hit[to_t]] = _T
    codes[hit[~to_t] + 1] = _A

    # motif instances
    ppms = {name: _ppm(m) for name, m in motifs.items()}
    elk1_w = _pwm5(motifs["ELK1"])[:, :4]
    planted: list[tuple[int, int, str, str, bool]] = []

    def draw(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        weak = np.zeros(n, dtype=bool)
        if name == "GABPA":
            weak = rng.random(n) < p.weak_fraction
            inst = np.empty((n, ppms[name].shape[0]), dtype=np.uint8)
            inst[~weak] = _sample_instances(rng, ppms[name], int((~weak).sum()))
            inst[weak] = _sample_instances(rng, ppms[name], int(weak.sum()), p.weak_temperature)
            return inst, weak
        inst = _sample_instances(rng, ppms[name], n)
        if name == "ELK1":  # conditioned on being a good ELK1 site
            for _ in range(100):
                bad = elk1_w[np.arange(inst.shape[1])[None, :], inst].sum(axis=1) < p.elk1_min_bits
                if not bad.any():
                    break
                inst[bad] = _sample_instances(rng, ppms[name], int(bad.sum()))
        return inst, weak

    def plant(name: str, starts: np.ndarray) -> None:
        if starts.size == 0:
            return
        inst, weak = draw(name, starts.size)
        m = inst.shape[1]
        strands = rng.random(starts.size) < 0.5
        for s, seq, minus, w in zip(starts, inst, strands, weak):
            s = int(min(max(0, s), length - m))
            codes[s : s + m] = (3 - seq[::-1]) if minus else seq
            planted.append((s, s + m, name, "-" if minus else "+", bool(w)))

    for a, b in islands:
        n_g = rng.poisson(p.gabpa_per_cluster)
        n_d = rng.poisson(p.decoys_per_cluster)
        plant("GABPA", rng.integers(a, max(a + 1, b - 14), size=n_g))
        names = rng.choice(DECOYS, size=n_d)
        for name in DECOYS:
            k = int((names == name).sum())
            plant(name, rng.integers(a, max(a + 1, b - 14), size=k))
    plant("GABPA", rng.integers(0, length, size=rng.poisson(p.dispersed_gabpa_per_mbp * mbp)))
    for name in DECOYS:
        plant(name, rng.integers(0, length, size=rng.poisson(p.dispersed_decoys_per_mbp * mbp / len(DECOYS))))

    # N runs: telomere-like start and one assembly-gap-like run
    tel = min(p.telomere_n_bp, length // 50)
    codes[:tel] = _N
    gap = min(p.gap_n_bp, length // 50)
    if gap:
        g0 = int(rng.integers(length // 4, 3 * length // 4))
        codes[g0 : g0 + gap] = _N
    return codes, planted


def _site_probabilities(codes: np.ndarray, p: BuiltinParams, motifs: dict[str, Motif]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pi_plus, pi_minus, S_plus, S_minus) per candidate start p (site centre p + 7)."""
    wg = _pwm5(motifs["GABPA"])
    we = _pwm5(motifs["ELK1"])
    m = wg.shape[0]
    s_plus = _scan(codes, wg)
    s_minus = _scan(codes, _rc_pwm5(wg))
    n = s_plus.size
    # ELK1 at the offset aligned with each GABPA orientation (see the module docstring)
    e_rc = _scan(codes, _rc_pwm5(we))  # ELK1 on the minus strand, starts q
    e_fw = _scan(codes, we)
    gate_plus = np.zeros(n, dtype=bool)
    gate_minus = np.zeros(n, dtype=bool)
    k = min(n, e_rc.size - 3)
    gate_plus[:k] = e_rc[3 : 3 + k] >= p.elk1_gate_bits
    k = min(n, e_fw.size - 2)
    gate_minus[:k] = e_fw[2 : 2 + k] >= p.elk1_gate_bits
    # CpG density around the centre
    # CpG dinucleotides lying wholly inside [c - half, c + half), i.e. starting in [c - half, c + half - 1)
    is_cg = (codes[:-1] == _C) & (codes[1:] == _G)
    cs = np.concatenate([[0], np.cumsum(is_cg, dtype=np.int64)])  # cs[k] = CpGs starting before k
    centre = np.arange(n) + SITE_CENTER
    half = p.cpg_window // 2
    lo = np.clip(centre - half, 0, is_cg.size)
    hi = np.clip(centre + half - 1, 0, is_cg.size)
    f = np.minimum((cs[hi] - cs[lo]) / p.cpg_full, 1.0)
    ctx = p.beta * (f - 0.5)

    def pi(s: np.ndarray, gate: np.ndarray) -> np.ndarray:
        out = p.pi_max / (1.0 + np.exp(-(p.alpha * (s - p.theta) + ctx)))
        out[gate] = 0.0
        return out

    del m
    return pi(s_plus, gate_plus), pi(s_minus, gate_minus), s_plus, s_minus


def _bins(length: int) -> np.ndarray:
    n = (length - BIN_SIZE) // STEP + 1
    return np.arange(max(n, 0), dtype=np.int64) * STEP


def _window_sum(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of the per-centre values over centres in [lo, hi] (inclusive); cum has a leading 0."""
    n = cum.size - 1
    lo = np.clip(lo, 0, n)
    hi = np.clip(hi + 1, 0, n)
    return cum[hi] - cum[lo]


def _labels_and_oracle(length: int, pi_plus: np.ndarray, pi_minus: np.ndarray, bound_centres: np.ndarray):
    starts = _bins(length)
    # per centre: sum over both strands of log(1 - pi)
    lq = np.zeros(length, dtype=np.float64)
    n = pi_plus.size
    lq[SITE_CENTER : SITE_CENTER + n] = np.log1p(-pi_plus) + np.log1p(-pi_minus)
    cum = np.concatenate([[0.0], np.cumsum(lq)])
    central = _window_sum(cum, starts + 50, starts + 150)
    relaxed = _window_sum(cum, starts, starts + 200)
    with np.errstate(divide="ignore"):
        log_pb = np.log(-np.expm1(central))
    oracle = np.clip(log_pb - relaxed, -50.0, 50.0).astype(np.float32)
    # labels from the drawn bound sites
    cnt = np.zeros(length, dtype=np.int32)
    np.add.at(cnt, bound_centres, 1)
    ccum = np.concatenate([[0], np.cumsum(cnt)])
    b = _window_sum(ccum, starts + 50, starts + 150) > 0
    a = _window_sum(ccum, starts, starts + 200) > 0
    labels = np.where(b, 1, np.where(a, -1, 0)).astype(np.int8)
    return starts, labels, oracle


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _write_fasta(path: Path, chroms: list[tuple[str, np.ndarray]], width: int = 60) -> None:
    fai = []
    offset = 0
    with open(path, "wb") as fh:
        for name, codes in chroms:
            header = f">{name}\n".encode()
            fh.write(header)
            offset += len(header)
            text = _LETTERS[codes]
            n = text.size
            rows = -(-n // width)
            buf = np.full((rows, width + 1), ord("\n"), dtype=np.uint8)
            padded = np.full(rows * width, ord("\n"), dtype=np.uint8)
            padded[:n] = text
            buf[:, :width] = padded.reshape(rows, width)
            out = buf.reshape(-1)
            last = n - (rows - 1) * width  # bases on the last line
            out = out[: (rows - 1) * (width + 1) + last + 1]
            out[-1] = ord("\n")
            fh.write(out.tobytes())
            fai.append(f"{name}\t{n}\t{offset}\t{width}\t{width + 1}\n")
            offset += out.size
    Path(str(path) + ".fai").write_text("".join(fai))


def _gzip_text(path: Path, chunks) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
        for chunk in chunks:
            gz.write(chunk.encode())


def _label_lines(name: str, starts: np.ndarray, labels: np.ndarray):
    letters = np.array(["U", "B", "A"])[np.where(labels == -1, 2, labels)]
    for i in range(0, starts.size, 100_000):
        s = starts[i : i + 100_000]
        yield "".join(f"{name}\t{a}\t{a + BIN_SIZE}\t{l}\n" for a, l in zip(s.tolist(), letters[i : i + 100_000].tolist()))


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------


def _metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from bsp_fast.metrics import binary_metrics

    keep = y >= 0
    if not keep.any() or y[keep].min() == y[keep].max():
        return {}
    m = binary_metrics(y[keep], score[keep])
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


def generate(out_dir: str | os.PathLike, params: BuiltinParams | None = None) -> dict[str, Any]:
    """Write the data set into ``out_dir`` (created; stats.json last) and return its stats."""
    p = params or BuiltinParams()
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    motifs = _load_motifs()
    root = np.random.SeedSequence(p.seed)
    sizes = p.sizes()
    if len({c for c, _ in sizes}) != len(sizes):
        raise ValueError(f"duplicate chromosome names in {sizes}")
    seqs: list[tuple[str, np.ndarray]] = []
    label_chunks: list[tuple[str, np.ndarray, np.ndarray]] = []
    oracle_arrays: dict[str, np.ndarray] = {}
    bound_rows: list[str] = []
    peak_rows: list[str] = []
    planted_rows: list[str] = []
    baselines: dict[str, dict[str, np.ndarray]] = {}
    planted_bound = {name: [0, 0] for name in MOTIF_IDS}
    weak_bound = [0, 0]
    bound_bits: list[np.ndarray] = []
    clustered = [0, 0, 0]  # bound sites with a neighbour within 2 kb, bound sites, bp
    for (name, length), child in zip(sizes, root.spawn(len(sizes))):
        rng = np.random.default_rng(child)
        codes, planted = _chromosome(rng, length, p, motifs)
        pi_plus, pi_minus, s_plus, s_minus = _site_probabilities(codes, p, motifs)
        best = np.maximum(s_plus, s_minus)
        bound_plus = rng.random(pi_plus.size) < pi_plus
        bound_minus = rng.random(pi_minus.size) < pi_minus
        sites = np.concatenate([np.flatnonzero(bound_plus), np.flatnonzero(bound_minus)])
        strands = np.concatenate([np.full(int(bound_plus.sum()), "+"), np.full(int(bound_minus.sum()), "-")])
        prob = np.concatenate([pi_plus[bound_plus], pi_minus[bound_minus]])
        bits = np.concatenate([s_plus[bound_plus], s_minus[bound_minus]])
        order = np.argsort(sites, kind="stable")
        sites, strands, prob, bits = sites[order], strands[order], prob[order], bits[order]
        bound_bits.append(bits)
        if sites.size > 1:  # clustering: bound sites with another one within 2 kb
            gaps = np.diff(sites)
            near = np.zeros(sites.size, dtype=bool)
            near[1:] |= gaps <= 2000
            near[:-1] |= gaps <= 2000
            clustered[0] += int(near.sum())
        clustered[1] += int(sites.size)
        clustered[2] += length
        starts, labels, oracle = _labels_and_oracle(length, pi_plus, pi_minus, sites + SITE_CENTER)
        seqs.append((name, codes))
        label_chunks.append((name, starts, labels))
        oracle_arrays[f"starts:{name}"] = starts
        oracle_arrays[f"labels:{name}"] = labels
        oracle_arrays[f"oracle:{name}"] = oracle
        for s, st, pr, bt in zip(sites.tolist(), strands.tolist(), prob.tolist(), bits.tolist()):
            c = s + SITE_CENTER
            bound_rows.append(f"{name}\t{s}\t{s + 14}\t{TF}:{bt:.1f}bits\t{int(round(pr * 1000))}\t{st}\n")
            peak_rows.append(f"{name}\t{max(0, c - 50)}\t{min(length, c + 50)}\t{TF}_peak\t{int(round(pr * 1000))}\t{st}\n")
        # which planted instances ended up bound (any bound site overlapping the instance)
        bound_mask = np.zeros(length + 1, dtype=np.int32)
        np.add.at(bound_mask, sites + SITE_CENTER, 1)
        bcum = np.concatenate([[0], np.cumsum(bound_mask)])
        for a, b, factor, strand, weak in planted:
            hit = bcum[min(b, length)] - bcum[a] > 0
            planted_bound[factor][0] += int(hit)
            planted_bound[factor][1] += 1
            if weak:
                weak_bound[0] += int(hit)
                weak_bound[1] += 1
            planted_rows.append(f"{name}\t{a}\t{b}\t{factor}{'_weak' if weak else ''}\t{int(hit)}\t{strand}\n")
        baselines[name] = _baselines(codes, starts, best)

    # files
    _write_fasta(out / "genome.fa", seqs)
    _gzip_text(
        out / f"{TF}.train.labels.tsv.gz",
        [f"chr\tstart\tstop\t{CELL}\n"] + [line for n, s, l in label_chunks for line in _label_lines(n, s, l)],
    )
    (out / f"{TF}.bound_sites.bed").write_text("".join(bound_rows))
    (out / f"{TF}.conservative.peaks.bed").write_text("".join(sorted_bed(peak_rows)))
    (out / "planted_sites.bed").write_text("".join(sorted_bed(planted_rows)))
    np.savez(out / "oracle.npz", chroms=np.array([c for c, _ in sizes]), **oracle_arrays)
    stats = _stats(p, sizes, label_chunks, oracle_arrays, baselines, planted_bound, weak_bound, len(bound_rows))
    allbits = np.concatenate(bound_bits) if bound_bits else np.zeros(0)
    stats["bound_site_bits"] = {
        "quantiles_5_25_50_75_95": [round(float(v), 2) for v in np.percentile(allbits, [5, 25, 50, 75, 95])] if allbits.size else [],
        "max_possible": round(float(_pwm5(motifs["GABPA"])[:, :4].max(axis=1).sum()), 2),
        "fraction_below_theta_minus_2": round(float((allbits < p.theta - 2).mean()), 3) if allbits.size else 0.0,
    }
    density = clustered[1] / max(clustered[2], 1)
    stats["bound_sites_with_neighbour_within_2kb"] = {
        "observed": round(clustered[0] / max(clustered[1], 1), 3),
        "if_uniform": round(float(1 - np.exp(-2 * 2000 * density)), 3),
    }
    stats["generation_seconds"] = round(time.perf_counter() - t0, 2)
    (out / "params.json").write_text(json.dumps(p.to_json(), indent=1) + "\n")
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    return stats


def sorted_bed(rows: list[str]) -> list[str]:
    """BED rows sorted by start within each chromosome (chromosomes stay in the given order)."""
    out: list[str] = []
    by_chrom: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        c, s, _ = r.split("\t", 2)
        by_chrom.setdefault(c, []).append((int(s), r))
    for c, items in by_chrom.items():
        out.extend(r for _, r in sorted(items, key=lambda t: t[0]))
    return out


def _baselines(codes: np.ndarray, starts: np.ndarray, best: np.ndarray) -> dict[str, np.ndarray]:
    """Scores of naive models on each bin, for the fairness check in stats.json.

    gc: GC fraction of the 400 bp window a model reads; cpg: CpG count in it;
    consensus: number of GABPA core words (CAGGAAGT / ACTTCCTG) centred in the bin's central area;
    pwm_max: best GABPA log-odds with centre in [start, start + 200] (no ELK1 rule, no context).
    """
    L = codes.size
    gcum = np.concatenate([[0], np.cumsum((codes == _C) | (codes == _G))])
    cg = np.concatenate([[0], np.cumsum((codes[:-1] == _C) & (codes[1:] == _G))])
    lo = np.clip(starts - 100, 0, L)
    hi = np.clip(starts + 300, 0, L)
    gc = (gcum[hi] - gcum[lo]) / np.maximum(hi - lo, 1)
    cpg = (cg[np.clip(hi - 1, 0, L - 1)] - cg[np.clip(lo, 0, L - 1)]).astype(np.float64)
    word = np.frombuffer(b"CAGGAAGT", dtype=np.uint8)
    lut = np.full(256, 4, dtype=np.uint8)
    for i, ch in enumerate(b"ACGT"):
        lut[ch] = i
    w = lut[word]
    wrc = 3 - w[::-1]
    n = L - w.size + 1
    fw = np.ones(n, dtype=bool)
    rv = np.ones(n, dtype=bool)
    for k in range(w.size):
        fw &= codes[k : k + n] == w[k]
        rv &= codes[k : k + n] == wrc[k]
    hits = np.zeros(L + 1, dtype=np.int64)
    hits[4 : 4 + n] = fw.astype(np.int64) + rv
    hcum = np.concatenate([[0], np.cumsum(hits)])
    consensus = _window_sum(hcum, starts + 50, starts + 150).astype(np.float64)
    # best pwm with centre in the bin (sliding max over [start, start + 200])
    best_c = np.full(L + 1, -60.0)
    best_c[SITE_CENTER : SITE_CENTER + best.size] = best
    pwm_max = np.empty(starts.size)
    win = np.lib.stride_tricks.sliding_window_view(best_c, 201)
    idx = np.clip(starts, 0, win.shape[0] - 1)
    pwm_max[:] = win[idx].max(axis=1)
    return {"gc": gc, "cpg": cpg, "consensus": consensus, "pwm_max": pwm_max}


def _stats(p, sizes, label_chunks, oracle_arrays, baselines, planted_bound, weak_bound, n_bound) -> dict[str, Any]:
    from bsp_fast.data.sampler import ChromSplit

    names = [c for c, _ in sizes]
    try:
        train, valid, test = ChromSplit().resolve(names)
    except ValueError:
        train, valid, test = tuple(names), (), ()
    labels = {n: l for n, _, l in label_chunks}
    splits: dict[str, Any] = {}
    for split, chroms in (("train", train), ("valid", valid), ("test", test), ("all", tuple(names))):
        if not chroms:
            continue
        y = np.concatenate([labels[c] for c in chroms])
        o = np.concatenate([oracle_arrays[f"oracle:{c}"] for c in chroms])
        n_b, n_u, n_a = int((y == 1).sum()), int((y == 0).sum()), int((y == -1).sum())
        entry: dict[str, Any] = {
            "chroms": list(chroms),
            "bp": int(sum(dict(sizes)[c] for c in chroms)),
            "bins": int(y.size), "B": n_b, "U": n_u, "A": n_a,
            "prevalence": round(n_b / max(n_b + n_u, 1), 5),
            "oracle": _metrics(y, o.astype(np.float64)),
        }
        if split == "test":
            entry["baselines"] = {
                k: _metrics(y, np.concatenate([baselines[c][k] for c in chroms])) for k in ("gc", "cpg", "consensus", "pwm_max")
            }
        splits[split] = entry
    return {
        "generator": GENERATOR_VERSION,
        "tf": TF,
        "cell": CELL,
        "bin_size": BIN_SIZE,
        "step": STEP,
        "total_bp": int(sum(n for _, n in sizes)),
        "bound_sites": n_bound,
        "planted_bound_fraction": {k: [v[0], v[1], round(v[0] / max(v[1], 1), 3)] for k, v in planted_bound.items()},
        "weak_gabpa_bound": [weak_bound[0], weak_bound[1]],
        "splits": splits,
    }


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------


def _default_root() -> Path:
    env = os.environ.get("BSP_FAST_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bsp_fast"


def _params_from_options(size_options: dict[str, Any]) -> BuiltinParams:
    allowed = {f.name for f in dataclasses.fields(BuiltinParams)}
    unknown = sorted(set(size_options) - allowed)
    if unknown:
        raise TypeError(f"ensure_builtin: unknown option(s) {unknown}; known: {sorted(allowed)}")
    opts = dict(size_options)
    if "chrom_sizes" in opts:
        cs = opts["chrom_sizes"]
        items = cs.items() if isinstance(cs, dict) else cs
        opts["chrom_sizes"] = tuple((str(c), int(n)) for c, n in items)
    for k, v in list(opts.items()):
        if isinstance(v, list):
            opts[k] = tuple(v)
    return BuiltinParams(**opts)


def _dir_name(p: BuiltinParams) -> str:
    if p == BuiltinParams():
        return GENERATOR_VERSION
    digest = hashlib.sha256(json.dumps(p.to_json(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{GENERATOR_VERSION}-{digest}"


def _load(d: Path, p: BuiltinParams) -> BuiltinData | None:
    try:
        stats = json.loads((d / "stats.json").read_text())
        saved = json.loads((d / "params.json").read_text())
    except (OSError, ValueError):
        return None
    if saved != p.to_json():
        return None
    paths = dict(
        fasta=d / "genome.fa",
        labels=d / f"{TF}.train.labels.tsv.gz",
        peaks_bed=d / f"{TF}.conservative.peaks.bed",
        oracle=d / "oracle.npz",
    )
    if not all(v.exists() for v in paths.values()):
        return None
    return BuiltinData(cell=CELL, cache_dir=d, sites_bed=d / f"{TF}.bound_sites.bed", stats=stats, **paths)


def ensure_builtin(cache_dir: str | os.PathLike | None = None, **size_options: Any) -> BuiltinData:
    """The built-in data set, generated on first use and cached.

    ``cache_dir`` is the cache root (default ``$BSP_FAST_CACHE`` or ``~/.cache/bsp_fast``); the data
    set lives in ``<root>/builtin-v1`` (``<root>/builtin-v1-<hash>`` for non-default options).
    ``size_options`` override :class:`BuiltinParams` fields, e.g. ``scale=0.1`` (a 1 Mbp genome for
    tests) or ``chrom_sizes={"chr1": 200_000, ...}``, ``seed=...``. Generation writes into a
    temporary directory beside the target and renames it into place, so an interrupted run
    leaves nothing that loads as valid, and concurrent processes (e.g. torchrun ranks) agree.
    """
    p = _params_from_options(size_options)
    root = Path(cache_dir).expanduser() if cache_dir is not None else _default_root()
    target = root / _dir_name(p)
    found = _load(target, p)
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
    try:
        _log.info("generating the built-in data set into %s (once)", target)
        stats = generate(tmp, p)
        _log.info("built-in data set ready in %.1f s", stats["generation_seconds"])
        if target.exists():  # stale (other parameters / generator) or written meanwhile by another process
            found = _load(target, p)
            if found is not None:
                return found
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=root))
            try:
                os.replace(target, trash / "old")
            except FileNotFoundError:  # another process moved it first
                pass
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process renamed its copy into place first
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    found = _load(target, p)
    if found is None:
        raise RuntimeError(f"{target}: the built-in data set could not be generated (incomplete directory)")
    return found


# --------------------------------------------------------------------------------------------
# oracle
# --------------------------------------------------------------------------------------------


def read_oracle(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{chrom: (bin starts int64, labels int8 1/0/-1, oracle log-odds float32)}`` in file order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no oracle file")
    with np.load(path, allow_pickle=False) as z:
        chroms = [str(c) for c in z["chroms"]]
        return {c: (z[f"starts:{c}"], z[f"labels:{c}"], z[f"oracle:{c}"]) for c in chroms}


def oracle_scores(builtin: BuiltinData | str | os.PathLike, chroms: Sequence[str], include_ambiguous: bool = False) -> np.ndarray:
    """Oracle log-odds (float32) of every non-ambiguous bin of ``chroms``, in :func:`eval_bins` order.

    ``eval_bins(read_dream_labels(b.labels, b.cell), chroms, n)`` and ``oracle_scores(b, chroms)``
    line up bin for bin (chromosomes in the given order, bins in genome order, A bins dropped).
    ``builtin`` is a :class:`BuiltinData` or the path of an ``oracle.npz``.
    """
    path = builtin.oracle if isinstance(builtin, BuiltinData) else Path(builtin)
    table = read_oracle(path)
    if isinstance(chroms, str):
        chroms = [chroms]
    missing = [c for c in chroms if c not in table]
    if missing:
        raise ValueError(f"{path}: no oracle for chromosome(s) {missing}; available: {list(table)}")
    parts = []
    for c in chroms:
        _, labels, scores = table[c]
        parts.append(scores if include_ambiguous else scores[labels >= 0])
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
