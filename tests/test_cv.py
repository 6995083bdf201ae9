"""Sequence sets, the k-mer baseline, the thesis-small preset and the cv command (tiny settings)."""

import gzip
import json

import numpy as np
import pytest
import torch

from bsp_fast import cv
from bsp_fast.presets import contains_any, thesis_motifs, thesis_small
from bsp_fast.seqsets import SeqSetError, decode, encode, read_fasta_set, to_codes, write_fasta


@pytest.fixture(autouse=True, scope="module")  # before the module-scoped fixtures too
def _one_thread():
    """Tiny models: one torch thread is fastest, and the 2-core machine is shared (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- sequence sets


def test_read_fasta_set_rules(tmp_path):
    p = tmp_path / "a.fa"
    p.write_text(">s1 some description\nacgtRY\nNNac\n\n>s1\nGGGG\r\n>s3\nA C-G\n")
    ss = read_fasta_set(p)
    assert ss.names == ["s1", "s1", "s3"]  # duplicate names are fine in a set
    assert decode(ss.seqs[0]) == "ACGTNNNNAC"
    assert decode(ss.seqs[1]) == "GGGG"
    assert decode(ss.seqs[2]) == "ACNG"
    gz = tmp_path / "a.fa.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert [decode(s) for s in read_fasta_set(gz).seqs] == [decode(s) for s in ss.seqs]


@pytest.mark.parametrize("text, needle", [
    ("", "no sequences"),
    (">a\n", "is empty"),
    (">a\nNNNNRY\n", "no valid base"),
    ("ACGT\n>a\nACGT\n", "before the first"),
    (">a\nACGZ\n", "'Z' is not a DNA base"),
])
def test_read_fasta_set_errors_name_the_file(tmp_path, text, needle):
    p = tmp_path / "bad.fa"
    p.write_text(text)
    with pytest.raises(SeqSetError) as e:
        read_fasta_set(p)
    assert str(p) in str(e.value) and needle in str(e.value)
    with pytest.raises(SeqSetError, match="no such file"):
        read_fasta_set(tmp_path / "missing.fa")


def test_to_codes_centres_trims_and_pads():
    out = to_codes([encode("ACGTACGTAC"), encode("GG"), encode("ACG")], 4)
    assert [decode(r) for r in out] == ["TACG", "NGGN", "ACGN"]


def test_kmer_features_are_strand_symmetric():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(3, 40), dtype=np.uint8)
    rc = (3 - x)[:, ::-1]
    f, g = cv.kmer_features(x, 4), cv.kmer_features(rc, 4)
    assert f.shape == (3, 136)  # canonical 4-mers
    np.testing.assert_allclose(f, g, atol=1e-6)
    np.testing.assert_allclose(f.sum(1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- the thesis-small preset


def test_thesis_small_preset_data():
    motifs = thesis_motifs()
    assert len(motifs) == 949 and len(set(motifs)) == 592
    pos, neg, starts = thesis_small(n=400, seed=1)
    assert pos.shape == (40, 80) and neg.shape == (360, 80)
    assert not contains_any(neg, motifs).any()  # negatives guaranteed motif-free, both strands
    assert contains_any(pos, motifs).all()
    assert starts.min() >= 20 and (starts <= 60).all()  # planted in the 40 bp region
    a, b, _ = thesis_small(n=400, seed=1)
    np.testing.assert_array_equal(a, pos)
    np.testing.assert_array_equal(b, neg)


# ---------------------------------------------------------------- the command


def _sets(tmp_path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    pos, neg = [], []
    for i in range(n):
        s = rng.integers(0, 4, size=int(rng.integers(40, 70)), dtype=np.uint8)
        at = int(rng.integers(0, len(s) - 10))
        s[at:at + 8] = encode("CCGGAAGT")
        pos.append(s)
        neg.append(rng.integers(0, 4, size=int(rng.integers(40, 70)), dtype=np.uint8))
    p = write_fasta(tmp_path / "pos.fa", [f"p{i}" for i in range(n)], pos)
    q = write_fasta(tmp_path / "neg.fa", [f"n{i}" for i in range(n)], neg)
    return p, q


def test_cv_command_end_to_end(tmp_path, capsys):
    from bsp_fast.checkpoint import load_checkpoint, model_from_checkpoint

    pos, neg = _sets(tmp_path)
    out = tmp_path / "run"
    rc = cv.main(["--pos", str(pos), "--neg", str(neg), "--model", "cnn", "--folds", "3", "--epochs", "20", "--batch-size", "16",
                  "--lr", "5e-3", "--kernel-size", "10", "--filters", "16", "--kmer", "3", "--seed", "1", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    for key in ("auroc", "auprc"):
        assert len(m[key]) == 3 and len(m["baseline"][key]) == 3
        for k in (f"{key}_mean", f"{key}_std"):
            assert isinstance(m[k], float) and isinstance(m["baseline"][k], float)
    assert m["n_pos"] == 60 and m["n_neg"] == 60 and m["length"] == 69
    assert m["auroc_mean"] > 0.8  # an exact 8-mer: the network finds it
    for f in ("roc_pr.png", "roc_pr_folds.png", "predictions.tsv", "final.pt"):
        assert (out / f).stat().st_size > 0
    ck = load_checkpoint(out / "final.pt")
    assert ck["kind"] == "cv-final" and ck["model_config"]["name"] == "cnn"
    assert ck["model_config"]["region"] == 69 and ck["model_config"]["flank"] == 0
    model = model_from_checkpoint(ck)
    assert model(torch.zeros(2, 69, dtype=torch.uint8)).shape == (2,)
    assert "cnn: auROC" in capsys.readouterr().out


def test_cv_preset_smoke(tmp_path, capsys):
    out = tmp_path / "pre"
    assert cv.main(["--preset", "thesis-small", "--preset-size", "100", "--folds", "2", "--epochs", "0.5",
                    "--no-final", "--kmer", "2", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "bigru-small" and m["n_pos"] == 10 and m["n_neg"] == 90
    assert m["target"] == {"auroc": 0.9997, "auprc": 0.998} and "target_met" in m
    # the preset trains with the focal loss, without weighing the positives up
    assert m["training"]["focal"] == 2.0 and m["training"]["balance"] is False
    out2 = tmp_path / "pre2"
    assert cv.main(["--preset", "thesis-small", "--preset-size", "40", "--folds", "2", "--epochs", "0.5",
                    "--no-final", "--kmer", "0", "--balance", "--focal", "0", "--out", str(out2), "--quiet"]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["training"]["balance"] is True and m2["training"]["focal"] == 0.0
    assert cv.main(["--preset", "thesis-small", "--preset-size", "40", "--focal", "-1", "--out", str(out2)]) == 2
    assert "--focal must be in 0..10" in capsys.readouterr().err
    from bsp_fast.seqsets import read_fasta_set

    assert len(read_fasta_set(out / "positives.fa")) == 10 and len(read_fasta_set(out / "negatives.fa")) == 90


def test_cv_user_errors(tmp_path, capsys):
    pos, neg = _sets(tmp_path, n=4)
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    alln = tmp_path / "n.fa"
    alln.write_text(">x\nNNNN\n")
    cases = [
        (["--pos", str(empty), "--neg", str(neg)], str(empty)),
        (["--pos", str(pos), "--neg", str(alln)], "no valid base"),
        (["--pos", str(pos), "--neg", str(neg), "--folds", "5"], "fewer than --folds 5"),
        (["--pos", str(pos), "--neg", str(neg), "--folds", "2", "--model", "bigru", "--kernel-size", "5"],
         "--kernel-size"),
        (["--pos", str(pos), "--neg", str(tmp_path / "nope.fa")], "nope.fa: no such file"),
        (["--neg", str(neg)], "--pos"),
        (["--pos", str(pos), "--neg", str(neg), "--folds", "2", "--model", "cnn", "--length", "5"], "shorter"),
    ]
    for argv, needle in cases:
        assert cv.main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1, (argv, err)


def test_cv_ensemble_members(tmp_path):
    """--members 2: every fold and final.pt hold a 2-member ensemble."""
    out = tmp_path / "ens"
    assert cv.main(["--preset", "thesis-small", "--preset-size", "60", "--folds", "2", "--epochs", "0.5",
                    "--members", "2", "--kmer", "0", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["auroc"]) == 2 and all(0.0 <= v <= 1.0 for v in m["auroc"])
    ck = torch.load(out / "final.pt", weights_only=False)
    assert ck["model_config"]["members"] == 2
