"""JASPAR / MEME motif reading: the shipped file, round trips, and errors naming file and line."""

from __future__ import annotations

import numpy as np
import pytest

from bsp_fast.motif_io import Motif, MotifFormatError, motif_dict, read_jaspar, read_meme, read_motifs, write_meme
from bsp_fast.data.synthetic import motif_path


def test_shipped_jaspar():
    motifs = read_jaspar(motif_path())
    ids = [m.id for m in motifs]
    assert ids == ["MA0062.3", "MA0062.4", "MA0028.3", "MA0095.4", "MA0079.5", "MA0506.3"]
    by = motif_dict(motifs)
    gabpa = by["MA0062.4"]
    assert gabpa.name == "GABPA" and gabpa.kind == "counts" and gabpa.matrix.shape == (10, 4)
    # first column of MA0062.4 is A 7639 C 41398 G 6989 T 9453 (columns A, C, G, T)
    assert np.array_equal(gabpa.matrix[0], [7639, 41398, 6989, 9453])
    assert gabpa.consensus() == "CACTTCCTGT" and gabpa.reverse_complement().consensus() == "ACAGGAAGTG"
    assert by["ELK1"].consensus() == "ACCGGAAGT"
    assert by["GABPA"].id == "MA0062.3"  # first of equal names
    p = gabpa.probabilities()
    assert np.allclose(p.sum(axis=1), 1)
    lo = gabpa.log_odds()
    expected = np.log2((52260 + 0.8) / (gabpa.matrix[1].sum() + 4 * 0.8) / 0.25)  # pseudocount 0.8 per cell
    assert lo.shape == (10, 4) and lo[1, 0] == pytest.approx(expected)
    assert by["SP1"].matrix[0, 0] == pytest.approx(1.05485)  # fractional counts are kept


def test_meme_round_trip_and_detection(tmp_path):
    motifs = read_jaspar(motif_path())
    path = tmp_path / "m.meme"
    write_meme(motifs, path)
    back = read_motifs(path)
    assert [m.id for m in back] == [m.id for m in motifs]
    assert [m.name for m in back] == [m.name for m in motifs]
    for a, b in zip(motifs, back):
        assert b.kind == "probabilities"
        assert np.allclose(a.probabilities(), b.probabilities(), atol=1e-5)
    assert read_motifs(motif_path())[0].kind == "counts"


def test_meme_without_width_and_with_comments(tmp_path):
    path = tmp_path / "x.meme"
    path.write_text(
        "MEME version 5\n\nALPHABET= ACGT\n\nstrands: + -\n\n"
        "MOTIF one\nletter-probability matrix: alength= 4 nsites= 7 E= 1e-3\n"
        " 0.25 0.25 0.25 0.25\n1 0 0 0\n\nURL http://example\n"
        "MOTIF two TWO\n\nletter-probability matrix: alength= 4 w= 1\n0.1 0.2 0.3 0.4\n"
    )
    a, b = read_meme(path)
    assert a.id == "one" and a.name == "one" and a.matrix.shape == (2, 4) and a.nsites == 7
    assert b.name == "TWO" and np.allclose(b.matrix, [[0.1, 0.2, 0.3, 0.4]])


def test_bare_pfm(tmp_path):
    path = tmp_path / "x.pfm"
    path.write_text(">MA9999.1 FOO\n1 2 3\n4 5 6\n7 8 9\n10 11 12\n")
    (m,) = read_jaspar(path)
    assert m.id == "MA9999.1" and m.name == "FOO" and np.array_equal(m.matrix[:, 1], [4, 5, 6])
    path.write_text("1 2\n3 4\n5 6\n7 8\n")
    (m,) = read_jaspar(path)
    assert m.id == "x" and m.matrix.shape == (2, 4)


@pytest.mark.parametrize(
    "text, line, message",
    [
        (">M1 A\nA [ 1 2 ]\nC [ 1 2 ]\nG [ 1 2 ]\n", 1, "expected 4 rows"),
        (">M1 A\nA [ 1 2 ]\nC [ 1 2 ]\nG [ 1 2 3 ]\nT [ 1 2 ]\n", 4, "3 columns"),
        (">M1 A\nA [ 1 2 ]\nC [ 1 2 ]\nC [ 1 2 ]\nT [ 1 2 ]\n", 2, "A, C, G and T once each"),
        (">M1 A\nA [ 1 x ]\n", 2, "expected"),
        (">M1 A\nA [ 1 2 ]\nC [ 1 2 ]\nG [ 1 2 ]\nT [ 1 2 ]\nA [ 1 2 ]\n", 6, "more than 4 rows"),
        (">\n", 1, "empty motif header"),
        (">M1 A\nA [ 0 2 ]\nC [ 0 2 ]\nG [ 0 2 ]\nT [ 0 2 ]\n", 1, "column 1 has no counts"),
    ],
)
def test_jaspar_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.jaspar"
    path.write_text(text)
    with pytest.raises(MotifFormatError, match=message) as info:
        read_jaspar(path)
    assert str(info.value).startswith(f"{path}:{line}:")
    assert info.value.line == line


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("MEME version 4\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n", 2, "only the DNA alphabet"),
        ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.5 0.5 0 0\n", 4, "file ended after 1 rows"),
        ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.5 0.5 0 0\n0.5 0.5\n", 5, "expected 4 probabilities"),
        ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 1\n0.5 0.6 0 0\n", 4, "sum to 1"),
        ("MEME version 4\nMOTIF a\nMOTIF b\n", 2, "no letter-probability matrix"),
        ("MEME version 4\nletter-probability matrix: w= 1\n0.25 0.25 0.25 0.25\n", 2, "before any 'MOTIF'"),
        ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 20 w= 1\n", 3, "alength=20"),
    ],
)
def test_meme_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.meme"
    path.write_text(text)
    with pytest.raises(MotifFormatError, match=message) as info:
        read_meme(path)
    assert str(info.value).startswith(f"{path}:{line}:")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jaspar"):
        read_jaspar(tmp_path / "nope.jaspar")
    empty = tmp_path / "empty.meme"
    empty.write_text("MEME version 4\n")
    with pytest.raises(MotifFormatError, match="no 'MOTIF'"):
        read_meme(empty)
    empty.write_text("# nothing\n")
    with pytest.raises(MotifFormatError, match="no motif found"):
        read_jaspar(empty)


def test_motif_validation():
    with pytest.raises(ValueError, match=r"\[length, 4\]"):
        Motif("x", "x", np.ones((3, 5)))
    with pytest.raises(ValueError, match="negative"):
        Motif("x", "x", -np.ones((3, 4)))
    m = Motif("x", "x", np.array([[0.5, 0.5, 0, 0]]), kind="probabilities", nsites=10)
    assert np.allclose(m.probabilities(pseudocount=1.0), np.array([[6, 6, 1, 1]]) / 14)
