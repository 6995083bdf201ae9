"""bsp_fast.tracks: the TSV / bedGraph / bigWig / narrowPeak writers (no model needed)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bsp_fast import tracks
from bsp_fast.tracks import BedGraphWriter, NarrowPeakWriter, TrackError, TsvWriter, open_track, step_intervals

SIZES = [("chrA", 1_000), ("chrB", 620)]


def _grid(size, bin_size=200, step=50):
    s = np.arange(0, size - bin_size + 1, step, dtype=np.int64)
    return s, s + bin_size


def test_track_format_by_suffix(tmp_path):
    for name, fmt in (("a.tsv", "tsv"), ("a.TSV.GZ", "tsv"), ("a.bedgraph", "bedgraph"), ("a.bedGraph.gz", "bedgraph"),
                      ("a.bw", "bigwig"), ("a.bigwig", "bigwig")):
        assert tracks.track_format(tmp_path / name) == fmt
    with pytest.raises(TrackError, match="unknown output format"):
        tracks.track_format("preds.csv")


def test_step_intervals_tile_without_overlap():
    s, e = _grid(1_000)
    a, b = step_intervals(s, e, 50, 1_000)
    assert a[0] == 75 and b[0] == 125 and b[-1] == 1_000 - 75
    assert (a[1:] == b[:-1]).all() and ((a + b) // 2 == (s + e) // 2).all()


def test_narrowpeak_merges_bins_across_chunks(tmp_path):
    s, e = _grid(1_000)  # 17 bins
    p = np.zeros(s.size)
    p[[2, 3, 4]] = [0.6, 0.9, 0.5]  # overlapping bins -> one peak
    p[[8]] = 0.7                    # bin 8 starts at 400; bin 4 ends at 400: touching, merged
    p[[14]] = 0.55
    path = tmp_path / "peaks.narrowPeak"
    w = NarrowPeakWriter(path, 0.5, name="m")
    w.write("chrA", s[:3], e[:3], p[:3])   # the first peak spans the chunk boundary
    w.write("chrA", s[3:], e[3:], p[3:])
    w.write("chrB", *_grid(620), np.array([0.8, 0.1, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.9]))
    assert not path.exists()
    w.close()
    rows = [r.split("\t") for r in path.read_text().splitlines()]
    assert all(len(r) == 10 for r in rows)
    got = [(r[0], int(r[1]), int(r[2])) for r in rows]
    assert got == [("chrA", 100, 600), ("chrA", 700, 900), ("chrB", 0, 200), ("chrB", 250, 600)]
    first = rows[0]
    assert first[3] == "m_peak1" and first[4] == "900" and first[5] == "." and float(first[6]) == 0.9
    assert first[7] == "-1" and first[8] == "-1" and int(first[9]) == (150 + 350) // 2 - 100  # best bin's centre
    # the peaks cover exactly the union of the bins >= threshold
    cover = np.zeros(1_000, bool)
    for a, b in zip(s[p >= 0.5], e[p >= 0.5]):
        cover[a:b] = True
    mine = np.zeros(1_000, bool)
    for c, a, b in got:
        if c == "chrA":
            mine[a:b] = True
    assert (cover == mine).all()


def test_tsv_and_bedgraph_atomic(tmp_path):
    s, e = _grid(1_000)
    p = np.linspace(0, 1, s.size)
    target = tmp_path / "p.tsv.gz"
    target.write_text("old")
    w = TsvWriter(target)
    w.write("chrA", s, e, p)
    w.abort()  # an error midway: the old file stays, no temporary left
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with TsvWriter(target) as w:
        w.write("chrA", s, e, p)
    rows = [x.split("\t") for x in gzip.open(target, "rt").read().splitlines()]
    assert [int(r[1]) for r in rows] == s.tolist() and np.allclose([float(r[3]) for r in rows], p, atol=1e-6)
    bg = tmp_path / "p.bedgraph"
    with BedGraphWriter(bg, SIZES, name="my model", step=50) as w:
        w.write("chrA", s, e, p)
    lines = bg.read_text().splitlines()
    assert lines[0].startswith('track type=bedGraph name="my_model"')
    got = np.array([[int(x) for x in r.split("\t")[1:3]] for r in lines[1:]])
    assert (got[:, 0] == s + 75).all() and (got[:, 1] == s + 125).all()


def test_bigwig_roundtrip_and_overlap_refused(tmp_path):
    pyBigWig = pytest.importorskip("pyBigWig")
    s, e = _grid(1_000)
    p = np.linspace(0, 1, s.size)
    path = tmp_path / "p.bw"
    w = open_track(path, SIZES, name="m", step=50)
    w.write("chrA", s[:5], e[:5], p[:5])
    w.write("chrA", s[5:], e[5:], p[5:])
    w.write("chrB", *_grid(620), np.full(9, 0.25))
    w.close()
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == dict(SIZES)
    iv = bw.intervals("chrA")
    assert [(a, b) for a, b, _ in iv] == list(zip((s + 75).tolist(), (s + 125).tolist()))
    assert np.allclose([v for *_, v in iv], p, atol=1e-6)
    assert bw.values("chrB", 100, 101)[0] == pytest.approx(0.25)
    bw.close()
    w = open_track(tmp_path / "r.bw", SIZES, step=None)
    w.write("chrA", np.array([0, 100]), np.array([100, 300]), np.array([0.1, 0.2]))  # sorted, adjacent: fine
    with pytest.raises(TrackError, match="non-overlapping"):
        w.write("chrA", np.array([150]), np.array([250]), np.array([0.3]))
    w.abort()
    assert not (tmp_path / "r.bw").exists()
