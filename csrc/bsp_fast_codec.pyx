# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the data layer, the top-level module ``bsp_fast_codec`` (the NumPy references
are in ``bsp_fast/data/windows.py`` and ``bsp_fast/data/fasta.py``).

- ``encode_block``: FASTA sequence bytes -> uint8 codes (A0 C1 G2 T3 N4), stopping at a header line
  or at the first byte that is no base.
- ``codes_into`` / ``one_hot_into``: batch window extraction from one flat code array (all
  chromosomes end to end) with per-chromosome offsets and lengths; N padding past either end;
  reverse complement per row. They release the GIL and work on a row range ``[b0, b1)``, so a Python
  thread pool can split a batch across cores without a second OpenMP runtime next to torch's.
  One-hot gathers the codes of a chunk of rows first and then expands them (SSE2 on x86-64).
- ``parse_dream_block``: ENCODE-DREAM label rows -> (starts, labels) of one chromosome.

Every function works on a byte range and returns a status instead of raising, so the Python caller
(which knows the file name and line numbers) writes the error message.
"""

from libc.stdint cimport int8_t, int64_t, uint8_t
cdef extern from *:
    """
    #ifndef BSP_FAST_SRC_HASH
    #define BSP_FAST_SRC_HASH "unknown"
    #endif
    """
    const char* BSP_FAST_SRC_HASH

# build_support.source_hash of the sources this was built from (bsp_fast._native checks it)
source_hash = BSP_FAST_SRC_HASH.decode("ascii")

from libc.string cimport memchr, memcmp, memcpy, memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* One-hot rows of bases, 4 floats each: base i of src goes to dst + step * i (step 4:
       forward; -4: backwards, for reverse-complement rows). Codes >= 4 (N) give zero rows.

       x86-64 (SSE2 is part of the base ISA, so no -march needed): 16 bases per 16-byte load,
       each row computed as (code == idx) & 1.0f with idx = 0 1 2 3 (or 3 2 1 0: complement),
       no table loads. Elsewhere and for the tail: the 256 x 4 table, unrolled by 4, restrict
       pointers. Expanding 1024 x 400 codes already in cache: a memcpy per base in a Cython
       loop ~560 us, the unrolled table ~230 us, SSE2 ~155 us (this machine). No OpenMP. */
    static inline void bsp_onehot_rows(const uint8_t* __restrict src, float* __restrict dst,
                                       Py_ssize_t n, const float* __restrict table,
                                       const Py_ssize_t step, int complement) {
        Py_ssize_t i = 0;
    #if defined(__SSE2__)
        const __m128i idx = complement ? _mm_setr_epi32(3, 2, 1, 0) : _mm_setr_epi32(0, 1, 2, 3);
        const __m128 one = _mm_set1_ps(1.0f);
        const __m128i zero = _mm_setzero_si128();
        #define BSP_ROW(q, imm, j) _mm_storeu_ps(dst + step * (i + (j)), _mm_and_ps(one, \
            _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_shuffle_epi32((q), (imm)), idx))))
        for (; i + 16 <= n; i += 16) {
            __m128i c = _mm_loadu_si128((const __m128i*)(src + i));
            __m128i lo = _mm_unpacklo_epi8(c, zero), hi = _mm_unpackhi_epi8(c, zero);
            __m128i q0 = _mm_unpacklo_epi16(lo, zero), q1 = _mm_unpackhi_epi16(lo, zero);
            __m128i q2 = _mm_unpacklo_epi16(hi, zero), q3 = _mm_unpackhi_epi16(hi, zero);
            BSP_ROW(q0, 0x00, 0);  BSP_ROW(q0, 0x55, 1);  BSP_ROW(q0, 0xAA, 2);  BSP_ROW(q0, 0xFF, 3);
            BSP_ROW(q1, 0x00, 4);  BSP_ROW(q1, 0x55, 5);  BSP_ROW(q1, 0xAA, 6);  BSP_ROW(q1, 0xFF, 7);
            BSP_ROW(q2, 0x00, 8);  BSP_ROW(q2, 0x55, 9);  BSP_ROW(q2, 0xAA, 10); BSP_ROW(q2, 0xFF, 11);
            BSP_ROW(q3, 0x00, 12); BSP_ROW(q3, 0x55, 13); BSP_ROW(q3, 0xAA, 14); BSP_ROW(q3, 0xFF, 15);
        }
        #undef BSP_ROW
    #else
        (void)complement;
    #endif
        for (; i + 4 <= n; i += 4) {
            memcpy(dst + step * i,       table + src[i] * 4, 16);
            memcpy(dst + step * (i + 1), table + src[i + 1] * 4, 16);
            memcpy(dst + step * (i + 2), table + src[i + 2] * 4, 16);
            memcpy(dst + step * (i + 3), table + src[i + 3] * 4, 16);
        }
        for (; i < n; i++)
            memcpy(dst + step * i, table + src[i] * 4, 16);
    }
    static inline void bsp_onehot_fwd(const uint8_t* src, float* dst, Py_ssize_t n,
                                      const float* table) {
        bsp_onehot_rows(src, dst, n, table, 4, 0);
    }
    /* base i goes to dst_first - 4 * i; table: the complement's one-hot rows */
    static inline void bsp_onehot_rev(const uint8_t* src, float* dst_first, Py_ssize_t n,
                                      const float* table) {
        bsp_onehot_rows(src, dst_first, n, table, -4, 1);
    }
    /* In-place reverse complement of a code row: complement c -> 3 - c for A C G T and 4 for
       anything else (N, and bytes that are no code, as the NumPy reference), a loop the compiler
       vectorises; then reverse, 8 bytes at a time from both ends. */
    static inline void bsp_revcomp_codes(uint8_t* row, Py_ssize_t L) {
        Py_ssize_t i = 0, j = L;
        for (Py_ssize_t k = 0; k < L; k++)
            row[k] = row[k] < 4 ? (uint8_t)(3 - row[k]) : (uint8_t)4;
    #if defined(__GNUC__)
        for (; j - i >= 16; i += 8, j -= 8) {
            uint64_t a, b;
            memcpy(&a, row + i, 8);
            memcpy(&b, row + j - 8, 8);
            a = __builtin_bswap64(a);
            b = __builtin_bswap64(b);
            memcpy(row + i, &b, 8);
            memcpy(row + j - 8, &a, 8);
        }
    #endif
        for (j--; i < j; i++, j--) {
            uint8_t t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
    """
    void bsp_revcomp_codes(uint8_t* row, Py_ssize_t L) noexcept nogil
    void bsp_onehot_fwd(const uint8_t* src, float* dst, Py_ssize_t n, const float* table) noexcept nogil
    void bsp_onehot_rev(const uint8_t* src, float* dst_first, Py_ssize_t n, const float* table) noexcept nogil

# ----------------------------------------------------------------------------------------------
# tables

cdef enum:
    SKIP = 5        # '\r', ' ', '\t' inside sequence lines: ignored
    INVALID = 255

cdef uint8_t ENC[256]
cdef float ONEHOT[256 * 4]
cdef float ONEHOT_RC[256 * 4]


cdef int _init_tables() except -1:
    cdef int i, ch
    for i in range(256):
        ENC[i] = INVALID
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


cdef enum:
    # bytes of codes gathered per chunk of rows on the stack (stays in L1/L2 for the expansion)
    GATHER_BYTES = 16384
    # rows gathered before any is reverse-complemented (enough misses in flight)
    REVCOMP_BLOCK_ROWS = 16


cdef void _gather_rows(const uint8_t* data, const int64_t* offs, const int64_t* lens,
                       const int64_t* cid, const int64_t* starts, Py_ssize_t L, uint8_t* out,
                       Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    # forward codes of rows [b0, b1), N-padded past the chromosome ends
    cdef Py_ssize_t b, lo, hi
    cdef const uint8_t* src
    cdef uint8_t* row
    for b in range(b0, b1):
        _clip(starts[b], lens[cid[b]], L, &lo, &hi)
        src = data + offs[cid[b]] + starts[b]
        row = out + b * L
        if lo > 0:
            memset(row, 4, lo)
        if hi > lo:
            memcpy(row + lo, src + lo, hi - lo)
        if L > hi:
            memset(row + hi, 4, L - hi)


cdef void _codes_rows(const uint8_t* data, const int64_t* offs, const int64_t* lens,
                      const int64_t* cid, const int64_t* starts, const int8_t* strand,
                      Py_ssize_t L, uint8_t* out, Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    # In blocks of rows: gather them all, then reverse-complement the strand -1 rows in place.
    # The memcpys of a block overlap the cache and TLB misses of random windows; touching a row
    # right after its memcpy (or reading it backwards byte by byte) would wait for each one.
    cdef Py_ssize_t b, e, k
    b = b0
    while b < b1:
        e = min(b + REVCOMP_BLOCK_ROWS, b1)
        _gather_rows(data, offs, lens, cid, starts, L, out, b, e)
        if strand != NULL:
            for k in range(b, e):
                if strand[k] < 0:
                    bsp_revcomp_codes(out + k * L, L)
        b = e


cdef void _one_hot_rows_direct(const uint8_t* data, const int64_t* offs, const int64_t* lens,
                               const int64_t* cid, const int64_t* starts, const int8_t* strand,
                               Py_ssize_t L, float* out,
                               Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    # one pass, row by row: for windows longer than GATHER_BYTES
    cdef Py_ssize_t b, lo, hi
    cdef int64_t c, s
    cdef const uint8_t* src
    cdef float* row
    for b in range(b0, b1):
        c = cid[b]
        s = starts[b]
        _clip(s, lens[c], L, &lo, &hi)
        src = data + offs[c] + s
        row = out + b * L * 4
        if strand == NULL or strand[b] >= 0:
            if lo > 0:
                memset(row, 0, lo * 4 * sizeof(float))
            if hi > lo:
                bsp_onehot_fwd(src + lo, row + lo * 4, hi - lo, ONEHOT)
            if L > hi:
                memset(row + hi * 4, 0, (L - hi) * 4 * sizeof(float))
        else:
            if L > hi:
                memset(row, 0, (L - hi) * 4 * sizeof(float))
            if hi > lo:
                bsp_onehot_rev(src + lo, row + (L - 1 - lo) * 4, hi - lo, ONEHOT_RC)
            if lo > 0:
                memset(row + (L - lo) * 4, 0, lo * 4 * sizeof(float))


cdef void _one_hot_rows(const uint8_t* data, const int64_t* offs, const int64_t* lens,
                        const int64_t* cid, const int64_t* starts, const int8_t* strand,
                        Py_ssize_t L, float* out, Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    # Two passes per chunk of rows: gather the codes (memcpy, padding and reverse complement
    # done by _codes_rows), then expand them to one-hot. Windows at random genome positions miss
    # the TLB; a memcpy per row lets the CPU overlap those misses, a one-hot row (6.4 kB of
    # stores for 400 bp) does not. Measured at 400 bp, batch 1024, cold windows of a 400 Mbp
    # array: row by row ~550 us (~600 us with random strands), gather + expand ~195 us (~215).
    cdef uint8_t codes[GATHER_BYTES]
    cdef Py_ssize_t rows, b, n
    if L <= 0:
        return
    if L > GATHER_BYTES:
        _one_hot_rows_direct(data, offs, lens, cid, starts, strand, L, out, b0, b1)
        return
    rows = GATHER_BYTES // L
    b = b0
    while b < b1:
        n = min(rows, b1 - b)
        # rows [b, b + n) of the batch become rows [0, n) of the codes chunk
        _codes_rows(data, offs, lens, cid + b, starts + b, strand + b if strand != NULL else NULL,
                    L, codes, 0, n)
        bsp_onehot_fwd(codes, out + b * L * 4, n * L, ONEHOT)
        b += n


cdef Py_ssize_t _check_rows(str name, Py_ssize_t B, Py_ssize_t n_ids, Py_ssize_t n_starts, Py_ssize_t b0,
                            Py_ssize_t b1) except -1:
    """b1 (-1: all rows) after checking the window arrays cover the B rows and [b0, b1) lies inside."""
    if b1 < 0:
        b1 = B
    if n_ids < B or n_starts < B or b0 < 0 or b1 > B:
        raise ValueError(f"{name}: shape mismatch")
    return b1


cdef int _check_strand(str name, Py_ssize_t B, Py_ssize_t n_strand) except -1:
    if n_strand < B:
        raise ValueError(f"{name}: strand shape mismatch")
    return 0


def codes_into(const uint8_t[::1] data, const int64_t[::1] offsets, const int64_t[::1] lengths,
               const int64_t[::1] chrom_ids, const int64_t[::1] starts, strand,
               uint8_t[:, ::1] out, Py_ssize_t b0=0, Py_ssize_t b1=-1):
    """Rows ``[b0, b1)`` of ``out[B, L]`` <- windows (validated by the caller: ids in range).

    ``strand``: None or an int8 array (negative = reverse complement). Releases the GIL.
    """
    cdef Py_ssize_t B = out.shape[0], L = out.shape[1]
    cdef const int8_t[::1] st
    cdef const int8_t* sp = NULL
    b1 = _check_rows("codes_into", B, chrom_ids.shape[0], starts.shape[0], b0, b1)
    if strand is not None:
        st = strand
        _check_strand("codes_into", B, st.shape[0])
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
    if out.shape[2] != 4:
        raise ValueError("one_hot_into: out must be [B, L, 4]")
    b1 = _check_rows("one_hot_into", B, chrom_ids.shape[0], starts.shape[0], b0, b1)
    if strand is not None:
        st = strand
        _check_strand("one_hot_into", B, st.shape[0])
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
