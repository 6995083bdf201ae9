"""Label readers: ENCODE-DREAM TSV (plain/gzip) and BED/narrowPeak peaks -> bins; bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bsp_fast.data import BinLabels, LabelTrack, labels_from_peaks, read_dream_labels
from bsp_fast.data import labels as labels_mod

SIZES = {"chr1": 5000, "chr2": 1200, "chr10": 800}


def _dream_text(rng, cells=("K562", "H1-hESC", "liver"), sizes=SIZES, bin_size=200, step=50, crlf=False):
    rows = ["chr\tstart\tstop\t" + "\t".join(cells)]
    truth = {c: {} for c in cells}
    for chrom, n in sizes.items():
        starts = np.arange(0, n - bin_size + 1, step)
        lab = rng.choice(np.array(list("UUUUUAB")), size=(len(starts), len(cells)))
        for j, cell in enumerate(cells):
            truth[cell][chrom] = (starts, np.array([{"U": 0, "B": 1, "A": -1}[x] for x in lab[:, j]], np.int8))
        for s, row in zip(starts, lab):
            rows.append(f"{chrom}\t{s}\t{s + bin_size}\t" + "\t".join(row))
    nl = "\r\n" if crlf else "\n"
    return nl.join(rows) + nl, truth


@pytest.mark.parametrize("gz,crlf,chunk", [(False, False, None), (True, False, None), (False, True, 37), (True, False, 64)])
def test_read_dream(tmp_path, monkeypatch, gz, crlf, chunk):
    if chunk:
        monkeypatch.setattr(labels_mod, "CHUNK", chunk)  # lines split across reads
        monkeypatch.setattr(labels_mod, "_ROWS", 5)  # output blocks fill up
    text, truth = _dream_text(np.random.default_rng(0), crlf=crlf)
    p = tmp_path / ("l.tsv.gz" if gz else "l.tsv")
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    for cell in ("K562", "H1-hESC", "liver"):
        lab = read_dream_labels(p, cell, genome=SIZES)
        assert (lab.bin_size, lab.step, lab.cell) == (200, 50, cell)
        assert list(lab.tracks) == list(SIZES)
        for chrom, (s, y) in truth[cell].items():
            t = lab.tracks[chrom]
            assert isinstance(t, LabelTrack) and t.starts.dtype == np.int64 and t.labels.dtype == np.int8
            np.testing.assert_array_equal(t.starts, s)
            np.testing.assert_array_equal(t.labels, y)
    assert sum(lab.counts().values()) == len(lab) == sum(len(v[0]) for v in truth["liver"].values())


def test_no_trailing_newline_and_single_cell(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("chr\tstart\tstop\tX\nchr1\t0\t200\tB\nchr1\t50\t250\tU")
    lab = read_dream_labels(p)  # the only cell
    assert lab.cell == "X"
    np.testing.assert_array_equal(lab.tracks["chr1"].labels, [1, 0])


def test_unknown_cell_lists_available(tmp_path):
    text, _ = _dream_text(np.random.default_rng(0))
    p = tmp_path / "l.tsv"
    p.write_text(text)
    with pytest.raises(ValueError, match="no cell 'HeLa'; available: K562, H1-hESC, liver"):
        read_dream_labels(p, "HeLa")
    with pytest.raises(ValueError, match="several cells"):
        read_dream_labels(p)


H = "chr\tstart\tstop\tA1\tA2\n"
BAD_DREAM = [
    (H + "chr1\t0\t200\tU\tU\nchr1\t50\t250\tU\tX\n", 3, "label must be one letter U, A or B"),
    (H + "chr1\t0\t200\tU\tU\nchr1\t50\t250\tU\n", 3, "wrong number of tab-separated fields \\(expected 5"),
    (H + "chr1\t0\t200\tU\tU\nchr1\t50\t300\tU\tU\n", 3, "bin size 200"),
    (H + "chr1\t0\t200\tU\tU\nchr1\tx\t250\tU\tU\n", 3, "must be non-negative integers"),
    (H + "chr1\t50\t250\tU\tU\nchr1\t0\t200\tU\tU\n", 3, "sorted by start"),
    (H + "chr1\t0\t200\tU\tU\nchr1\t0\t200\tU\tU\n", 3, "sorted by start"),
    (H + "chr1\t0\t200\tU\tU\nchr1\t50\t250\tU\tU\nchr1\t75\t275\tU\tU\n", 4, "off the grid of step 50"),
    (H + "chr1\t0\t200\tU\tU\nchr2\t0\t200\tU\tU\nchr1\t50\t250\tU\tU\n", 4, "chromosome 'chr1' are not contiguous"),
    (H + "chr1\t0\t200\tU\tU\n\nchr1\t50\t250\tU\tU\n", 3, "empty line"),
    (H + "\t0\t200\tU\tU\n", 2, "chromosome name"),
]


@pytest.mark.parametrize("text,line,match", BAD_DREAM)
def test_bad_dream(tmp_path, text, line, match):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(ValueError, match=f"bad.tsv:{line}: .*{match}"):
        read_dream_labels(p, "A2")


def test_bad_dream_header_and_files(tmp_path):
    p = tmp_path / "h.tsv"
    p.write_text("chrom\tbegin\tend\tX\n")
    with pytest.raises(ValueError, match="h.tsv:1: expected a header"):
        read_dream_labels(p, "X")
    p.write_text("")
    with pytest.raises(ValueError, match="h.tsv:1: empty file"):
        read_dream_labels(p, "X")
    p.write_text(H)
    with pytest.raises(ValueError, match="no label rows"):
        read_dream_labels(p, "A1")
    with pytest.raises(ValueError, match="missing.tsv.gz"):
        read_dream_labels(tmp_path / "missing.tsv.gz", "X")


def test_truncated_gzip_labels(tmp_path):
    text, _ = _dream_text(np.random.default_rng(0), sizes={"chr1": 200_000})
    data = gzip.compress(text.encode())
    p = tmp_path / "t.tsv.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t.tsv.gz:\\d+: truncated or corrupt gzip"):
        read_dream_labels(p, "K562")


def test_validate_against_genome(tmp_path):
    p = tmp_path / "v.tsv"
    p.write_text(H + "chr1\t0\t200\tU\tU\nchr1\t50\t250\tU\tU\nchrUn\t0\t200\tU\tB\n")
    with pytest.raises(ValueError, match="v.tsv:4: labels for chromosome 'chrUn', which the genome lacks"):
        read_dream_labels(p, "A1", genome={"chr1": 1000})
    with pytest.raises(ValueError, match="v.tsv:3: bin chr1:50-250 runs past the end of chr1 \\(length 240\\)"):
        read_dream_labels(p, "A1", genome={"chr1": 240, "chrUn": 500})
    lab = read_dream_labels(p, "A1")
    lab.validate_against([("chr1", 250), ("chrUn", 200)])


def test_labels_from_peaks(tmp_path):
    bed = tmp_path / "p.narrowPeak"
    bed.write_text(
        "track name=x\n"
        "chr1\t100\t200\tp1\t0\t.\t1\t1\t1\t50\n"   # covers half of bin [100,300)? 100/200 -> yes; [50,250): 100 -> yes
        "chr1\t1000\t1060\tp2\t0\t.\t1\t1\t1\t30\n"
        "chr1\t1040\t1100\tp3\t0\t.\t1\t1\t1\t30\n"  # overlaps p2: union 1000-1100
        "chr2\t0\t99\tp4\t0\t.\t1\t1\t1\t30\n"
    )
    sizes = {"chr1": 2000, "chr2": 400}
    lab = labels_from_peaks(bed, sizes)
    assert (lab.bin_size, lab.step) == (200, 50)
    t = lab.tracks["chr1"]
    np.testing.assert_array_equal(t.starts, np.arange(0, 1801, 50))

    def brute(chrom, starts, ivs, size=200):
        cov = np.zeros(sizes[chrom], bool)
        for a, b in ivs:
            cov[a:b] = True
        return np.array([2 * cov[s : s + size].sum() >= size for s in starts], np.int8)

    np.testing.assert_array_equal(t.labels, brute("chr1", t.starts, [(100, 200), (1000, 1060), (1040, 1100)]))
    assert t.labels[t.starts == 0][0] == 1 and t.labels[t.starts == 150][0] == 0
    np.testing.assert_array_equal(lab.tracks["chr2"].labels, [0] * 5)  # 99 < 100 bases
    # settable bin size and step, relaxed peaks -> ambiguous
    rel = tmp_path / "r.bed"
    rel.write_text("chr2\t250\t260\n")
    lab = labels_from_peaks(bed, sizes, bin_size=100, step=100, relaxed=rel)
    np.testing.assert_array_equal(lab.tracks["chr2"].starts, [0, 100, 200, 300])
    np.testing.assert_array_equal(lab.tracks["chr2"].labels, [1, 0, -1, 0])  # 99 of 100 bases covered: bound
    assert isinstance(lab, BinLabels)


def test_labels_from_peaks_random_vs_brute(tmp_path):
    rng = np.random.default_rng(3)
    sizes = {"chr1": 3000}
    a = rng.integers(0, 2900, size=30)
    ivs = [(int(x), int(min(x + rng.integers(1, 300), 3000))) for x in a]
    bed = tmp_path / "p.bed.gz"
    bed.write_bytes(gzip.compress("".join(f"chr1\t{x}\t{y}\n" for x, y in ivs).encode()))
    lab = labels_from_peaks(bed, sizes, bin_size=200, step=50)
    cov = np.zeros(3000, bool)
    for x, y in ivs:
        cov[x:y] = True
    t = lab.tracks["chr1"]
    np.testing.assert_array_equal(t.labels, [int(2 * cov[s : s + 200].sum() >= 200) for s in t.starts])


@pytest.mark.parametrize("text,match", [
    ("chr1\t10\n", "p.bed:1: expected at least 3 fields"),
    ("chr1\t0\t10\nchr1\tx\t10\n", "p.bed:2: start and end must be integers"),
    ("chr1\t20\t10\n", "p.bed:1: expected 0 <= start < end"),
    ("chrZ\t0\t10\n", "p.bed:1: chromosome 'chrZ' is not in the genome"),
    ("chr1\t0\t5000\n", "p.bed:1: interval ends at 5000, past the end of chr1"),
])
def test_bad_bed(tmp_path, text, match):
    (tmp_path / "p.bed").write_text(text)
    with pytest.raises(ValueError, match=match):
        labels_from_peaks(tmp_path / "p.bed", {"chr1": 1000})


def test_error_midway_in_gzip_stops_reader_thread(tmp_path):
    import threading

    text, _ = _dream_text(np.random.default_rng(0), sizes={"chr1": 2_000_000})
    lines = text.split("\n")
    lines[30000] = lines[30000][:-1] + "Q"
    p = tmp_path / "e.tsv.gz"
    p.write_bytes(gzip.compress("\n".join(lines).encode(), compresslevel=1))
    with pytest.raises(ValueError, match="e.tsv.gz:30001: .*label must be one letter"):
        read_dream_labels(p, "liver")
    assert not [t for t in threading.enumerate() if t.name == "bsp_fast-gunzip"]
