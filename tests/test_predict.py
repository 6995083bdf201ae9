"""python -m bsp_fast.predict and python -m bsp_fast.evaluate on a tiny trained model."""

from __future__ import annotations

import gzip
import json
import types

import numpy as np
import pytest

from bsp_fast import evaluate, predict, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from bsp_fast.data.synthetic import ensure_builtin

    root = tmp_path_factory.getbasetemp() / "bsp_fast_builtin"
    b = ensure_builtin(root, scale=0.05)
    cache = str(tmp_path_factory.getbasetemp() / "bsp_fast_genomes")
    out = tmp_path_factory.mktemp("pred_run")
    rc = train.main(["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", cache,
                     "--model", "cnn", "--steps", "6", "--batch-size", "16", "--threads", "1", "--no-progress",
                     "--out", str(out)])
    assert rc == 0
    return types.SimpleNamespace(b=b, cache=cache, ckpt=str(out / "best.pt"), last=str(out / "checkpoint.pt"))


def _rows(path):
    with gzip.open(path, "rt") as fh:
        return [line.rstrip("\n").split("\t") for line in fh]


def test_predict_bins_and_evaluate(trained, tmp_path, capsys):
    from bsp_fast.data import Genome

    genome = Genome(trained.b.fasta, cache_dir=trained.cache)
    sizes = dict(genome.chromosomes)
    out = tmp_path / "preds.tsv.gz"
    rc = predict.main(["--checkpoint", trained.ckpt, "--genome", str(trained.b.fasta), "--chroms", "chr21,chr1",
                       "--out", str(out), "--cache-dir", trained.cache, "--no-progress", "--chunk", "1000",
                       "--batch-size", "256"])
    assert rc == 0
    rows = _rows(out)
    chroms = [r[0] for r in rows]
    assert chroms == sorted(chroms, key=["chr1", "chr21"].index)  # genome order, streamed in chunks
    for c in ("chr1", "chr21"):
        starts = [int(r[1]) for r in rows if r[0] == c]
        assert starts == list(range(0, sizes[c] - 200 + 1, 50))
    assert all(int(r[2]) - int(r[1]) == 200 for r in rows)
    probs = np.array([float(r[3]) for r in rows])
    assert ((probs >= 0) & (probs <= 1)).all() and probs.std() > 0

    # evaluate: same metrics as the training run's own scoring of those chromosomes
    mpath = tmp_path / "m.json"
    rc = evaluate.main(["--predictions", str(out), "--labels", str(trained.b.labels), "--cell", trained.b.cell,
                        "--out", str(mpath), "--plot", str(tmp_path / "roc.png")])
    assert rc == 0, capsys.readouterr().err
    m = json.loads(mpath.read_text())
    for key in ("auroc", "auprc", "recall_at_fdr10", "recall_at_fdr50", "n_pos", "n_neg"):
        assert key in m
    assert m["chroms"] == ["chr1", "chr21"] or m["chroms"] == ["chr21", "chr1"] or set(m["chroms"]) == {"chr1", "chr21"}
    assert (tmp_path / "roc.png").is_file()

    # regions: one row per BED line, in the BED's order
    bed = tmp_path / "r.bed"
    bed.write_text("chr21\t1000\t1200\nchr1\t500\t900\nchr1\t0\t10\n")
    out2 = tmp_path / "regions.tsv"
    assert predict.main(["--checkpoint", trained.ckpt, "--genome", str(trained.b.fasta), "--regions", str(bed),
                         "--out", str(out2), "--cache-dir", trained.cache, "--no-progress"]) == 0
    lines = [x.split("\t") for x in out2.read_text().splitlines()]
    assert [x[:3] for x in lines] == [["chr21", "1000", "1200"], ["chr1", "500", "900"], ["chr1", "0", "10"]]
    # the bin chr21:1000-1200 gets the same score either way
    p_bin = [float(r[3]) for r in rows if r[0] == "chr21" and r[1] == "1000"][0]
    assert float(lines[0][3]) == pytest.approx(p_bin, rel=1e-5)


def _bad(capsys, fn, argv, *needles):
    capsys.readouterr()
    rc = fn(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_bad_input(trained, tmp_path, capsys):
    fa = str(trained.b.fasta)
    out = tmp_path / "p.tsv.gz"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    _bad(capsys, predict.main, ["--checkpoint", str(junk), "--genome", fa, "--out", str(out)], "--checkpoint", "junk.pt")
    _bad(capsys, predict.main, ["--checkpoint", trained.ckpt, "--genome", fa, "--chroms", "chrZ", "--out", str(out),
                                "--cache-dir", trained.cache], "--chroms", "chrZ")
    _bad(capsys, predict.main, ["--checkpoint", trained.ckpt, "--genome", fa], "--out")
    assert not out.exists()
    preds = tmp_path / "few.tsv"
    preds.write_text("chr21\t0\t200\t0.5\n")
    _bad(capsys, evaluate.main, ["--predictions", str(preds), "--labels", str(trained.b.labels), "--cell", "HeLa",
                                 "--out", str(tmp_path / "m.json")], "--cell", "HeLa")
    _bad(capsys, evaluate.main, ["--predictions", str(preds), "--labels", str(trained.b.labels),
                                 "--out", str(tmp_path / "m.json")], "no prediction", "chr21")
    assert not (tmp_path / "m.json").exists()


def test_predict_tracks_and_peaks(trained, tmp_path, capsys):
    """bigWig, bedGraph and narrowPeak from the same scores as the TSV."""
    pyBigWig = pytest.importorskip("pyBigWig")
    base = ["--checkpoint", trained.ckpt, "--genome", str(trained.b.fasta), "--chroms", "chr21,chr8",
            "--cache-dir", trained.cache, "--no-progress", "--chunk", "700"]
    tsv = tmp_path / "p.tsv"
    assert predict.main(base + ["--out", str(tsv)]) == 0
    rows = [r.split("\t") for r in tsv.read_text().splitlines()]
    probs = np.array([float(r[3]) for r in rows])
    thr = float(np.quantile(probs, 0.9))
    bw, bg, peaks = tmp_path / "p.bw", tmp_path / "p.bedgraph.gz", tmp_path / "peaks.narrowPeak"
    assert predict.main(base + ["--out", str(bw), "--peaks-out", str(peaks), "--threshold", str(thr)]) == 0
    err = capsys.readouterr().err
    assert "peaks" in err and "track type=bigWig" in err
    assert predict.main(base + ["--out", str(bg), "--track-name", "gabpa"]) == 0
    # bigWig: each value on the 50 bp centred in its bin, the same values as the TSV
    f = pyBigWig.open(str(bw))
    assert f.chroms() == dict(trained_sizes(trained))
    for c in ("chr8", "chr21"):
        sel = [r for r in rows if r[0] == c]
        iv = f.intervals(c)
        assert [(a, b) for a, b, _ in iv] == [(int(r[1]) + 75, int(r[1]) + 125) for r in sel]
        assert np.allclose([v for *_, v in iv], [float(r[3]) for r in sel], rtol=1e-5, atol=1e-7)
    f.close()
    # bedGraph: a track line, then the same intervals and values
    lines = gzip.open(bg, "rt").read().splitlines()
    assert lines[0].startswith('track type=bedGraph name="gabpa"')
    got = [x.split("\t") for x in lines[1:]]
    assert [(x[0], int(x[1]), int(x[2])) for x in got] == [(r[0], int(r[1]) + 75, int(r[1]) + 125) for r in rows]
    assert [x[3] for x in got] == [r[3] for r in rows]
    # narrowPeak: the peaks cover exactly the bins >= threshold
    pk = [x.split("\t") for x in peaks.read_text().splitlines()]
    assert pk and all(len(x) == 10 for x in pk)
    for c in ("chr8", "chr21"):
        size = trained_sizes(trained)[c]
        want = np.zeros(size, bool)
        for r in rows:
            if r[0] == c and float(r[3]) >= thr:
                want[int(r[1]):int(r[2])] = True
        have = np.zeros(size, bool)
        for x in pk:
            if x[0] == c:
                a, b = int(x[1]), int(x[2])
                assert 0 <= int(x[9]) < b - a and 0 <= int(x[4]) <= 1000 and x[5] == "."
                have[a:b] = True
        assert (want == have).all()
    # an unknown suffix: one line, exit 2, nothing written
    _bad(capsys, predict.main, base + ["--out", str(tmp_path / "p.csv")], "--out", "p.csv", ".bw")
    assert not (tmp_path / "p.csv").exists()
    _bad(capsys, predict.main, base + ["--out", str(tmp_path / "q.tsv"), "--threshold", "2"], "--threshold")
    (tmp_path / "file").write_text("")
    _bad(capsys, predict.main, base + ["--out", str(tmp_path / "q.tsv"), "--peaks-out", str(tmp_path / "file" / "x.bed")],
         "--peaks-out", "cannot write")
    assert not (tmp_path / "q.tsv").exists() and not list(tmp_path.glob(".q.tsv*"))


def trained_sizes(trained):
    from bsp_fast.data import Genome

    return dict(Genome(trained.b.fasta, cache_dir=trained.cache).chromosomes)
