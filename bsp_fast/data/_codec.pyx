# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the data layer (the NumPy references are in ``windows.py`` and ``fasta.py``).

- ``encode_block``: FASTA sequence bytes -> uint8 codes (A0 C1 G2 T3 N4), stopping at a header line
  or at the first byte that is no base.
- ``codes_into`` / ``one_hot_into``: batch window extraction from one flat code array (all
  chromosomes end to end) with per-chromosome offsets and lengths; N padding past either end;
  reverse complement per row. They release the GIL and work on a row range ``[b0, b1)``, so a Python
  thread pool can split a batch across cores without a second OpenMP runtime next to torch's.
- ``parse_dream_block``: ENCODE-DREAM label rows -> (starts, labels) of one chromosome.

Every function works on a byte range and returns a status instead of raising, so the Python caller
(which knows the file name and line numbers) writes the error message.
"""

from libc.stdint cimport int8_t, int64_t, uint8_t
from libc.string cimport memchr, memcmp, memcpy, memset

# ----------------------------------------------------------------------------------------------
# tables

cdef enum:
    SKIP = 5        # '\r', ' ', '\t' inside sequence lines: ignored
    INVALID = 255

cdef uint8_t ENC[256]
cdef uint8_t COMP[256]
cdef float ONEHOT[256 * 4]
cdef float ONEHOT_RC[256 * 4]


cdef int _init_tables() except -1:
    cdef int i, ch
    for i in range(256):
        ENC[i] = INVALID
        COMP[i] = 4
    for i in range(256 * 4):
        ONEHOT[i] = 0.0
        ONEHOT_RC[i] = 0.0
    for ch, v in zip(list(b"ACGTN"), range(5)):
        ENC[ch] = v
        ENC[ch + 32] = v
    # IUPAC ambiguity codes -> N
    for ch in list(b"RYSWKMBDHVryswkmbdhv"):
        ENC[ch] = 4
    ENC[13] = SKIP
    ENC[32] = SKIP
    ENC[9] = SKIP
    COMP[0] = 3
    COMP[1] = 2
    COMP[2] = 1
    COMP[3] = 0
    for i in range(4):
        ONEHOT[i * 4 + i] = 1.0
        ONEHOT_RC[i * 4 + (3 - i)] = 1.0
    return 0


_init_tables()


def encode_table():
    """The 256-entry byte -> code table (255 = not a base, 5 = whitespace to skip)."""
    return bytes([ENC[i] for i in range(256)])


# ----------------------------------------------------------------------------------------------
# FASTA encoding

def encode_block(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, uint8_t[::1] out,
                 bint at_line_start):
    """Encode the sequence bytes ``buf[pos:end]`` into ``out[0:]`` (``len(out) >= end - pos``).

    Newlines are counted, '\\r', ' ' and '\\t' skipped. Stops at a '>' that starts a line
    (status 1) or at a byte that is no base (status 2); status 0: the range was consumed.
    Returns ``(pos, n_out, n_newlines, status, at_line_start)`` where ``pos`` is where it stopped.

    Each line is first encoded by a branch-free loop; only a line holding something other than
    bases (a header, '\\r', an invalid byte) goes through the byte-by-byte state machine.
    """
    cdef Py_ssize_t i = pos, n = 0, nl = 0, k, seg, seg2
    cdef int status = 0
    cdef bint ls = at_line_start
    cdef uint8_t c, v, bad
    cdef const uint8_t* p
    cdef const uint8_t* nlp
    cdef uint8_t* o
    if end > buf.shape[0] or pos < 0 or end - pos > out.shape[0]:
        raise ValueError("encode_block: range out of bounds")
    if end <= pos:
        return pos, 0, 0, 0, at_line_start
    p = &buf[0]
    o = &out[0]
    with nogil:
        while i < end:
            nlp = <const uint8_t*>memchr(p + i, 10, end - i)
            seg = (nlp - p) if nlp != NULL else end
            # fast path: a line of bases only (a final '\\r' of a CRLF line skipped)
            seg2 = seg - 1 if (seg > i and p[seg - 1] == 13) else seg
            bad = 0
            for k in range(seg2 - i):
                v = ENC[p[i + k]]
                o[n + k] = v
                bad |= (v > 4)
            if not bad:
                if seg2 > i:
                    ls = False
                n += seg2 - i
                i = seg
            else:
                # slow path over this line (no '\\n' in [i, seg))
                while i < seg:
                    c = p[i]
                    v = ENC[c]
                    if v < 5:
                        o[n] = v
                        n += 1
                        ls = False
                    elif v == SKIP:
                        pass
                    elif c == 62 and ls:
                        status = 1
                        break
                    else:
                        status = 2
                        break
                    i += 1
                if status != 0:
                    break
            if nlp != NULL:
                nl += 1
                ls = True
                i += 1
    return i, n, nl, status, ls


# ----------------------------------------------------------------------------------------------
# windows

cdef inline void _clip(int64_t s, int64_t clen, Py_ssize_t L, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    # in-chromosome part of the window [s, s + L): window indices [lo, hi)
    cdef int64_t a = 0, b = L
    if s < 0:
        a = -s
    if a > L:
        a = L
    if clen - s < b:
        b = clen - s
    if b < a:
        b = a
    lo[0] = <Py_ssize_t>a
    hi[0] = <Py_ssize_t>b


cdef void _codes_rows(const uint8_t* data, const int64_t* offs, const int64_t* lens,
                      const int64_t* cid, const int64_t* starts, const int8_t* strand,
                      Py_ssize_t L, uint8_t* out, Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    cdef Py_ssize_t b, i, lo, hi
    cdef int64_t c, s
    cdef const uint8_t* src
    cdef uint8_t* row
    for b in range(b0, b1):
        c = cid[b]
        s = starts[b]
        _clip(s, lens[c], L, &lo, &hi)
        src = data + offs[c] + s
        row = out + b * L
        if strand == NULL or strand[b] >= 0:
            if lo > 0:
                memset(row, 4, lo)
            if hi > lo:
                memcpy(row + lo, src + lo, hi - lo)
            if L > hi:
                memset(row + hi, 4, L - hi)
        else:
            # row[L-1-i] = comp(src[i]); padding i < lo -> rows L-lo..L-1, i >= hi -> rows 0..L-hi-1
            if L > hi:
                memset(row, 4, L - hi)
            for i in range(lo, hi):
                row[L - 1 - i] = COMP[src[i]]
            if lo > 0:
                memset(row + L - lo, 4, lo)


cdef void _one_hot_rows(const uint8_t* data, const int64_t* offs, const int64_t* lens,
                        const int64_t* cid, const int64_t* starts, const int8_t* strand,
                        Py_ssize_t L, float* out, Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    cdef Py_ssize_t b, i, lo, hi
    cdef int64_t c, s
    cdef const uint8_t* src
    cdef float* row
    cdef float* r
    for b in range(b0, b1):
        c = cid[b]
        s = starts[b]
        _clip(s, lens[c], L, &lo, &hi)
        src = data + offs[c] + s
        row = out + b * L * 4
        if strand == NULL or strand[b] >= 0:
            if lo > 0:
                memset(row, 0, lo * 4 * sizeof(float))
            r = row + lo * 4
            for i in range(lo, hi):
                memcpy(r, &ONEHOT[src[i] * 4], 4 * sizeof(float))
                r += 4
            if L > hi:
                memset(row + hi * 4, 0, (L - hi) * 4 * sizeof(float))
        else:
            if L > hi:
                memset(row, 0, (L - hi) * 4 * sizeof(float))
            r = row + (L - 1 - lo) * 4
            for i in range(lo, hi):
                memcpy(r, &ONEHOT_RC[src[i] * 4], 4 * sizeof(float))
                r -= 4
            if lo > 0:
                memset(row + (L - lo) * 4, 0, lo * 4 * sizeof(float))


def codes_into(const uint8_t[::1] data, const int64_t[::1] offsets, const int64_t[::1] lengths,
               const int64_t[::1] chrom_ids, const int64_t[::1] starts, strand,
               uint8_t[:, ::1] out, Py_ssize_t b0=0, Py_ssize_t b1=-1):
    """Rows ``[b0, b1)`` of ``out[B, L]`` <- windows (validated by the caller: ids in range).

    ``strand``: None or an int8 array (negative = reverse complement). Releases the GIL.
    """
    cdef Py_ssize_t B = out.shape[0], L = out.shape[1]
    cdef const int8_t[::1] st
    cdef const int8_t* sp = NULL
    if b1 < 0:
        b1 = B
    if chrom_ids.shape[0] < B or starts.shape[0] < B or b0 < 0 or b1 > B:
        raise ValueError("codes_into: shape mismatch")
    if strand is not None:
        st = strand
        if st.shape[0] < B:
            raise ValueError("codes_into: strand shape mismatch")
        if B > 0:
            sp = &st[0]
    if b1 <= b0 or L == 0:
        return
    with nogil:
        _codes_rows(&data[0], &offsets[0], &lengths[0], &chrom_ids[0], &starts[0], sp, L,
                    &out[0, 0], b0, b1)


def one_hot_into(const uint8_t[::1] data, const int64_t[::1] offsets, const int64_t[::1] lengths,
                 const int64_t[::1] chrom_ids, const int64_t[::1] starts, strand,
                 float[:, :, ::1] out, Py_ssize_t b0=0, Py_ssize_t b1=-1):
    """Rows ``[b0, b1)`` of ``out[B, L, 4]`` (float32, A C G T columns, N = zero row)."""
    cdef Py_ssize_t B = out.shape[0], L = out.shape[1]
    cdef const int8_t[::1] st
    cdef const int8_t* sp = NULL
    if b1 < 0:
        b1 = B
    if out.shape[2] != 4:
        raise ValueError("one_hot_into: out must be [B, L, 4]")
    if chrom_ids.shape[0] < B or starts.shape[0] < B or b0 < 0 or b1 > B:
        raise ValueError("one_hot_into: shape mismatch")
    if strand is not None:
        st = strand
        if st.shape[0] < B:
            raise ValueError("one_hot_into: strand shape mismatch")
        if B > 0:
            sp = &st[0]
    if b1 <= b0 or L == 0:
        return
    with nogil:
        _one_hot_rows(&data[0], &offsets[0], &lengths[0], &chrom_ids[0], &starts[0], sp, L,
                      &out[0, 0, 0], b0, b1)


# ----------------------------------------------------------------------------------------------
# ENCODE-DREAM labels

cdef inline int _parse_int(const uint8_t* p, const uint8_t* e, int64_t* v) noexcept nogil:
    cdef int64_t x = 0
    cdef int nd = 0
    if p >= e:
        return 0
    while p < e:
        if p[0] < 48 or p[0] > 57 or nd >= 18:
            return 0
        x = x * 10 + (p[0] - 48)
        nd += 1
        p += 1
    v[0] = x
    return 1


def parse_dream_block(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end,
                      const uint8_t[::1] chrom, int cell_field, int n_fields, int64_t bin_size,
                      int64_t prev_start, int64_t[::1] out_starts, int8_t[::1] out_labels,
                      Py_ssize_t n_out):
    """Parse complete label lines of chromosome ``chrom`` from ``buf[pos:end]``.

    Appends to ``out_starts`` / ``out_labels`` from index ``n_out``. Returns
    ``(pos, n_out, n_lines, status, prev_start)``; ``pos`` is the start of the first unparsed line.
    status: 0 need more data (no complete line left), 1 output full, 2 next line is another
    chromosome; errors (pos at the bad line): 3 wrong number of fields, 4 start/stop not an integer,
    5 stop - start != bin_size, 6 start not after the previous start, 7 label not U/A/B, 8 empty line.
    """
    cdef Py_ssize_t cap = out_starts.shape[0], nl = 0
    cdef int status = 0, nf
    cdef const uint8_t* p
    cdef const uint8_t* e
    cdef const uint8_t* q
    cdef const uint8_t* t1
    cdef const uint8_t* t2
    cdef const uint8_t* t3
    cdef const uint8_t* lab_s
    cdef const uint8_t* lab_e
    cdef const uint8_t* cname
    cdef const uint8_t* nlp
    cdef Py_ssize_t clen = chrom.shape[0]
    cdef int64_t start = 0, stop = 0
    cdef int8_t lab
    if end > buf.shape[0] or out_labels.shape[0] < cap or n_out > cap:
        raise ValueError("parse_dream_block: bad arguments")
    if end <= pos:
        return pos, n_out, 0, 0, prev_start
    cname = &chrom[0] if clen > 0 else NULL
    p = &buf[0]
    with nogil:
        while pos < end:
            if n_out >= cap:
                status = 1
                break
            q = p + pos
            nlp = <const uint8_t*>memchr(q, 10, end - pos)
            if nlp == NULL:
                status = 0
                break
            e = nlp
            if e > q and (e - 1)[0] == 13:
                e = e - 1
            if e == q:
                status = 8
                break
            t1 = <const uint8_t*>memchr(q, 9, e - q)
            if t1 == NULL:
                status = 3
                break
            if t1 - q != clen or (clen > 0 and memcmp(q, cname, clen) != 0):
                status = 2
                break
            t2 = <const uint8_t*>memchr(t1 + 1, 9, e - t1 - 1)
            if t2 == NULL:
                status = 3
                break
            t3 = <const uint8_t*>memchr(t2 + 1, 9, e - t2 - 1)
            if t3 == NULL:
                status = 3
                break
            if not _parse_int(t1 + 1, t2, &start) or not _parse_int(t2 + 1, t3, &stop):
                status = 4
                break
            if stop - start != bin_size:
                status = 5
                break
            if start <= prev_start:
                status = 6
                break
            # label fields: field index 3 starts at t3 + 1
            nf = 3
            lab_s = NULL
            lab_e = NULL
            q = t3 + 1
            while True:
                t1 = <const uint8_t*>memchr(q, 9, e - q)
                if t1 == NULL:
                    t1 = e
                if nf == cell_field:
                    lab_s = q
                    lab_e = t1
                nf += 1
                if t1 == e:
                    break
                q = t1 + 1
            if nf != n_fields:
                status = 3
                break
            if lab_e - lab_s != 1:
                status = 7
                break
            if lab_s[0] == 85:      # U
                lab = 0
            elif lab_s[0] == 66:    # B
                lab = 1
            elif lab_s[0] == 65:    # A
                lab = -1
            else:
                status = 7
                break
            out_starts[n_out] = start
            out_labels[n_out] = lab
            n_out += 1
            prev_start = start
            nl += 1
            pos = (nlp - p) + 1
    return pos, n_out, nl, status, prev_start
