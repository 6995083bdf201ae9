"""python -m bsp_fast.variants on the built-in genome with a small trained model (~30 s in all).

Thresholds of the effect test, measured first (cnn, 16 filters of 15 bp, 20 + 201 + 20 bp, 1500 steps
of 64 on the built-in genome at scale 0.2, one thread): SNVs that break the GGAA core of planted
GABPA sites that are bound: mean logit_diff -3.4 (1200 steps: -1.7); of planted sites that are not
bound: -1.9; SNVs >= 600 bp from any planted site: mean +0.025 (1200 steps: -0.006), |d| <= 2.4.
The test asks for < -1.0 and |mean| < 0.15.
"""

from __future__ import annotations

import csv
import gzip
import math
import types

import numpy as np
import pytest

cyvcf2 = pytest.importorskip("cyvcf2")

from bsp_fast import train, variants  # noqa: E402
from bsp_fast.variants import allele_windows, encode_allele  # noqa: E402

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
COMP = str.maketrans("ACGTN", "TGCAN")


def rc(s: str) -> str:
    return s.translate(COMP)[::-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    from bsp_fast.data import Genome
    from bsp_fast.data.synthetic import ensure_builtin

    torch.set_num_threads(1)
    b = ensure_builtin(tmp_path_factory.getbasetemp() / "bsp_fast_builtin", scale=0.2)
    cache = str(tmp_path_factory.getbasetemp() / "bsp_fast_genomes")
    out = tmp_path_factory.mktemp("variants_run")
    # an odd window (20 + 201 + 20 bp): an SNV sits exactly in its middle, so both strands see the same window
    rc_ = train.main(["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", cache,
                      "--model", "cnn", "--region", "201", "--flank", "20", "--filters", "16", "--kernel-size", "15",
                      "--steps", "1500", "--batch-size", "64", "--lr", "3e-3", "--eval-every", "1500",
                      "--threads", "1", "--no-progress", "--out", str(out)])
    assert rc_ == 0
    genome = Genome(b.fasta, cache_dir=cache)
    return types.SimpleNamespace(b=b, cache=cache, ckpt=str(out / "best.pt"), genome=genome, fa=str(b.fasta))


def _write_vcf(path, rows, header=HEADER):
    text = header + "".join("\t".join(str(x) for x in r) + "\t.\t.\t.\n" for r in rows)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _run(run, vcf, out, *extra):
    return variants.main(["--checkpoint", run.ckpt, "--genome", run.fa, "--cache-dir", run.cache, "--vcf", str(vcf),
                          "--out", str(out), "--no-progress", "--threads", "1", *extra])


def _table(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _core_and_far(run, n_far=200):
    g = run.genome
    planted = [line.split("\t") for line in (run.b.cache_dir / "planted_sites.bed").read_text().splitlines()]
    core, far = [], []
    for c, a, b, factor, hit, _ in planted:
        if factor != "GABPA":
            continue
        s = g.sequence(c, int(a), int(b))
        k, off = s.find("GGAA"), 1  # the core's second G (its complement on the other strand: the first C of TTCC)
        if k < 0:
            k, off = s.find("TTCC"), 2
        if k < 0:
            continue
        p = int(a) + k + off
        ref = g.sequence(c, p, p + 1)
        core.append((c, p + 1, "core" + hit, ref, {"G": "T", "C": "A"}[ref]))
    rng = np.random.default_rng(0)
    sizes = dict(g.chromosomes)
    centres: dict[str, list[int]] = {}
    for c, a, b, *_ in planted:
        centres.setdefault(c, []).append((int(a) + int(b)) // 2)
    while len(far) < n_far:
        c = str(rng.choice(list(sizes)))
        p = int(rng.integers(12_000, sizes[c] - 2_000))
        if any(abs(p - x) < 600 for x in centres.get(c, [])):
            continue
        ref = g.sequence(c, p, p + 1)
        if ref == "N":
            continue
        far.append((c, p + 1, "far", ref, "ACGT"[("ACGT".index(ref) + 1) % 4]))
    order = {n: i for i, n in enumerate(g.names)}
    return sorted(core + far, key=lambda r: (order[r[0]], r[1]))


def test_core_breaking_snvs_score_negative_far_ones_near_zero(run, tmp_path, capsys):
    rows = _core_and_far(run)
    vcf = _write_vcf(tmp_path / "v.vcf", rows)
    out = tmp_path / "effects.tsv.gz"
    assert _run(run, vcf, out, "--vcf-out", str(tmp_path / "annotated.vcf.gz")) == 0
    err = capsys.readouterr().err
    assert "scored" in err and "ref_mismatch 0" in err
    t = _table(out)
    assert list(t[0]) == list(variants.COLUMNS)
    assert len(t) == len(rows) and all(r["flag"] == "" for r in t)
    d = {tag: np.array([float(r["logit_diff"]) for r in t if r["id"] == tag]) for tag in ("core1", "far")}
    assert d["core1"].size >= 30
    assert d["core1"].mean() < -1.0, d["core1"].mean()
    assert abs(d["far"].mean()) < 0.15, d["far"].mean()
    for r in t[:20]:  # the columns agree with each other
        pr, pa, ld, l2 = (float(r[k]) for k in ("ref_prob", "alt_prob", "logit_diff", "log2_odds_ratio"))
        logit = lambda p: math.log(p / (1 - p))  # noqa: E731
        assert ld == pytest.approx(logit(pa) - logit(pr), abs=1e-3)
        assert l2 == pytest.approx(ld / math.log(2), rel=1e-4, abs=1e-6)
    # --vcf-out: the same figures as INFO fields
    got = [(v.POS, v.INFO.get("BSP_DIFF"), v.INFO.get("BSP_REF")) for v in cyvcf2.VCF(str(tmp_path / "annotated.vcf.gz"))]
    assert [g[0] for g in got] == [r[1] for r in rows]
    assert np.allclose([g[1] for g in got], [float(r["logit_diff"]) for r in t], atol=1e-4)
    assert np.allclose([g[2] for g in got], [float(r["ref_prob"]) for r in t], atol=1e-5)
    # BCF: written by --vcf-out, read by --vcf, the same table
    bcf = tmp_path / "annotated.bcf"
    assert _run(run, tmp_path / "annotated.vcf.gz", tmp_path / "again.tsv", "--vcf-out", str(bcf)) == 0
    assert _run(run, bcf, tmp_path / "from_bcf.tsv") == 0
    assert _table(tmp_path / "from_bcf.tsv") == _table(tmp_path / "again.tsv")
    assert [(r["pos"], r["logit_diff"]) for r in _table(tmp_path / "again.tsv")] == [(r["pos"], r["logit_diff"]) for r in t]


def test_reverse_complemented_genome_gives_the_same_effect(run, tmp_path):
    g = run.genome
    chrom = "chr21"
    seq = g.sequence(chrom, 0, dict(g.chromosomes)[chrom])
    n = len(seq)
    fa = tmp_path / "rc.fa"
    fa.write_text(f">{chrom}\n" + "\n".join(rc(seq)[i:i + 60] for i in range(0, n, 60)) + "\n")
    fwd, rev = [], []
    rng = np.random.default_rng(1)
    for p in sorted(rng.choice(np.arange(12_000, n - 1_000), size=40, replace=False).tolist()):
        ref = seq[p]
        if ref == "N":
            continue
        alt = "ACGT"[("ACGT".index(ref) + 2) % 4]
        fwd.append((chrom, p + 1, "snv", ref, alt))
        rev.append((chrom, n - p, "snv", rc(ref), rc(alt)))
        if p % 3 == 0:  # an insertion with odd-length alleles (REF 1 bp, ALT 3 bp): exactly centred too
            fwd.append((chrom, p + 1, "ins", ref, ref + "GA"))
            rev.append((chrom, n - p, "ins", rc(ref), rc(ref + "GA")))
    fwd_v = _write_vcf(tmp_path / "f.vcf", fwd)
    rev_v = _write_vcf(tmp_path / "r.vcf", sorted(rev, key=lambda r: r[1]))
    assert _run(run, fwd_v, tmp_path / "f.tsv") == 0
    assert variants.main(["--checkpoint", run.ckpt, "--genome", str(fa), "--cache-dir", run.cache, "--vcf", str(rev_v),
                          "--out", str(tmp_path / "r.tsv"), "--no-progress"]) == 0
    a = {(r["id"], int(r["pos"])): float(r["logit_diff"]) for r in _table(tmp_path / "f.tsv")}
    b = {(r["id"], n + 1 - int(r["pos"])): float(r["logit_diff"]) for r in _table(tmp_path / "r.tsv")}
    assert a.keys() == b.keys() and len(a) >= 40
    x = np.array([a[k] for k in sorted(a)])
    y = np.array([b[k] for k in sorted(a)])
    assert np.abs(x).max() > 0.01  # not trivially zero
    assert np.allclose(x, y, atol=1e-4), np.abs(x - y).max()


def _reference_window(seq: str, p: int, ref: str, alt: str, length: int) -> str:
    """Plain reference: apply ALT to the chromosome string, centre the allele, N beyond the ends."""
    mutated = seq[:p] + alt + seq[p + len(ref):]
    pad = "N" * length
    full = pad + mutated + pad
    lf = (length - len(alt)) // 2
    start = len(pad) + p - lf
    return full[start:start + length]


@pytest.mark.parametrize("length", [240, 241])
def test_allele_windows_match_a_plain_reference(run, length):
    g = run.genome
    chrom = "chr21"
    size = dict(g.chromosomes)[chrom]
    seq = g.sequence(chrom, 0, size)
    rng = np.random.default_rng(2)
    cases = []
    for p in [0, 3, 50, size - 1, size - 4] + rng.integers(100, size - 100, size=30).tolist():
        for alt_len, ref_len in ((1, 1), (3, 3), (1, 4), (7, 1), (1, 51), (51, 1), (2, 1), (1, 2)):
            ref = seq[p:p + ref_len]
            if len(ref) < ref_len:
                continue
            alt = "".join(rng.choice(list("ACGT"), size=alt_len))
            cases.append((p, ref, alt))
    m = length // 2 + 1
    ids = g.chrom_ids(chrom, len(cases))
    p0 = np.array([c[0] for c in cases])
    left = g.codes(ids, p0 - m, m)
    right = g.codes(ids, p0 + np.array([len(c[1]) for c in cases]), m)
    codes = allele_windows(left, right, [encode_allele(c[2]) for c in cases], length)
    assert codes.shape == (len(cases), length)
    got = ["".join("ACGTN"[x] for x in row) for row in codes]
    for (p, ref, alt), w in zip(cases, got):
        assert len(w) == length
        assert w == _reference_window(seq, p, ref, alt, length), (p, ref, alt)
    # REF applied: the plain genome window centred on the REF allele
    keep = [i for i, c in enumerate(cases) if encode_allele(c[1]) is not None]  # not the N runs
    assert len(keep) > 100
    codes = allele_windows(left[keep], right[keep], [encode_allele(cases[i][1]) for i in keep], length)
    for (p, ref, _), row in zip([cases[i] for i in keep], codes):
        assert "".join("ACGTN"[x] for x in row) == _reference_window(seq, p, ref, ref, length)


def test_flags_multiallelic_aliases(run, tmp_path, capsys):
    g = run.genome
    s = g.sequence("chr21", 20_000, 20_200)
    base = lambda i: s[i]  # noqa: E731
    other = lambda b: "ACGT"[("ACGT".index(b) + 1) % 4]  # noqa: E731
    P = 20_001  # 1-based POS of s[0]
    rows = [
        ("chr21", P, "multi", base(0), f"{other(base(0))},{other(other(base(0)))}"),
        ("chr21", P + 10, "mismatch", other(base(10)), base(10)),
        ("chr21", P + 11, "lower", base(11).lower(), other(base(11)).lower()),
        ("chr21", P + 20, "sym", base(20), "<DEL>"),
        ("chr21", P + 21, "star", base(21), f"*,{other(base(21))}"),
        ("chr21", P + 22, "bnd", base(22), f"{base(22)}[chr1:1000["),
        ("chr21", P + 23, "nalt", base(23), "N"),
        ("chr21", P + 24, "long", s[24:24 + 60], s[24]),
        ("chr21", P + 30, "del", s[30:33], s[30]),
        ("chr21", P + 40, "mnv", s[40:42], other(s[40]) + other(s[41])),
        ("chr21", P + 50, "none", base(50), "."),
        ("21", P, "alias", base(0), other(base(0))),
        ("chrUn_x", 5, "nocontig", "A", "G"),
    ]
    vcf = _write_vcf(tmp_path / "v.vcf.gz", rows)
    out = tmp_path / "e.tsv"
    assert _run(run, vcf, out) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "contig_missing 1" in err[0] and "ref_mismatch 1" in err[0] and "21->chr21" in err[0], err
    t = _table(out)
    by = {}
    for r in t:
        by.setdefault(r["id"], []).append(r)
    assert [r["alt"] for r in by["multi"]] == [other(base(0)), other(other(base(0)))]  # split, one row per ALT
    assert all(r["flag"] == "" and r["ref_prob"] != "NA" for r in by["multi"])
    assert by["mismatch"][0]["flag"] == "ref_mismatch" and by["mismatch"][0]["ref_prob"] == "NA"
    assert by["lower"][0]["flag"] == ""
    assert by["sym"][0]["flag"] == "symbolic" and by["bnd"][0]["flag"] == "symbolic"
    assert [r["flag"] for r in by["star"]] == ["symbolic", ""]
    assert by["nalt"][0]["flag"] == "n_in_allele"
    assert by["long"][0]["flag"] == "too_long"
    assert by["del"][0]["flag"] == "" and by["mnv"][0]["flag"] == ""
    assert by["none"][0]["flag"] == "symbolic" and by["none"][0]["alt"] == "."
    assert by["nocontig"][0]["flag"] == "contig_missing" and by["nocontig"][0]["logit_diff"] == "NA"
    # the alias row is the first multi-allelic ALT on chr21, with the VCF's own name kept
    assert by["alias"][0]["chrom"] == "21" and by["alias"][0]["logit_diff"] == by["multi"][0]["logit_diff"]
    # --no-rc scores one strand: other figures for the same rows, same flags
    assert _run(run, vcf, tmp_path / "e1.tsv", "--no-rc") == 0
    t1 = _table(tmp_path / "e1.tsv")
    assert [r["flag"] for r in t1] == [r["flag"] for r in t]
    # --max-indel 60 scores the long deletion
    assert _run(run, vcf, tmp_path / "e2.tsv", "--max-indel", "60") == 0
    assert [r["flag"] for r in _table(tmp_path / "e2.tsv") if r["id"] == "long"] == [""]


def _bad(capsys, argv, *needles):
    capsys.readouterr()
    rc_ = variants.main(argv)
    err = capsys.readouterr().err
    assert rc_ == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_bad_input(run, tmp_path, capsys):
    base = ["--checkpoint", run.ckpt, "--genome", run.fa, "--cache-dir", run.cache, "--no-progress"]
    out = tmp_path / "e.tsv"
    ok = ("chr21", 20_001, ".", run.genome.sequence("chr21", 20_000, 20_001), "A")
    # malformed line: its line number
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(HEADER + "chr21\t20001\t.\tA\tG\t.\t.\t.\nchr21\tnotapos\t.\tA\tG\t.\t.\t.\n")
    _bad(capsys, base + ["--vcf", str(vcf), "--out", str(out)], "bad.vcf:4", "malformed")
    assert not out.exists() and not list(tmp_path.glob(".e.tsv*"))
    # every contig missing: the genome's names
    vcf = _write_vcf(tmp_path / "nochr.vcf", [("scaffold_1", 10, ".", "A", "G")])
    _bad(capsys, base + ["--vcf", str(vcf), "--out", str(out)], "scaffold_1", "chr1")
    header = HEADER.replace("#CHROM", "##contig=<ID=scaffold_1,length=1000>\n#CHROM")
    vcf = _write_vcf(tmp_path / "nochr2.vcf", [("scaffold_1", 10, ".", "A", "G")], header)
    _bad(capsys, base + ["--vcf", str(vcf), "--out", str(out)], "none of its contigs", "chr21")
    # POS past the end
    size = dict(run.genome.chromosomes)["chr21"]
    vcf = _write_vcf(tmp_path / "past.vcf", [ok, ("chr21", size + 5, ".", "A", "G")])
    _bad(capsys, base + ["--vcf", str(vcf), "--out", str(out)], "record 2", f"chr21:{size + 5}", "past the end")
    assert not out.exists()
    # not a VCF, no such file
    junk = tmp_path / "junk.vcf"
    junk.write_text("hello\n")
    _bad(capsys, base + ["--vcf", str(junk), "--out", str(out)], "--vcf", "junk.vcf")
    _bad(capsys, base + ["--vcf", str(tmp_path / "none.vcf"), "--out", str(out)], "--vcf", "no such file")
    # unwritable outputs: nothing half-written
    good = _write_vcf(tmp_path / "good.vcf", [ok])
    ro = tmp_path / "a_file"  # a file where a directory should be: unwritable even as root
    ro.write_text("")
    _bad(capsys, base + ["--vcf", str(good), "--out", str(ro / "e.tsv")], "--out", "cannot write")
    _bad(capsys, base + ["--vcf", str(good), "--out", str(out), "--vcf-out", str(ro / "a.vcf.gz")],
         "--vcf-out", "cannot write")
    assert not out.exists() and not list(tmp_path.glob(".e.tsv*"))
    _bad(capsys, base + ["--vcf", str(good), "--out", str(tmp_path / "e.bw")], "--out", ".tsv")
    _bad(capsys, base + ["--vcf", str(good), "--out", str(out), "--max-indel", "500"], "--max-indel")
    # an empty VCF: the header line only, a note, exit 0
    empty = _write_vcf(tmp_path / "empty.vcf", [])
    capsys.readouterr()
    assert variants.main(base + ["--vcf", str(empty), "--out", str(out)]) == 0
    assert "no variant records" in capsys.readouterr().err
    assert out.read_text() == "\t".join(variants.COLUMNS) + "\n"


def test_cli_lists_variants():
    from bsp_fast import cli

    assert "variants" in cli.COMMANDS


def test_hybrid_substitution_shortcut_matches_plain_scoring(run, tmp_path, monkeypatch):
    """The hybrid's ALT windows of SNVs / MNVs reuse the REF convolution: same table as plain scoring."""
    import torch

    from bsp_fast.checkpoint import FORMAT, VERSION, atomic_save
    from bsp_fast.models import Ensemble, HybridNet, build_model

    torch.manual_seed(0)
    model = build_model("hybrid", head="occupancy", flank=100, filters=8, hidden=8, dense=8, members=2)
    ckpt = tmp_path / "hybrid.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "model_config": model.config, "model": model.state_dict()}, ckpt)
    s = run.genome.sequence("chr21", 20_000, 20_400)
    other = lambda b: "ACGT"[("ACGT".index(b) + 1) % 4]  # noqa: E731
    rows = [("chr21", 20_001 + i, "snv", s[i], other(s[i])) for i in range(0, 300, 7)]
    rows += [("chr21", 20_001 + i, "mnv", s[i:i + 2], other(s[i]) + other(s[i + 1])) for i in range(3, 300, 29)]
    rows += [("chr21", 20_001 + i, "del", s[i:i + 4], s[i]) for i in range(5, 300, 41)]
    vcf = _write_vcf(tmp_path / "v.vcf", sorted(rows, key=lambda r: r[1]))
    argv = ["--checkpoint", str(ckpt), "--genome", run.fa, "--cache-dir", run.cache, "--vcf", str(vcf), "--no-progress"]
    for extra in ([], ["--no-rc"]):
        assert variants.main(argv + ["--out", str(tmp_path / "fast.tsv"), *extra]) == 0
        with monkeypatch.context() as mp:
            mp.delattr(Ensemble, "substitution_logits")
            mp.delattr(HybridNet, "substitution_logits")
            assert variants.main(argv + ["--out", str(tmp_path / "plain.tsv"), *extra]) == 0
        fast, plain = _table(tmp_path / "fast.tsv"), _table(tmp_path / "plain.tsv")
        assert [r["id"] for r in fast] == [r["id"] for r in plain] and len(fast) == len(rows)
        for key in ("ref_prob", "alt_prob", "logit_diff"):
            assert np.allclose([float(r[key]) for r in fast], [float(r[key]) for r in plain], atol=1e-5), key
