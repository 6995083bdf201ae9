"""FASTA sequence sets: reader errors name the file and line; the centred length policy."""

import gzip

import numpy as np
import pytest

from bsp_fast.seqsets import SeqSetError, decode, default_length, encode, read_fasta_set, to_codes, write_fasta


def _read_error(tmp_path, text: str | bytes, name: str = "set.fa") -> str:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SeqSetError) as e:
        read_fasta_set(p, "--pos")
    msg = str(e.value)
    assert msg.startswith(f"--pos {p}"), msg  # the flag and the file come first
    return msg


@pytest.mark.parametrize("text, where, needle", [
    (">a\nACGT\nACGZ\n", ":3:", "'Z' is not a DNA base"),
    ("ACGT\n>a\nACGT\n", ":1:", "before the first '>' header"),
    (">a\nACGT\n>b\n>c\nGG\n", ":3:", "record 'b' is empty"),
    (">a\nACGT\n\n>b\nNNRY\nN-N\n", ":4:", "record 'b' has no valid base"),
    (">a\nAC GT\n>b\nAC*T\n", ":4:", "'*' is not a DNA base"),
])
def test_errors_name_file_and_line(tmp_path, text, where, needle):
    msg = _read_error(tmp_path, text)
    assert where in msg and needle in msg, msg


def test_errors_without_a_line(tmp_path):
    assert "no sequences" in _read_error(tmp_path, "")
    assert "no sequences" in _read_error(tmp_path, "\n\n;comment only\n")
    assert "unreadable" in _read_error(tmp_path, b"\x1f\x8b not really gzip", "bad.fa.gz")
    with pytest.raises(SeqSetError, match="no such file"):
        read_fasta_set(tmp_path / "missing.fa")
    with pytest.raises(SeqSetError, match="not a regular file"):
        read_fasta_set(tmp_path)


def test_reader_accepts_case_iupac_gaps_rna_gzip_and_comments(tmp_path):
    text = ">r1 desc\nacgu\n;a comment\nRYN-.\r\n\n>r1\nGG T\n"
    p = tmp_path / "ok.fa"
    p.write_text(text)
    ss = read_fasta_set(p)
    assert ss.names == ["r1", "r1"] and len(ss) == 2
    assert [decode(s) for s in ss.seqs] == ["ACGTNNNNN", "GGT"]
    assert ss.lengths.tolist() == [9, 3]
    gz = tmp_path / "ok.fa.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert [decode(s) for s in read_fasta_set(gz).seqs] == ["ACGTNNNNN", "GGT"]


def test_encode_rejects_non_bases():
    assert decode(encode("acgtNry")) == "ACGTNNN"
    with pytest.raises(ValueError, match="'X' is not a DNA base"):
        encode("ACXT")


def test_length_policy_centres_trims_and_pads():
    seqs = [encode(s) for s in ("AACCGGTT", "ACGTACGTA", "GG", "CGT", "ACGT")]
    out = to_codes(seqs, 4)
    assert out.dtype == np.uint8 and out.shape == (5, 4)
    # even excess: equal trim; odd excess: the extra base goes on the right
    # shorter: N padding on both sides, the odd extra N on the right
    assert [decode(r) for r in out] == ["CCGG", "GTAC", "NGGN", "CGTN", "ACGT"]
    assert (to_codes(seqs[2:3], 4)[0] == [4, 2, 2, 4]).all()  # N is code 4 (an all-zero one-hot row)
    with pytest.raises(ValueError):
        to_codes(seqs, 0)


def test_default_length_is_the_longest_of_all_sets(tmp_path):
    a = write_fasta(tmp_path / "a.fa", ["x", "y"], [encode("ACGT"), encode("ACGTACG")])
    b = write_fasta(tmp_path / "b.fa", ["z"], [encode("A" * 100)], width=30)
    sa, sb = read_fasta_set(a), read_fasta_set(b)
    assert decode(sb.seqs[0]) == "A" * 100  # wrapped lines are joined
    assert default_length(sa, sb) == 100
    assert default_length(sa) == 7
    padded = to_codes(sa.seqs + sb.seqs, default_length(sa, sb))
    assert decode(padded[2]) == "A" * 100  # the longest sequence is never trimmed
