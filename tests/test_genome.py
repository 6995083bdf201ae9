"""Genome: FASTA (plain, gzip, multi-member gzip as bgzip writes) -> cached codes; windows; bad input."""

from __future__ import annotations

import gzip
import json
import os
import pickle

import numpy as np
import pytest

from bsp_fast.data import Genome
from bsp_fast.data import genome as genome_mod
from bsp_fast.data.windows import codes_ref, one_hot_ref

LUT = {c: i for i, c in enumerate("ACGTN")}


def _random_seq(rng, n):
    s = np.array(list("ACGTNacgtnRYKM"))[rng.integers(0, 14, size=n)]
    return "".join(s)


def _codes_of(seq):
    return np.array([LUT.get(c.upper(), 4) for c in seq], dtype=np.uint8)


def _write_fasta(path, records, width=60, compress=None):
    parts = []
    for name, seq in records:
        parts.append(f">{name} some description\n")
        for i in range(0, len(seq), width):
            parts.append(seq[i : i + width] + "\n")
    text = "".join(parts).encode()
    if compress == "gzip":
        text = gzip.compress(text)
    elif compress == "bgzip":  # multi-member gzip, as bgzip writes it
        text = b"".join(gzip.compress(text[i : i + 1000]) for i in range(0, len(text), 1000))
    path.write_bytes(text)
    return path


@pytest.fixture
def records():
    rng = np.random.default_rng(0)
    return [("chr1", _random_seq(rng, 3001)), ("chr2", _random_seq(rng, 59)), ("chrM", _random_seq(rng, 777))]


@pytest.mark.parametrize("compress,width", [(None, 60), (None, 7), ("gzip", 80), ("bgzip", 50)])
def test_encode_roundtrip(tmp_path, records, compress, width):
    fa = _write_fasta(tmp_path / "g.fa", records, width, compress)
    g = Genome(fa, cache_dir=tmp_path / "cache")
    assert g.chromosomes == [(n, len(s)) for n, s in records]
    for name, seq in records:
        np.testing.assert_array_equal(np.asarray(g.array(name)), _codes_of(seq))
    assert g.chrom_id("chr2") == 1 and "chrM" in g and len(g) == 3


def test_small_chunks_split_headers_and_lines(tmp_path, records, monkeypatch):
    import bsp_fast.data.fasta as fasta

    monkeypatch.setattr(fasta, "CHUNK", 13)  # headers and lines cut across chunk boundaries
    fa = _write_fasta(tmp_path / "g.fa", records, 11)
    g = Genome(fa, cache_dir=tmp_path / "cache")
    for name, seq in records:
        np.testing.assert_array_equal(np.asarray(g.array(name)), _codes_of(seq))


def test_windows_match_reference(tmp_path, records):
    g = Genome(_write_fasta(tmp_path / "g.fa", records), cache_dir=tmp_path / "cache")
    rng = np.random.default_rng(1)
    B, L = 200, 100
    ids = rng.integers(0, 3, size=B)
    starts = rng.integers(-120, g.lengths[ids] + 20)
    strand = rng.choice([1, -1], size=B)
    names = np.array(g.names)[ids]
    c = g.codes(names, starts, L, strand)
    np.testing.assert_array_equal(c, codes_ref(g.data, g.offsets, g.lengths, ids, starts, L, strand))
    np.testing.assert_array_equal(g.codes(ids, starts, L, strand), c)
    oh = g.one_hot(list(names), starts, L, strand)
    np.testing.assert_array_equal(oh, one_hot_ref(g.data, g.offsets, g.lengths, ids, starts, L, strand))
    out = np.empty((B, L), np.uint8)
    assert g.codes(ids, starts, L, strand, out=out) is out
    # one chromosome for all rows, strand as +/- strings
    np.testing.assert_array_equal(g.codes("chr1", [5, 6], 10, ["+", "-"]),
                                  g.codes([0, 0], [5, 6], 10, [1, -1]))
    assert g.sequence("chr2", 57, 62) == "".join("ACGTN"[x] for x in _codes_of(records[1][1][57:])) + "NNN"


def test_sequence_reverse_complement(tmp_path):
    g = Genome(_write_fasta(tmp_path / "g.fa", [("a", "AACGNTt")]), cache_dir=tmp_path / "c")
    assert g.sequence("a", 0, 7) == "AACGNTT"
    assert g.sequence("a", 0, 7, strand=-1) == "AANCGTT"
    assert g.sequence("a", -2, 3, strand=-1) == "GTTNN"


def test_bad_window_arguments(tmp_path, records):
    g = Genome(_write_fasta(tmp_path / "g.fa", records), cache_dir=tmp_path / "cache")
    with pytest.raises(KeyError, match="chrX.*chr1"):
        g.codes(["chrX"], [0], 10)
    with pytest.raises(IndexError):
        g.codes([3], [0], 10)
    with pytest.raises(ValueError, match="strand"):
        g.codes([0, 1], [0, 0], 10, [1, 0])
    with pytest.raises(ValueError, match="starts"):
        g.codes([0, 1], [0], 10)
    with pytest.raises(TypeError):
        g.codes([0], [0.5], 10)


def test_cache_is_reused_and_keyed(tmp_path, records, monkeypatch):
    fa = _write_fasta(tmp_path / "g.fa", records)
    g = Genome(fa, cache_dir=tmp_path / "cache")
    calls = []
    real = genome_mod.encode_fasta
    monkeypatch.setattr(genome_mod, "encode_fasta", lambda *a, **k: calls.append(1) or real(*a, **k))
    Genome(fa, cache_dir=tmp_path / "cache")
    assert calls == []  # mapped, not re-encoded
    assert isinstance(g.data, np.memmap) and not g.data.flags.writeable
    # a changed file (size and mtime) is re-encoded
    _write_fasta(fa, [("x", "ACGT" * 10)])
    os.utime(fa, ns=(1, 1))
    g2 = Genome(fa, cache_dir=tmp_path / "cache")
    assert calls == [1] and g2.chromosomes == [("x", 40)]
    g3 = pickle.loads(pickle.dumps(g2))
    assert g3.chromosomes == g2.chromosomes and calls == [1]


def test_killed_encode_leaves_no_valid_cache(tmp_path, records, monkeypatch):
    fa = _write_fasta(tmp_path / "g.fa", records)
    Genome(fa, cache_dir=tmp_path / "cache")
    d = next((tmp_path / "cache").iterdir())

    # an interrupted re-encode: index removed, codes half written -> next open re-encodes
    os.remove(d / "index.json")
    (d / "codes.u8").write_bytes(b"\x00" * 10)
    g = Genome(fa, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(np.asarray(g.array("chr1")), _codes_of(records[0][1]))

    # a truncated code file under a valid-looking index is not trusted either
    with open(d / "codes.u8", "r+b") as f:
        f.truncate(100)
    g = Genome(fa, cache_dir=tmp_path / "cache")
    assert g.data.shape[0] == sum(len(s) for _, s in records)

    # temp files of a killed (-9) encode are removed by the next encode
    os.remove(d / "index.json")
    (d / "codes.u8.tmp.99999").write_bytes(b"\x01" * 50)
    Genome(fa, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in d.iterdir()) == [".lock", "codes.u8", "index.json"]

    # an exception mid-encode (e.g. KeyboardInterrupt) leaves no files behind
    import bsp_fast.data.fasta as fasta

    def boom(*a, **k):
        raise KeyboardInterrupt

    os.remove(d / "index.json")
    monkeypatch.setattr(fasta, "_encoder", lambda use_ref: boom)
    with pytest.raises(KeyboardInterrupt):
        Genome(fa, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in d.iterdir()) == [".lock", "codes.u8"]  # no index -> not valid


BAD = [
    (b"ACGT\n>chr1\nAC\n", "g.fa:1:.*before the first '>' header"),
    (b"hello world\n", "g.fa:1:.*before the first '>' header"),
    (b"xyz\n", "g.fa:1:.*invalid character 'x' before the first"),
    (b">chr1\n>chr2\nACGT\n", "g.fa:1:.*empty record 'chr1'"),
    (b">chr1\nACGT\n>chr2\n", "g.fa:3:.*empty record 'chr2'"),
    (b">chr1\nACGT\n>chr1\nAC\n", "g.fa:3:.*duplicate sequence name 'chr1' \\(first at line 1\\)"),
    (b">chr1\nACGT\nAC-GT\n", "g.fa:3:.*invalid character '-' in record 'chr1'"),
    (b">chr1\nACGT\nACUG\n", "g.fa:3:.*invalid character 'U'"),
    (b">\nACGT\n", "g.fa:1:.*no sequence name"),
    (b"", "g.fa: no FASTA records"),
    (b"\n\n", "g.fa: no FASTA records"),
]


@pytest.mark.parametrize("text,match", BAD)
def test_bad_fasta(tmp_path, text, match):
    (tmp_path / "g.fa").write_bytes(text)
    with pytest.raises(ValueError, match=match):
        Genome(tmp_path / "g.fa", cache_dir=tmp_path / "cache")
    left = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left == [".lock"]


def test_truncated_gzip(tmp_path, records):
    fa = _write_fasta(tmp_path / "g.fa.gz", records, compress="gzip")
    data = fa.read_bytes()
    fa.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="g.fa.gz:\\d+: truncated or corrupt gzip"):
        Genome(fa, cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [".lock"]


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="nope.fa"):
        Genome(tmp_path / "nope.fa", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError):
        Genome(tmp_path / "nope.fa", cache_dir=tmp_path / "cache")


def test_index_contents(tmp_path, records):
    fa = _write_fasta(tmp_path / "g.fa", records)
    g = Genome(fa, cache_dir=tmp_path / "cache")
    idx = json.loads((g.cache_path / "index.json").read_text())
    assert idx["key"]["path"] == str(fa.resolve()) and idx["key"]["size"] == fa.stat().st_size
    assert idx["offsets"] == [0, 3001, 3060]


def test_concurrent_opens_encode_once(tmp_path, records, monkeypatch):
    import threading

    fa = _write_fasta(tmp_path / "g.fa", records)
    calls = []
    real = genome_mod.encode_fasta
    monkeypatch.setattr(genome_mod, "encode_fasta", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = []
    threads = [threading.Thread(target=lambda: got.append(Genome(fa, cache_dir=tmp_path / "c"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and calls == [1]
    assert all(g.chromosomes == got[0].chromosomes for g in got)


def test_package_exports():
    import bsp_fast.data as d

    for name in ("Genome", "BinLabels", "LabelTrack", "read_dream_labels", "labels_from_peaks"):
        assert name in d.__all__ and getattr(d, name) is not None
    with pytest.raises(AttributeError):
        d.no_such_name  # noqa: B018


def test_sigkill_mid_encode(tmp_path, records):
    """A process killed (-9) while encoding leaves nothing that loads; the next open re-encodes."""
    import signal
    import subprocess
    import sys
    import time

    fa = _write_fasta(tmp_path / "g.fa", records, width=10)
    child = (
        "import time, bsp_fast.data.fasta as f\n"
        "f.CHUNK = 64\n"
        "real = f._encoder(False)\n"
        "def slow(*a):\n"
        "    time.sleep(0.01)\n"
        "    return real(*a)\n"
        "f._encoder = lambda use_ref: slow\n"
        f"from bsp_fast.data import Genome\nGenome({str(fa)!r}, cache_dir={str(tmp_path / 'cache')!r})\n"
    )
    p = subprocess.Popen([sys.executable, "-c", child], cwd=tmp_path)  # not the checkout: import the installed package
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not list((tmp_path / "cache").rglob("codes.u8.tmp.*")):
            time.sleep(0.02)
        time.sleep(0.1)
        assert p.poll() is None, "the child finished before it could be killed"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    d = next((tmp_path / "cache").iterdir())
    assert not (d / "index.json").exists() and list(d.glob("codes.u8.tmp.*"))
    g = Genome(fa, cache_dir=tmp_path / "cache")
    for name, seq in records:
        np.testing.assert_array_equal(np.asarray(g.array(name)), _codes_of(seq))
    assert not list(d.glob("*.tmp.*"))
