"""motifs: kernel -> PFM extraction, ISM seqlets, JASPAR/MEME round trip, matching, the command, and
the built-in GABPA data set (the top learned motif must match GABPA, not ELK1 or a decoy)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bsp_fast import motifs as mo
from bsp_fast.cv import save_final
from bsp_fast.models import build_model, one_hot
from bsp_fast.motif_io import Motif, read_jaspar, read_meme, read_motifs
from bsp_fast.seqsets import encode, write_fasta

KNOWN = Path("/work/shared/data/motifs.jaspar")
if not KNOWN.exists():  # outside this workspace: the copy the package ships (same matrices)
    KNOWN = Path(__file__).resolve().parents[1] / "bsp_fast" / "resources" / "motifs.jaspar"

PLANT = "CCGGAAGT"


@pytest.fixture(autouse=True, scope="module")  # before the module-scoped fixtures too
def _one_thread():
    """Tiny models: one torch thread is fastest, and the 2-core machine is shared (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _planted(n: int = 200, length: int = 40, seed: int = 0, word: str = PLANT) -> tuple[np.ndarray, np.ndarray]:
    """Random sequences, every other one carrying ``word`` away from the ends."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels):
        at = int(rng.integers(10, length - len(word) - 10))
        codes[i, at:at + len(word)] = encode(word)
    return codes, labels


def _planted_cnn(word: str = PLANT) -> nn.Module:
    """A cnn whose kernel 0 fires only on an exact ``word`` and alone drives the logit; kernel 1 is noise."""
    k = len(word)
    model = build_model("cnn", region=40, flank=0, filters=2, kernel_size=k, dense=2, dropout=0.0, rc_conv=False)
    with torch.no_grad():
        w = -torch.ones(2, 4, k)
        for j, c in enumerate(encode(word)):
            w[0, c, j] = 1.0
        model.conv.weight.copy_(w)
        model.conv.bias.copy_(torch.tensor([-(k - 1.0), -(k - 1.0)]))
        model.conv.weight[1].uniform_(-0.2, 0.2, generator=torch.Generator().manual_seed(0))
        model.conv.bias[1] = 0.3  # kernel 1 is active everywhere but the head ignores it
        model.mlp[0].weight.zero_()
        model.mlp[0].bias.zero_()
        model.mlp[0].weight[0, 0] = 5.0
        model.mlp[3].weight.fill_(1.0)
        model.mlp[3].bias.fill_(-2.0)
    return model.eval()


# ---------------------------------------------------------------- extraction


def test_conv_motifs_recover_the_planted_kernel():
    codes, _ = _planted()
    found = mo.conv_motifs(_planted_cnn(), codes)
    assert [m.id for m in found] == ["motif1", "motif2"]
    top = found[0]
    assert top.name == "filter0" and top.source == 0 and top.consensus() == PLANT
    assert top.n_sites >= 100  # every planted copy (and nothing else: only an exact match fires)
    assert (top.counts.max(axis=1) == top.n_sites).all()
    assert found[0].importance > 0 and found[1].importance == pytest.approx(0.0, abs=1e-9)


def test_ism_motifs_for_a_model_without_convolutions():
    class Lookup(nn.Module):
        """Scores the best match to a word with a fixed scan; no ``first_conv``: ISM seqlets apply."""

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(4.0))
            self.inner = _planted_cnn("GATTACA")

        def forward(self, codes):
            x = torch.relu(self.inner.conv(one_hot(codes.long()).transpose(1, 2))).amax(dim=2)[:, 0]
            return self.scale * x - 2.0

    codes, _ = _planted(n=60, word="GATTACA", seed=4)
    found = mo.ism_motifs(Lookup(), codes, n_seqs=30, width=12, n_motifs=2, seed=0)
    assert found[0].id == "motif1" and found[0].counts.shape == (12, 4)
    assert "GATTACA" in found[0].consensus()
    assert found[0].importance >= found[-1].importance


# ---------------------------------------------------------------- files


def test_jaspar_and_meme_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    learned = [mo.LearnedMotif(f"motif{i + 1}", f"filter{i}", rng.integers(0, 30, size=(6 + i, 4)).astype(float) + 1,
                               1.0 / (i + 1), 40, i) for i in range(3)]
    learned.append(mo.LearnedMotif("motif4", "filter9", np.zeros((6, 4)), 0.0, 0, 9))  # no sites: not written
    mo.write_jaspar(learned, tmp_path / "m.jaspar")
    back = read_jaspar(tmp_path / "m.jaspar")
    assert [(m.id, m.name) for m in back] == [("motif1", "filter0"), ("motif2", "filter1"), ("motif3", "filter2")]
    for a, b in zip(learned, back):
        np.testing.assert_array_equal(a.counts, b.matrix)
    mo._write_meme(learned, tmp_path / "m.meme")
    meme = read_meme(tmp_path / "m.meme")
    assert [m.id for m in meme] == ["motif1", "motif2", "motif3"]
    for a, b in zip(learned, meme):
        np.testing.assert_allclose(a.counts / a.counts.sum(1, keepdims=True), b.probabilities(), atol=2e-6)
    assert [m.id for m in read_motifs(tmp_path / "m.meme")] == ["motif1", "motif2", "motif3"]


# ---------------------------------------------------------------- matching: tests/test_interpret_matching.py (TomTom)


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    codes, _ = _planted(n=120)
    fa = write_fasta(d / "seqs.fa", [f"s{i}" for i in range(len(codes))], codes)
    ck = save_final(_planted_cnn(), d / "final.pt", {"length": 40})
    return d, fa, ck


def test_command_writes_motifs_logos_and_matches(planted_run, tmp_path, capsys):
    _, fa, ck = planted_run
    out = tmp_path / "m"
    rc = mo.main(["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(KNOWN), "--logos", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    for f in ("motifs.meme", "motifs.jaspar", "motifs.tsv", "matches.tsv", "summary.json", "top_motifs.png",
              "logos/motif1.png", "logos/motif2.png"):
        assert (out / f).stat().st_size > 0, f
    assert read_jaspar(out / "motifs.jaspar")[0].consensus() == PLANT
    assert read_meme(out / "motifs.meme")[0].id == "motif1"
    lines = [line.split("\t") for line in (out / "matches.tsv").read_text().splitlines()]
    assert lines[0][:9] == ["motif", "rank", "known_id", "known_name", "score", "offset", "strand", "p_value", "q_value"]
    n_known = len(read_motifs(KNOWN))
    assert [r[0] for r in lines[1:]] == ["motif1"] * n_known + ["motif2"] * n_known  # importance order
    assert [int(r[1]) for r in lines[1:n_known + 1]] == list(range(1, n_known + 1))
    pvals = [float(r[7]) for r in lines[1:n_known + 1]]
    assert pvals == sorted(pvals)  # rank by TomTom p-value
    assert lines[1][3] in ("GABPA", "ELK1")  # CCGGAAGT is the ETS core both share
    assert all(0 <= float(r[8]) <= 1 for r in lines[1:])
    assert "motif1 (filter0)" in capsys.readouterr().out


def test_command_recurrent_model_uses_ism_seqlets(tmp_path, capsys):
    codes, _ = _planted(n=20, length=30)
    fa = write_fasta(tmp_path / "s.fa", [f"s{i}" for i in range(len(codes))], codes)
    torch.manual_seed(0)
    ck = save_final(build_model("bigru-small", region=20, flank=5, hidden=8), tmp_path / "gru.pt")
    out = tmp_path / "m"
    rc = mo.main(["--checkpoint", str(ck), "--fasta", str(fa), "--ism-seqs", "6", "--n-motifs", "2",
                  "--seqlet-width", "8", "--logos", "1", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "ISM seqlets" in capsys.readouterr().out
    assert 1 <= len(read_jaspar(out / "motifs.jaspar")) <= 2 and (out / "logos" / "motif1.png").exists()


def test_command_errors(planted_run, tmp_path, capsys):
    _, fa, ck = planted_run
    wrong = tmp_path / "wrong.pt"
    torch.save([1, 2, 3], wrong)
    garbage = tmp_path / "garbage.jaspar"
    garbage.write_text("this is not a motif file\n")
    short = tmp_path / "short.jaspar"
    short.write_text(">M1 x\nA [ 1 2 ]\nC [ 1 2 ]\n")
    binary = tmp_path / "bin.meme"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 20)
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    zero_w = tmp_path / "zero.meme"
    zero_w.write_text("MEME version 4\n\nALPHABET= ACGT\n\nMOTIF z\nletter-probability matrix: alength= 4 w= 0\n")
    zero_j = tmp_path / "zero.jaspar"
    zero_j.write_text(">M1 x\nA [ ]\nC [ ]\nG [ ]\nT [ ]\n")
    not_p = tmp_path / "notp.meme"
    not_p.write_text("MEME version 4\n\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.25 0.25 0.25 0.25\n"
                     "0.5 0.5 0.5 0.5\n")
    cases = [
        (["--checkpoint", str(wrong), "--fasta", str(fa)], str(wrong), "not a bsp_fast checkpoint"),
        (["--checkpoint", str(fa), "--fasta", str(fa)], str(fa), "expected a bsp_fast checkpoint"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(garbage)], str(garbage), "JASPAR"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(short)], str(short), "expected 4 rows"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(binary)], str(binary), "not a text file"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(tmp_path / "no.jaspar")], "no.jaspar",
         "no such motif file"),
        (["--checkpoint", str(ck), "--fasta", str(empty)], str(empty), "no sequences"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--length", "4"], "--length", "shorter"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--threshold", "1.5"], "--threshold", "(0, 1)"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(zero_w)], str(zero_w), "zero-width"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(zero_j)], str(zero_j), "zero-width"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(not_p)], str(not_p), "sum to 1"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--scan", str(fa), "--scan-threshold", "0"], "--scan-threshold",
         "(0, 1]"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--scan", str(tmp_path / "no.fa")], "no.fa", "no such file"),
        (["--checkpoint", str(ck), "--fasta", str(fa), "--scan", str(fa), "--scan-known"], "--scan-known", "--known"),
    ]
    for argv, name, needle in cases:
        assert mo.main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("bsp-fast motifs") and name in err and needle in err, (argv, err)


# ---------------------------------------------------------------- the built-in GABPA data set


def test_builtin_top_motif_matches_gabpa(tmp_path_factory):
    """A small cnn trained on bound vs nearby unbound bins (same GC-rich neighbourhoods, so only the motif
    separates them): its most important kernel's rank-1 TomTom match must be GABPA (MA0062, q < 0.05),
    with ELK1 (same GGAA core, never bound in the built-in data) and the decoys below both GABPA
    matrices. ~15 s on one core."""
    from bsp_fast.cv import train_model

    cache = tmp_path_factory.mktemp("builtin")
    codes, labels = mo.builtin_windows(200, 1500, 1500, seed=0, cache_dir=str(cache), negatives="flank")
    assert labels.sum() >= 500 and (labels == 0).sum() >= 500
    torch.manual_seed(0)  # one torch thread (the autouse fixture): the same result on every machine
    model = build_model("cnn", region=200, flank=0, filters=8, kernel_size=15, dense=16)
    train_model(model, codes, labels, epochs=6, batch_size=64, lr=5e-3, seed=0)
    found = mo.conv_motifs(model, codes)
    known = read_motifs(KNOWN)
    assert {m.name for m in known} >= {"GABPA", "ELK1"}
    rows = mo.match_all(found[:1], known)
    best = rows[0]
    assert best["motif"] == "motif1" and best["rank"] == 1
    # measured (seed 0): MA0062.3 p 4.5e-7, q 2.7e-6; ELK1 p 1.2e-3, q 2.5e-3, below both GABPA matrices
    assert best["known_name"] == "GABPA" and best["known_id"].startswith("MA0062"), rows[:3]
    assert best["q_value"] < 0.05
    elk1 = next(r for r in rows if r["known_name"] == "ELK1")
    assert elk1["rank"] > 2 and elk1["p_value"] > 10 * best["p_value"]


def test_without_the_interpret_extra(planted_run, tmp_path, capsys, monkeypatch):
    """Kernels and logos need no extra; --known (TomTom) names the missing package and the extra in one line."""
    import sys

    _, fa, ck = planted_run
    monkeypatch.setitem(sys.modules, "memelite", None)  # as if the interpret extra were not installed
    assert mo.main(["--checkpoint", str(ck), "--fasta", str(fa), "--logos", "0", "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    rc = mo.main(["--checkpoint", str(ck), "--fasta", str(fa), "--known", str(KNOWN), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("bsp-fast motifs") and "memelite" in err and "bsp_fast[interpret]" in err, err
