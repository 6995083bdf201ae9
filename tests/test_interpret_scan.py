"""interpret.scan: FIMO (memelite) hits at planted sites, both strands, any lengths, chunked scans
equal one scan, N-padding never yields hits, q-values over all tested windows; the --scan command."""

import numpy as np
import pytest

from bsp_fast.interpret.scan import HIT_COLUMNS, fimo_scan
from bsp_fast.motif_io import read_motifs
from bsp_fast.seqsets import encode, write_fasta

pytest.importorskip("memelite")

from test_interpret_matching import KNOWN  # noqa: E402


def _gabpa():
    k = next(m for m in read_motifs(KNOWN) if m.id == "MA0062.4")
    return k.id, k.probabilities(), k.consensus()


def _seqs():
    rng = np.random.default_rng(0)
    mid, ppm, cons = _gabpa()
    rc = cons[::-1].translate(str.maketrans("ACGT", "TGCA"))
    lengths = [50, 300, 37, 1000, 12]
    seqs = [rng.integers(0, 4, size=n).astype(np.uint8) for n in lengths]
    seqs[0][10:20] = encode(cons)
    seqs[1][200:210] = encode(rc)
    seqs[3][990:1000] = encode(cons)  # at the very end
    seqs[3][100:110] = 4  # an N run
    return [f"s{i}" for i in range(len(seqs))], seqs, (mid, ppm)


def test_hits_at_planted_sites_on_both_strands():
    names, seqs, motif = _seqs()
    hits = fimo_scan([motif], zip(names, seqs), threshold=1e-4)
    found = {(h["seq"], h["start"], h["end"], h["strand"]) for h in hits}
    assert {("s0", 10, 20, "+"), ("s1", 200, 210, "-"), ("s3", 990, 1000, "+")} <= found
    assert all(list(h) == list(HIT_COLUMNS) for h in hits)
    assert all(h["p_value"] < 1e-4 and h["p_value"] <= h["q_value"] <= 1 for h in hits)
    assert all(h["end"] <= len(seqs[int(h["seq"][1:])]) for h in hits)
    tests = 2 * sum(max(0, len(s) - 10 + 1) for s in seqs)  # both strands of every window
    best = min(hits, key=lambda h: h["p_value"])
    ties = sum(h["p_value"] <= best["p_value"] for h in hits)  # the planted consensus copies score alike
    assert best["q_value"] == pytest.approx(best["p_value"] * tests / ties, rel=1e-6)


def test_chunked_scan_equals_one_scan():
    names, seqs, motif = _seqs()
    one = fimo_scan([motif], zip(names, seqs), threshold=1e-3)
    # chunks of ~60 bases: records cut into pieces of 15 bases reaching 9 into the next
    many = fimo_scan([motif], zip(names, seqs), threshold=1e-3, chunk_bases=60)
    key = lambda h: (h["seq"], h["start"], h["strand"])  # noqa: E731
    assert sorted(map(key, one)) == sorted(map(key, many))
    assert all(h["end"] <= len(seqs[int(h["seq"][1:])]) for h in many)


def test_fasta_records_stream(tmp_path):
    from bsp_fast.interpret.scan import read_fasta_records

    fa = tmp_path / "x.fa"
    fa.write_text(">a desc\nACGT\nNNAC\n>b\nNNNN\n>c\n")
    recs = list(read_fasta_records(str(fa)))
    assert [r[0] for r in recs] == ["a", "b", "c"] and recs[0][1].tolist() == [0, 1, 2, 3, 4, 4, 0, 1]
    fa.write_text("ACGT\n")
    with pytest.raises(ValueError, match="expected a FASTA header"):
        list(read_fasta_records(str(fa)))


def test_scan_command(tmp_path, capsys):
    from bsp_fast import motifs as mo
    from test_motifs import _planted, _planted_cnn  # the hand-built CCGGAAGT cnn
    from bsp_fast.cv import save_final

    codes, _ = _planted(n=60)
    fa = write_fasta(tmp_path / "s.fa", [f"s{i}" for i in range(len(codes))], codes)
    ck = save_final(_planted_cnn(), tmp_path / "final.pt", {"length": 40})
    out = tmp_path / "m"
    assert mo.main(["--checkpoint", str(ck), "--fasta", str(fa), "--scan", str(fa), "--logos", "0",
                    "--out", str(out)]) == 0, capsys.readouterr().err
    rows = [line.split("\t") for line in (out / "hits.tsv").read_text().splitlines()]
    assert rows[0] == list(HIT_COLUMNS)
    planted = {f"s{i}" for i in range(1, 60, 2)}
    hit_seqs = {r[0] for r in rows[1:] if r[1] == "motif1"}
    assert len(hit_seqs & planted) >= 25 and len(hit_seqs - planted) <= 3, (len(hit_seqs & planted), hit_seqs - planted)
    assert "FIMO:" in capsys.readouterr().out
    out2 = tmp_path / "k"
    assert mo.main(["--checkpoint", str(ck), "--fasta", str(fa), "--scan", str(fa), "--known", str(KNOWN),
                    "--scan-known", "--logos", "0", "--out", str(out2)]) == 0
    assert {r.split("\t")[1] for r in (out2 / "hits.tsv").read_text().splitlines()[1:]} <= {m.id for m in read_motifs(KNOWN)}
