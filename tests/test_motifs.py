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


# ---------------------------------------------------------------- matching


def _ppm(word: str, sharp: float = 0.85) -> np.ndarray:
    p = np.full((len(word), 4), (1 - sharp) / 3)
    p[np.arange(len(word)), encode(word)] = sharp
    return p


def test_match_finds_offset_and_strand():
    rng = np.random.default_rng(5)
    known = _ppm("GATTACAG")
    bg = rng.dirichlet(np.ones(4), size=16)
    fwd = bg.copy()
    fwd[3:11] = known
    score, off, strand = mo.match_motif(fwd, known)
    assert (off, strand) == (3, "+") and score == pytest.approx(1.0)
    rev = bg.copy()
    rev[5:13] = known[::-1, ::-1]  # the reverse complement inside the learned motif
    score, off, strand = mo.match_motif(rev, known)
    assert (off, strand) == (5, "-") and score == pytest.approx(1.0)
    # the known motif overhangs the learned one's left end: negative offset, only the overlap counts
    short = known[2:].copy()
    score, off, strand = mo.match_motif(short, known)
    assert (off, strand) == (-2, "+") and score == pytest.approx(6 / 8)


def test_match_all_ranks_known_motifs():
    counts = np.vstack([np.full((3, 4), 5.0), _ppm("GATTACAG") * 100, np.full((2, 4), 5.0)])
    learned = [mo.LearnedMotif("motif1", "filter3", counts, 2.0, 100, 3),
               mo.LearnedMotif("motif2", "filter0", np.zeros((5, 4)), 1.0, 0, 0)]  # no sites: skipped
    known = [Motif("K1", "decoy", _ppm("CCCCGGGG") * 20), Motif("K2", "target", _ppm("CTGTAATC") * 20),
             Motif("K3", "other", _ppm("ATATATAT") * 20)]
    rows = mo.match_all(learned, known)
    assert [r["motif"] for r in rows] == ["motif1"] * 3 and [r["rank"] for r in rows] == [1, 2, 3]
    best = rows[0]
    assert (best["known_id"], best["known_name"], best["offset"], best["strand"]) == ("K2", "target", 3, "-")
    assert best["score"] > rows[1]["score"] >= rows[2]["score"]
    assert len(mo.match_all(learned, known, top=1)) == 1


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
    assert lines[0][:7] == ["motif", "rank", "known_id", "known_name", "score", "offset", "strand"]
    n_known = len(read_motifs(KNOWN))
    assert [r[0] for r in lines[1:]] == ["motif1"] * n_known + ["motif2"] * n_known  # importance order
    assert [int(r[1]) for r in lines[1:n_known + 1]] == list(range(1, n_known + 1))
    scores = [float(r[4]) for r in lines[1:n_known + 1]]
    assert scores == sorted(scores, reverse=True)
    assert lines[1][3] in ("GABPA", "ELK1")  # CCGGAAGT is the ETS core both share
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
    ]
    for argv, name, needle in cases:
        assert mo.main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("bsp-fast motifs") and name in err and needle in err, (argv, err)


# ---------------------------------------------------------------- the built-in GABPA data set


def test_builtin_top_motif_matches_gabpa(tmp_path_factory):
    """A small cnn trained on bound vs nearby unbound bins (same GC-rich neighbourhoods, so only the motif
    separates them): its most important kernel must match GABPA (MA0062), not ELK1 (same GGAA core,
    never bound in the built-in data) or another decoy. Seeds 0-8 all pass; ~10 s on one core."""
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
    assert best["known_name"] == "GABPA" and best["known_id"].startswith("MA0062"), rows[:3]
    elk1 = max(r["score"] for r in rows if r["known_name"] == "ELK1")
    assert best["score"] > elk1
