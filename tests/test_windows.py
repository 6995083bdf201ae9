"""Cython window extraction and FASTA block encoding held to their NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

import bsp_fast_codec as _codec
from bsp_fast.data.fasta import encode_block_ref
from bsp_fast.data.windows import codes_ref, extract_codes, extract_one_hot, one_hot_ref


def _genome(rng, lengths=(1000, 37, 5000, 1)):
    lengths = np.array(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    data = rng.integers(0, 5, size=int(lengths.sum())).astype(np.uint8)
    data[100:180] = 4  # an N run
    return data, offsets, lengths


def _windows(rng, lengths, B, L):
    ids = rng.integers(0, len(lengths), size=B).astype(np.int64)
    # random positions, including windows over both ends and entirely outside
    starts = (rng.integers(-L - 5, lengths[ids] + 5)).astype(np.int64)
    strand = rng.choice(np.array([1, -1], dtype=np.int8), size=B)
    return ids, starts, strand


# 15/16/17 and 33: around the 16-base SIMD blocks and the 8-byte reverse steps
@pytest.mark.parametrize("L", [1, 7, 15, 16, 17, 33, 200, 400])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_kernels_match_reference(L, n_threads):
    rng = np.random.default_rng(L + 10 * n_threads)
    data, offs, lens = _genome(rng)
    ids, starts, strand = _windows(rng, lens, 300, L)
    # edges: exact start, exact end, just past, inside the N run
    ids[:6] = [0, 0, 0, 2, 1, 3]
    starts[:6] = [0, 1000 - L, 1000 - L + 1, 4999, -L + 1, 0]
    for st in (None, strand):
        ref = codes_ref(data, offs, lens, ids, starts, L, st)
        got = extract_codes(data, offs, lens, ids, starts, L, st, n_threads=n_threads)
        np.testing.assert_array_equal(got, ref)
        ref1 = one_hot_ref(data, offs, lens, ids, starts, L, st)
        got1 = extract_one_hot(data, offs, lens, ids, starts, L, st, n_threads=n_threads)
        np.testing.assert_array_equal(got1, ref1)
        assert got1.dtype == np.float32 and got1.shape == (300, L, 4)


def test_long_windows_and_odd_codes_match_reference():
    """Windows longer than the kernel's gather buffer (16 kB) take the row-by-row path; bytes
    that are no code (5..255, never written by the encoder) give N like the reference."""
    rng = np.random.default_rng(7)
    data, offs, lens = _genome(rng, lengths=(30000, 17000, 50))
    data[200:260] = rng.integers(5, 256, size=60)
    for L in (16385, 20001, 400):
        ids, starts, strand = _windows(rng, lens, 12, L)
        ids[:3], starts[:3] = [0, 0, 1], [0, 30000 - L, 17000 - L + 3]
        for st in (None, strand):
            np.testing.assert_array_equal(extract_codes(data, offs, lens, ids, starts, L, st),
                                          codes_ref(data, offs, lens, ids, starts, L, st))
            np.testing.assert_array_equal(extract_one_hot(data, offs, lens, ids, starts, L, st),
                                          one_hot_ref(data, offs, lens, ids, starts, L, st))


def test_reverse_complement_is_reversed_and_complemented():
    data = np.array([0, 0, 1, 2, 4, 3], dtype=np.uint8)  # AACGNT
    offs, lens = np.array([0], np.int64), np.array([6], np.int64)
    fwd = extract_codes(data, offs, lens, np.zeros(1, np.int64), np.zeros(1, np.int64), 6)
    rc = extract_codes(data, offs, lens, np.zeros(1, np.int64), np.zeros(1, np.int64), 6,
                       np.array([-1], np.int8))
    np.testing.assert_array_equal(fwd[0], [0, 0, 1, 2, 4, 3])
    np.testing.assert_array_equal(rc[0], [0, 4, 1, 2, 3, 3])  # ANCGTT
    oh = extract_one_hot(data, offs, lens, np.zeros(1, np.int64), np.array([-2], np.int64), 4,
                         np.array([-1], np.int8))
    # window NNAA -> rc TTNN
    np.testing.assert_array_equal(oh[0], [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_out_buffer_reused_and_checked():
    rng = np.random.default_rng(0)
    data, offs, lens = _genome(rng)
    ids, starts, strand = _windows(rng, lens, 16, 50)
    buf = np.full((16, 50, 4), 7, np.float32)
    got = extract_one_hot(data, offs, lens, ids, starts, 50, strand, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, one_hot_ref(data, offs, lens, ids, starts, 50, strand))
    with pytest.raises(ValueError, match="out must be"):
        extract_one_hot(data, offs, lens, ids, starts, 50, strand, out=np.empty((16, 50, 4), np.float64))


def test_encode_table():
    t = np.frombuffer(_codec.encode_table(), np.uint8)
    for s, v in zip("ACGTNacgtn", [0, 1, 2, 3, 4] * 2):
        assert t[ord(s)] == v
    for s in "RYSWKMBDHVryswkmbdhv":
        assert t[ord(s)] == 4
    for s in "XU-.*>0é":
        if ord(s) < 256:
            assert t[ord(s)] == 255


@pytest.mark.parametrize("text", [
    b"ACGT\nacgtn\nRYK\n",
    b"AC\r\nGT\r\n>chr2 x\nAA\n",
    b"ACGT\n  >notaheader\n",
    b"ACGTX\nAA",
    b"AC>GT\n",
    b"",
    b"\n\n>h\n",
    b"NNNNNNNN\n\nAC GT\tTT\n>",
])
@pytest.mark.parametrize("at_line_start", [True, False])
def test_encode_block_matches_reference(text, at_line_start):
    buf = bytearray(b"xx" + text + b"yy")
    outa = np.zeros(len(buf), np.uint8)
    outb = np.zeros(len(buf), np.uint8)
    a = _codec.encode_block(buf, 2, 2 + len(text), outa, at_line_start)
    b = encode_block_ref(buf, 2, 2 + len(text), outb, at_line_start)
    assert a == b
    np.testing.assert_array_equal(outa[: a[1]], outb[: b[1]])


def test_encode_block_random_bytes():
    rng = np.random.default_rng(1)
    alphabet = np.frombuffer(b"ACGTNacgtnRY\n\n\n\r >", np.uint8)
    for _ in range(50):
        text = bytearray(alphabet[rng.integers(0, len(alphabet), size=int(rng.integers(0, 300)))].tobytes())
        outa = np.zeros(len(text) + 1, np.uint8)
        outb = np.zeros(len(text) + 1, np.uint8)
        ls = bool(rng.integers(0, 2))
        a = _codec.encode_block(text, 0, len(text), outa, ls)
        b = encode_block_ref(text, 0, len(text), outb, ls)
        assert a == b
        np.testing.assert_array_equal(outa[: a[1]], outb[: b[1]])


def test_bad_ids_rejected_and_larger_out_buffer():
    rng = np.random.default_rng(0)
    data, offs, lens = _genome(rng)
    with pytest.raises(IndexError):
        extract_codes(data, offs, lens, np.array([4]), np.array([0]), 10)
    with pytest.raises(ValueError, match="strand"):
        extract_codes(data, offs, lens, np.array([0, 1]), np.array([0, 0]), 10, np.array([1]))
    ids, starts, strand = _windows(rng, lens, 10, 30)
    big = np.empty((64, 30), np.uint8)
    got = extract_codes(data, offs, lens, ids, starts, 30, strand, out=big)
    assert got.shape == (10, 30) and np.shares_memory(got, big)
    np.testing.assert_array_equal(got, codes_ref(data, offs, lens, ids, starts, 30, strand))


@pytest.mark.parametrize("fn, out", [("codes_into", np.zeros((3, 10), np.uint8)),
                                     ("one_hot_into", np.zeros((3, 10, 4), np.float32))])
def test_kernel_entry_points_check_their_rows(fn, out):
    """The Cython entry points refuse arrays that do not cover the batch, and row ranges outside it."""
    import bsp_fast_codec as _codec

    f = getattr(_codec, fn)
    data, offsets, lengths = np.zeros(100, np.uint8), np.array([0]), np.array([100])
    ids, starts = np.zeros(3, np.int64), np.zeros(3, np.int64)
    with pytest.raises(ValueError, match=f"{fn}: shape mismatch"):
        f(data, offsets, lengths, ids[:2], starts, None, out)
    with pytest.raises(ValueError, match=f"{fn}: shape mismatch"):
        f(data, offsets, lengths, ids, starts, None, out, 0, 4)
    with pytest.raises(ValueError, match=f"{fn}: strand shape mismatch"):
        f(data, offsets, lengths, ids, starts, np.ones(2, np.int8), out)
    f(data, offsets, lengths, ids, starts, np.ones(3, np.int8), out, 1)  # rows 1..2 only
