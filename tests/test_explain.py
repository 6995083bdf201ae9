"""explain: the per-base track and the ISM map equal direct model calls; the command's files and errors."""

import json

import numpy as np
import pytest
import torch

from bsp_fast import explain
from bsp_fast.cv import save_final
from bsp_fast.models import build_model
from bsp_fast.seqsets import decode, encode

REGION, FLANK = 10, 5


@pytest.fixture(autouse=True, scope="module")  # before the module-scoped fixtures too
def _one_thread():
    """Tiny models: one torch thread is fastest, and the 2-core machine is shared (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("cnn", region=REGION, flank=FLANK, filters=8, kernel_size=5, dense=8)
    return m.eval()


def _score(model, codes: np.ndarray) -> float:
    with torch.no_grad():
        return float(model(torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8))[None])[0])


def _window(codes: np.ndarray, i: int) -> np.ndarray:
    """The model's window whose region is centred on base i, N beyond the sequence's ends."""
    width = REGION + 2 * FLANK
    start = i - REGION // 2 - FLANK
    out = np.full(width, 4, dtype=np.uint8)
    for j in range(width):
        if 0 <= start + j < len(codes):
            out[j] = codes[start + j]
    return out


def test_track_equals_direct_model_calls(model):
    codes = np.random.default_rng(1).integers(0, 4, size=37).astype(np.uint8)
    track = explain.per_base_track(model, codes, REGION, FLANK, batch_size=7)  # several batches
    assert track.shape == (37,) and track.dtype == np.float64
    for i in (0, 1, 9, 18, 30, 36):
        assert track[i] == pytest.approx(_score(model, _window(codes, i)), abs=1e-5), i


def test_ism_delta_equals_direct_mutant_scoring(model):
    codes = np.random.default_rng(2).integers(0, 4, size=REGION + 2 * FLANK).astype(np.uint8)
    codes[3] = 4  # an N position: no mutants, zero deltas
    ref, delta = explain.ism_map(model, codes)
    assert delta.shape == (len(codes), 4)
    assert ref == pytest.approx(_score(model, codes), abs=1e-5)
    assert (delta[3] == 0).all()
    assert all(delta[i, codes[i]] == 0 for i in range(len(codes)) if codes[i] < 4)
    for pos, base in ((0, 2), (7, 1), (12, 3), (19, 0)):
        if codes[pos] == base:
            continue
        mut = codes.copy()
        mut[pos] = base
        assert delta[pos, base] == pytest.approx(_score(model, mut) - ref, abs=1e-5)


def test_motif_positions_on_both_strands():
    codes = encode("AACCGGAAGTTTACTTCCGGAA")
    assert explain.motif_positions(codes, "CCGGAAGT") == [(2, 10, "+"), (12, 20, "-")]
    assert explain.motif_positions(codes, "GGGGGG") == []


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_final(model, tmp_path_factory.mktemp("ck") / "final.pt")


def test_command_writes_track_and_ism(checkpoint, model, tmp_path, capsys):
    seq = "TTGACCGGAAGTGCATGCATTACGATCGATTTTACGGATCAAGC"
    out = tmp_path / "ex"
    rc = explain.main(["--checkpoint", str(checkpoint), "--sequence", seq, "--name", "s1", "--motif", "CCGGAAGT",
                       "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    for f in ("s1.track.tsv", "s1.track.png", "s1.ism.tsv", "s1.ism.png", "summary.json"):
        assert (out / f).stat().st_size > 0, f
    rows = [line.split("\t") for line in (out / "s1.track.tsv").read_text().splitlines()]
    assert rows[0] == ["position", "base", "logit", "probability", "in_motif"] and len(rows) == len(seq) + 1
    assert "".join(r[1] for r in rows[1:]) == seq
    assert [int(r[4]) for r in rows[1:]] == [1 if 4 <= i < 12 else 0 for i in range(len(seq))]
    track = explain.per_base_track(model, encode(seq), REGION, FLANK)
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], track, rtol=1e-4, atol=1e-5)
    summary = json.loads((out / "summary.json").read_text())["records"][0]
    assert summary["motif_marks"] == [[5, 12, "+"]] and summary["length"] == len(seq)
    # ISM of the model's window at the track's peak
    ism = [line.split("\t") for line in (out / "s1.ism.tsv").read_text().splitlines()]
    assert ism[0] == ["position", "ref", "A", "C", "G", "T", "importance"] and len(ism) == REGION + 2 * FLANK + 1
    assert int(ism[1][0]) == summary["ism_start"]


def test_command_fasta_and_whole_sequence_ism(checkpoint, tmp_path, capsys):
    fa = tmp_path / "s.fa"
    fa.write_text(">a first\nACGTACGTAC\n>b\nGGGGCCCCAAAATTTTACGTACGTAC\n>c\nACGT\n")
    out = tmp_path / "ex"
    assert explain.main(["--checkpoint", str(checkpoint), "--fasta", str(fa), "--max-records", "2",
                         "--ism-on", "sequence", "--mark", "2-5", "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "a.track.png").exists() and (out / "b.ism.tsv").exists() and not (out / "c.track.tsv").exists()
    # --ism-on sequence: the whole 26 bp record is mutated
    assert len((out / "b.ism.tsv").read_text().splitlines()) == 27
    # a 10 bp record is shorter than the 20 bp window: ISM pads it to the model's minimum, keeps every base
    assert len((out / "a.ism.tsv").read_text().splitlines()) >= 11


def test_command_errors(checkpoint, tmp_path, capsys):
    wrong = tmp_path / "wrong.pt"
    torch.save({"weights": torch.zeros(3)}, wrong)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    cases = [
        (["--checkpoint", str(wrong), "--sequence", "ACGT"], str(wrong), "not a bsp_fast checkpoint"),
        (["--checkpoint", str(text), "--sequence", "ACGT"], str(text), "expected a bsp_fast checkpoint"),
        (["--checkpoint", str(tmp_path / "nope.pt"), "--sequence", "ACGT"], "nope.pt", "no such file"),
        (["--checkpoint", str(checkpoint), "--fasta", str(empty)], str(empty), "no sequences"),
        (["--checkpoint", str(checkpoint), "--sequence", "NNNN"], "--sequence", "no valid base"),
        (["--checkpoint", str(checkpoint), "--sequence", "ACXT"], "--sequence", "not a DNA base"),
        (["--checkpoint", str(checkpoint), "--sequence", "ACGTACGT", "--mark", "5-99"], "--mark", "START-END"),
        (["--checkpoint", str(checkpoint), "--sequence", "ACGT", "--motif", "AC-G"], "--motif", "expected bases"),
    ]
    for argv, name, needle in cases:
        assert explain.main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("bsp-fast explain") and name in err and needle in err, (argv, err)


@pytest.mark.parametrize("method", ["ism", "ig", "deepliftshap"])
def test_command_methods_write_npz_and_completeness(checkpoint, tmp_path, capsys, method):
    if method != "ism":
        pytest.importorskip("captum")
        pytest.importorskip("tangermeme")
    seq = "TTGACCGGAAGTGCATGCATTACGATCG"
    out = tmp_path / method
    assert explain.main(["--checkpoint", str(checkpoint), "--sequence", seq, "--name", "s1", "--method", method,
                         "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / f"s1.{method}.tsv").stat().st_size > 0 and (out / f"s1.{method}.png").stat().st_size > 0
    z = np.load(out / f"s1.{method}.npz")
    summary = json.loads((out / "summary.json").read_text())["records"][0]
    width = summary["ism_length"]
    assert z["ohe"].shape == z["attr"].shape == z["hypothetical"].shape == (1, 4, width)
    assert (z["attr"][z["ohe"] == 0] == 0).all()
    if method != "ism":
        # ig: 64-point path integral, deepliftshap: exact up to rounding (measured < 1e-3 and < 1e-6 logit)
        tol = 0.02 if method == "ig" else 1e-4
        assert abs(summary["completeness_delta"]) < tol, summary
        assert z["attr"].sum() == pytest.approx(summary["output"] - summary["reference_output"], abs=tol)
        assert "completeness delta" in capsys.readouterr().out


def test_command_method_errors(checkpoint, tmp_path, capsys):
    pytest.importorskip("captum")
    torch.manual_seed(0)
    hyb = save_final(build_model("hybrid", region=20, flank=5, filters=4, hidden=4, dense=4, head="occupancy"),
                     tmp_path / "hyb.pt")
    cases = [
        (["--checkpoint", str(checkpoint), "--sequence", "ACGTACGTAC", "--method", "shap"], "--method", "invalid choice"),
        (["--checkpoint", str(hyb), "--sequence", "ACGTACGTAC", "--method", "deepliftshap"], "FusedBiGRU",
         "use --method ig"),
    ]
    for argv, name, needle in cases:
        assert explain.main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("bsp-fast explain") and name in err and needle in err, (argv, err)
    # ig runs through the same model (FusedBiGRU, occupancy head)
    assert explain.main(["--checkpoint", str(hyb), "--sequence", "ACGTACGTACGTTTGGCCAA", "--method", "ig",
                         "--out", str(tmp_path / "ig")]) == 0, capsys.readouterr().err


def test_missing_extra_is_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    import sys

    for mod in ("captum", "captum.attr"):
        monkeypatch.setitem(sys.modules, mod, None)  # as if the interpret extra were not installed
    rc = explain.main(["--checkpoint", str(checkpoint), "--sequence", "ACGTACGTACGTACGTACGT", "--method", "ig",
                       "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "captum" in err and "bsp_fast[interpret]" in err, err
