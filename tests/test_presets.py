"""The thesis-small preset's data: motif-free negatives on both strands, positive fraction, determinism."""

import numpy as np
import pytest

from bsp_fast.presets import PRESETS, contains_any, thesis_motifs, thesis_small
from bsp_fast.seqsets import decode, encode


def test_contains_any_reads_both_strands():
    seq = encode("TTTTTTTTACTTCCGGTTTTTTTT")  # ACTTCCGG = reverse complement of CCGGAAGT
    codes = np.stack([seq, encode("T" * len(seq))])
    assert contains_any(codes, ["CCGGAAGT"]).tolist() == [True, False]
    assert contains_any(codes, ["CCGGAAGT"], both_strands=False).tolist() == [False, False]
    assert contains_any(codes, ["CCGGAAGT" * 5]).tolist() == [False, False]  # longer than the sequences


def test_negatives_are_motif_free_on_both_strands_and_positives_carry_one():
    motifs = thesis_motifs()
    pos, neg, starts = thesis_small(n=2000, seed=3)
    assert not contains_any(neg, motifs, both_strands=True).any()
    assert contains_any(pos, motifs, both_strands=False).all()
    # each positive holds its instance inside the 40 bp region (flank 20 on both sides)
    for p, s in zip(pos[:50], starts[:50]):
        assert 20 <= s and any(decode(p[s:s + len(m)]) == m and s + len(m) <= 60 for m in set(motifs))
    assert pos.max() <= 3 and neg.max() <= 3  # plain A/C/G/T, no N


@pytest.mark.parametrize("n, fraction", [(1000, 0.1), (500, 0.3)])
def test_positive_fraction_and_shapes(n, fraction):
    pos, neg, starts = thesis_small(n=n, positive_fraction=fraction, seed=0)
    assert len(pos) == round(n * fraction) and len(pos) + len(neg) == n
    assert pos.shape[1] == neg.shape[1] == 80 and starts.shape == (len(pos),)


def test_deterministic_per_seed():
    a = thesis_small(n=600, seed=7)
    b = thesis_small(n=600, seed=7)
    c = thesis_small(n=600, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_region_must_hold_the_longest_motif():
    with pytest.raises(ValueError, match="shorter than the longest motif"):
        thesis_small(n=100, length=60, flank=20)


def test_preset_definition():
    pre = PRESETS["thesis-small"]
    assert pre.model == "bigru-small"
    assert pre.target == {"auroc": 0.9997, "auprc": 0.998}
    assert pre.data["length"] == 80 and pre.data["flank"] == 20 and pre.data["positive_fraction"] == 0.1
    assert pre.train["folds"] == 5 and pre.train["focal"] == 2.0 and pre.train["balance"] is False
    assert len(thesis_motifs()) == 949
