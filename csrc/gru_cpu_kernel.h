// Fused bidirectional GRU recurrence on CPU: the per-(direction, batch tile) workers.
//
// This header is included by one translation unit per instruction set (gru_cpu_avx512.cpp,
// gru_cpu_avx2.cpp, gru_cpu_base.cpp). Each of them defines BSPF_VBYTES (the SIMD width in
// bytes) and BSPF_NS (a namespace name) and switches the instruction set with
// `#pragma GCC target(...)` AFTER including the standard headers, so only the code below is
// compiled for that instruction set; gru_cpu.cpp picks one at run time (__builtin_cpu_supports).
// Everything here has internal linkage except the two entry points per dtype, so no ODR clash
// between the instruction-set variants is possible.
//
// Layouts (see docs/contracts.md): gi [T, B, 6H], y [T, B, 2H], saved [T, B, 8H] (per direction
// r, z, n, hn), w_hh [2, 3H, H], b_hh [2, 3H], h0 [2, B, H]; grad_gi / grad_gh [T, B, 6H].
//
// The per-step GEMM (h [Bt x H] @ W_hh^T [H x 3H] forward, g [Bt x 3H] @ W_hh [3H x H] backward)
// uses W packed once per call into panels of NR = 2 SIMD vectors ([panel][k][NR], zero padded)
// and an MR x NR register-blocked micro-kernel written with GCC vector extensions.

#ifndef BSPF_VBYTES
#error "define BSPF_VBYTES before including gru_cpu_kernel.h"
#endif

#include "gru_cpu_common.h"

namespace bsp_fast_gru {
namespace BSPF_NS {
namespace {

template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(BSPF_VBYTES)));
  static constexpr int VL = BSPF_VBYTES / sizeof(T);
  static constexpr int NR = 2 * VL;
  static constexpr int MR = BSPF_VBYTES == 64 ? 8 : 6;
};

template <typename V, typename T>
inline __attribute__((always_inline)) V vload(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V, typename T>
inline __attribute__((always_inline)) void vstore(T* p, V v) {
  __builtin_memcpy(p, &v, sizeof(V));
}
template <typename V, typename T>
inline __attribute__((always_inline)) V vloadn(const T* p, int n) {
  V v = {};
  __builtin_memcpy(&v, p, sizeof(T) * n);
  return v;
}
template <typename V, typename T>
inline __attribute__((always_inline)) void vstoren(T* p, V v, int n) {
  __builtin_memcpy(p, &v, sizeof(T) * n);
}

// ---- transcendental functions -------------------------------------------------------------
// float: Cephes-style expf (about 1 ulp) and tanhf (odd polynomial near 0, exp form elsewhere),
// vectorised; double: the libm functions lane by lane (double is for tests and gradcheck).

typedef float VF __attribute__((vector_size(BSPF_VBYTES)));
typedef int VI __attribute__((vector_size(BSPF_VBYTES)));

inline __attribute__((always_inline)) VF vexp(VF x) {
  const VF hi = VF{} + 88.3762626647949f, lo = VF{} - 87.3365447504f;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  // k = round(x / ln 2) with the 1.5 * 2^23 trick (|k| < 2^22): the low bits of tf are k
  const VF magic = VF{} + 12582912.0f;
  const VF tf = x * 1.44269504088896341f + magic;
  const VF fx = tf - magic;
  const VI i = (VI)tf - (VI)magic;
  x = x - fx * 0.693359375f;
  x = x - fx * -2.12194440e-4f;
  VF y = VF{} + 1.9875691500E-4f;
  y = y * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * (x * x) + x + 1.0f;
  VI e = (i + 127) << 23;
  return y * (VF)e;
}

inline __attribute__((always_inline)) VF vsigmoid(VF x) { return 1.0f / (1.0f + vexp(-x)); }

inline __attribute__((always_inline)) VF vtanh(VF x) {
  VF ax = x < 0.0f ? -x : x;
  // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1), with the sign of x
  VF big = 1.0f - 2.0f / (vexp(ax + ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  // |x| < 0.625: Cephes polynomial
  VF z = x * x;
  VF p = VF{} - 5.70498872745E-3f;
  p = p * z + 2.06390887954E-2f;
  p = p * z - 5.37397155531E-2f;
  p = p * z + 1.33314422036E-1f;
  p = p * z - 3.33332819422E-1f;
  VF small = x + x * z * p;
  return ax < 0.625f ? small : big;
}

template <typename T>
struct Act;
template <>
struct Act<float> {
  typedef VF V;
  static inline __attribute__((always_inline)) V sigmoid(V x) { return vsigmoid(x); }
  static inline __attribute__((always_inline)) V tanh(V x) { return vtanh(x); }
};
template <>
struct Act<double> {
  typedef Simd<double>::V V;
  static inline __attribute__((always_inline)) V sigmoid(V x) {
    for (int l = 0; l < Simd<double>::VL; ++l) x[l] = 1.0 / (1.0 + std::exp(-x[l]));
    return x;
  }
  static inline __attribute__((always_inline)) V tanh(V x) {
    for (int l = 0; l < Simd<double>::VL; ++l) x[l] = std::tanh(x[l]);
    return x;
  }
};

// ---- packing and GEMM ----------------------------------------------------------------------

// Bp[p][k][NR] = B[k][p*NR + j], zero for columns >= N. B given by element strides (rs, cs);
// contiguous rows (cs == 1, e.g. the per-step h_prev of the weight gradient) are copied row-wise.
template <typename T>
void pack_b(const T* B, long rs, long cs, int K, int N, T* Bp) {
  constexpr int NR = Simd<T>::NR;
  const int np = (N + NR - 1) / NR;
  for (int p = 0; p < np; ++p) {
    const int n = std::min(NR, N - p * NR);
    for (int k = 0; k < K; ++k) {
      T* dst = Bp + ((long)p * K + k) * NR;
      const T* src = B + k * rs + (long)p * NR * cs;
      if (cs == 1) {
        std::memcpy(dst, src, sizeof(T) * n);
      } else {
        for (int j = 0; j < n; ++j) dst[j] = src[(long)j * cs];
      }
      for (int j = n; j < NR; ++j) dst[j] = T(0);
    }
  }
}

// C[M x NR] (+)= A[M x K] @ panel[K x NR]; C has row stride ldc (padded, full NR columns valid).
// A[i][k] is A[i * lda + k], or with TA (A given transposed) A[k * lda + i].
template <typename T, int M, bool ACC, bool TA = false>
inline __attribute__((always_inline)) void micro(const T* __restrict A, long lda, const T* __restrict Bp, int K,
                                                 T* __restrict C, long ldc) {
  typedef typename Simd<T>::V V;
  constexpr int VL = Simd<T>::VL;
  constexpr int NR = Simd<T>::NR;
  V c0[M], c1[M];
  if (ACC) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      c0[i] = vload<V>(C + i * ldc);
      c1[i] = vload<V>(C + i * ldc + VL);
    }
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) c0[i] = c1[i] = V{};
  }
  for (int k = 0; k < K; ++k) {
    const V b0 = vload<V>(Bp + (long)k * NR);
    const V b1 = vload<V>(Bp + (long)k * NR + VL);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const V a = V{} + (TA ? A[(long)k * lda + i] : A[i * lda + k]);
      c0[i] += a * b0;
      c1[i] += a * b1;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    vstore(C + i * ldc, c0[i]);
    vstore(C + i * ldc + VL, c1[i]);
  }
}

// C[M x N] (+)= A[M x K] @ B, B packed by pack_b into np panels; A row-major (A[i][k] at
// A[i * lda + k]) or, with TA, given transposed (A[k * lda + i]).
template <typename T, bool ACC, bool TA = false>
void gemm(const T* A, long lda, int M, int K, const T* Bp, int np, T* C, long ldc) {
  constexpr int NR = Simd<T>::NR;
  constexpr int MR = Simd<T>::MR;
  for (int p = 0; p < np; ++p) {
    const T* panel = Bp + (long)p * K * NR;
    T* Cp = C + p * NR;
    int i = 0;
    auto Arow = [&](int r) { return TA ? A + r : A + (long)r * lda; };
    for (; i + MR <= M; i += MR) micro<T, MR, ACC, TA>(Arow(i), lda, panel, K, Cp + i * ldc, ldc);
    const int rem = M - i;
    const T* Ai = Arow(i);
    T* Ci = Cp + i * ldc;
    switch (rem) {
      case 0: break;
      case 1: micro<T, 1, ACC, TA>(Ai, lda, panel, K, Ci, ldc); break;
      case 2: micro<T, 2, ACC, TA>(Ai, lda, panel, K, Ci, ldc); break;
      case 3: micro<T, 3, ACC, TA>(Ai, lda, panel, K, Ci, ldc); break;
      case 4: micro<T, 4, ACC, TA>(Ai, lda, panel, K, Ci, ldc); break;
      case 5: micro<T, 5, ACC, TA>(Ai, lda, panel, K, Ci, ldc); break;
      case 6: micro<T, 6, ACC, TA>(Ai, lda, panel, K, Ci, ldc); break;
      default:
        if constexpr (MR > 7) {
          if (rem == 7) micro<T, 7, ACC, TA>(Ai, lda, panel, K, Ci, ldc);
        }
        break;
    }
  }
}

inline long round_up(long n, long m) { return (n + m - 1) / m * m; }

// A full vector, or (FULL false) the first n lanes with the rest zero; the column loops run their
// body through these once for full vectors and once for the tail of a row, so it is written once.
template <bool FULL, typename V, typename T>
inline __attribute__((always_inline)) V ld(const T* p, int n) {
  if constexpr (FULL) return vload<V>(p);
  else return vloadn<V>(p, n);
}
template <bool FULL, typename V, typename T>
inline __attribute__((always_inline)) void st(T* p, V v, int n) {
  if constexpr (FULL) vstore(p, v);
  else vstoren(p, v, n);
}

// h_prev of rows b0.. of direction d at time t: h0 when t is the direction's first step, else the
// direction's state one step earlier in its own order (y[t-1] forward, y[t+1] reverse). y's rows
// are at t * y_st + b * y_sb (time-major [T, B, 2H] or batch-major [B, T, 2H]).
template <typename T>
inline const T* prev_state(const T* h0, const T* y, long y_st, long y_sb, int d, int t, int T_, int B, int H, int b0,
                           long* ldh) {
  const bool first = d == 0 ? t == 0 : t == T_ - 1;
  if (first) {
    *ldh = H;
    return h0 + ((long)d * B + b0) * H;
  }
  *ldh = y_sb;
  const int tp = d == 0 ? t - 1 : t + 1;
  return y + (long)tp * y_st + (long)b0 * y_sb + (long)d * H;
}

// ---- forward ------------------------------------------------------------------------------

template <typename T>
void forward_task_impl(const FwdArgs<T>& a, int d, int b0, int b1) {
  typedef typename Act<T>::V V;
  constexpr int VL = Simd<T>::VL;
  constexpr int NR = Simd<T>::NR;
  const int T_ = a.T, B = a.B, H = a.H, M = b1 - b0;
  if (M <= 0) return;
  const int N = 3 * H;
  const int np = (N + NR - 1) / NR;
  // gh rows: the NR-wide panels, padded so that full-vector loads of the n block stay inside
  const long ldc = std::max<long>((long)np * NR, 2L * H + round_up(H, VL));
  T* Wp = static_cast<T*>(aligned_buffer(sizeof(T) * (size_t)np * NR * H));
  T* gh = static_cast<T*>(aligned_buffer(sizeof(T) * (size_t)ldc * M));
  // B[k][j] = W_hh^T[k][j] = W_hh[d][j][k]
  pack_b<T>(a.w_hh + (long)d * N * H, 1, H, H, N, Wp);
  const T* bias = a.b_hh + (long)d * N;
  for (int s = 0; s < T_; ++s) {
    const int t = d == 0 ? s : T_ - 1 - s;
    long ldh;
    const T* hp = prev_state(a.h0, a.y, a.y_st, a.y_sb, d, t, T_, B, H, b0, &ldh);
    gemm<T, false>(hp, ldh, M, H, Wp, np, gh, ldc);
    for (int i = 0; i < M; ++i) {
      const long row = (long)t * B + b0 + i;
      const T* gir = a.gi + row * 6 * H + (long)d * N;
      const T* ghr = gh + i * ldc;
      const T* hpr = hp + i * ldh;
      T* yr = a.y + (long)t * a.y_st + (long)(b0 + i) * a.y_sb + (long)d * H;
      T* sr = a.saved ? a.saved + row * 8 * H + (long)d * 4 * H : nullptr;
      auto cols = [&](auto full, int j, int n) {
        constexpr bool F = decltype(full)::value;
        const V xr = ld<F, V>(gir + j, n), xz = ld<F, V>(gir + H + j, n), xn = ld<F, V>(gir + 2 * H + j, n);
        const V br = ld<F, V>(bias + j, n), bz = ld<F, V>(bias + H + j, n), bn = ld<F, V>(bias + 2 * H + j, n);
        const V h = ld<F, V>(hpr + j, n);
        // gh rows are padded: full loads; lanes past H only ever reach the partial stores' ignored lanes
        const V hr = vload<V>(ghr + j), hz = vload<V>(ghr + H + j), hn = vload<V>(ghr + 2 * H + j);
        const V r = Act<T>::sigmoid(xr + hr + br);
        const V z = Act<T>::sigmoid(xz + hz + bz);
        const V hnb = hn + bn;
        const V nn = Act<T>::tanh(xn + r * hnb);
        st<F>(yr + j, nn + z * (h - nn), n);
        if (sr) {
          st<F>(sr + j, r, n); st<F>(sr + H + j, z, n); st<F>(sr + 2 * H + j, nn, n); st<F>(sr + 3 * H + j, hnb, n);
        }
      };
      int j = 0;
      for (; j + VL <= H; j += VL) cols(std::true_type{}, j, VL);
      if (j < H) cols(std::false_type{}, j, H - j);
    }
  }
  aligned_free(gh);
  aligned_free(Wp);
}

// ---- backward -----------------------------------------------------------------------------

// Per step t (in the direction's reverse order), for rows b0..b1:
//   the gate gradients dr, dz, dn from dh = grad_y[t] + carry -> grad_gi[t] (carry starts as
//   grad_hn, else zero); g = [dr, dz, dn * r] (grad_gh[t]); carry = z * dh + g @ W_hh
//   (dL/dh_prev); and, with dw_part, the recurrent weight and bias gradients dW_hh += g^T @ h_prev,
//   db_hh += sum of g's rows, accumulated here from the step's rows while they are in cache (then
//   grad_gh need not be written at all).
template <typename T>
void backward_task_impl(const BwdArgs<T>& a, int d, int b0, int b1, int slot) {
  typedef typename Act<T>::V V;
  constexpr int VL = Simd<T>::VL;
  constexpr int NR = Simd<T>::NR;
  const int T_ = a.T, B = a.B, H = a.H, M = b1 - b0;
  if (M <= 0) return;
  const int N3 = 3 * H;
  const int np = (H + NR - 1) / NR;
  const long ldc = (long)np * NR;
  const bool wgrad = a.dw_part != nullptr;
  T* Wp = static_cast<T*>(aligned_buffer(sizeof(T) * (size_t)np * NR * N3));
  T* carry = static_cast<T*>(aligned_buffer(sizeof(T) * (size_t)ldc * M));  // zero-filled
  // dL/dh_n enters as the carry into the direction's first backward step (h_n is its last state)
  if (a.grad_hn)
    for (int i = 0; i < M; ++i) std::memcpy(carry + i * ldc, a.grad_hn + ((long)d * B + b0 + i) * H, sizeof(T) * H);
  // g rows of the step: in grad_gh when it is kept, else in a scratch reused every step
  const long ldg = a.grad_gh ? 6L * H : (long)N3;
  T* gscratch = a.grad_gh ? nullptr : static_cast<T*>(aligned_buffer(sizeof(T) * (size_t)N3 * M));
  // weight gradient: dW [3H x H] (+)= g^T [3H x M] @ h_prev [M x H], h_prev packed per step
  T* hpack = wgrad ? static_cast<T*>(aligned_buffer(sizeof(T) * (size_t)np * NR * M)) : nullptr;
  // Two-level sums, as a blocked GEMM over all T*M rows would do: the steps' products go into dw / db
  // for `block` steps (~256 rows), then into the totals dw_sum / db_sum; one float sum over all T*M rows
  // in a row loses ~10x more precision (against float64) than torch's GEMM does.
  const int block = std::max(1, 256 / M);
  const size_t nw = (size_t)N3 * ldc, nb = (size_t)round_up(N3, VL);
  T* dw = wgrad ? static_cast<T*>(aligned_buffer(sizeof(T) * nw)) : nullptr;
  T* db = wgrad ? static_cast<T*>(aligned_buffer(sizeof(T) * nb)) : nullptr;
  T* dw_sum = wgrad ? static_cast<T*>(aligned_buffer(sizeof(T) * nw)) : nullptr;
  T* db_sum = wgrad ? static_cast<T*>(aligned_buffer(sizeof(T) * nb)) : nullptr;
  auto flush = [&] {
    for (size_t i = 0; i < nw; ++i) dw_sum[i] += dw[i], dw[i] = T(0);
    for (size_t i = 0; i < nb; ++i) db_sum[i] += db[i], db[i] = T(0);
  };
  // B[k][j] = W_hh[d][k][j], K = 3H, N = H
  pack_b<T>(a.w_hh + (long)d * N3 * H, H, 1, N3, H, Wp);
  for (int s = 0; s < T_; ++s) {
    const int t = d == 0 ? T_ - 1 - s : s;
    long ldh;
    const T* hp = prev_state(a.h0, a.y, a.y_st, a.y_sb, d, t, T_, B, H, b0, &ldh);
    T* G = a.grad_gh ? a.grad_gh + ((long)t * B + b0) * 6 * H + (long)d * N3 : gscratch;
    for (int i = 0; i < M; ++i) {
      const long row = (long)t * B + b0 + i;
      const T* gyr = a.grad_y + (long)t * a.gy_st + (long)(b0 + i) * a.gy_sb + (long)d * H;
      const T* sr = a.saved + row * 8 * H + (long)d * 4 * H;
      const T* hpr = hp + i * ldh;
      T* ggi = a.grad_gi + row * 6 * H + (long)d * N3;
      T* ggh = G + i * ldg;
      T* cr = carry + i * ldc;
      auto cols = [&](auto full, int j, int n) {
        constexpr bool F = decltype(full)::value;
        const V c = vload<V>(cr + j);
        const V gy = ld<F, V>(gyr + j, n), h = ld<F, V>(hpr + j, n);
        const V r = ld<F, V>(sr + j, n), z = ld<F, V>(sr + H + j, n), nn = ld<F, V>(sr + 2 * H + j, n);
        const V hn = ld<F, V>(sr + 3 * H + j, n);
        const V dh = gy + c;
        const V one = V{} + T(1);
        const V dz = dh * (h - nn) * z * (one - z);
        const V dn = dh * (one - z) * (one - nn * nn);
        const V dr = dn * hn * r * (one - r);
        const V dnr = dn * r;
        st<F>(ggi + j, dr, n); st<F>(ggi + H + j, dz, n); st<F>(ggi + 2 * H + j, dn, n);
        st<F>(ggh + j, dr, n); st<F>(ggh + H + j, dz, n); st<F>(ggh + 2 * H + j, dnr, n);
        if (wgrad) {
          st<F>(db + j, ld<F, V>(db + j, n) + dr, n);
          st<F>(db + H + j, ld<F, V>(db + H + j, n) + dz, n);
          st<F>(db + 2 * H + j, ld<F, V>(db + 2 * H + j, n) + dnr, n);
        }
        vstore(cr + j, z * dh);  // carry rows are padded: lanes >= H are garbage-free zeros times zeros
      };
      int j = 0;
      for (; j + VL <= H; j += VL) cols(std::true_type{}, j, VL);
      if (j < H) cols(std::false_type{}, j, H - j);
    }
    // carry = z * dh + g @ W_hh
    gemm<T, true>(G, ldg, M, N3, Wp, np, carry, ldc);
    if (wgrad) {
      pack_b<T>(hp, ldh, 1, M, H, hpack);
      gemm<T, true, true>(G, ldg, N3, M, hpack, np, dw, ldc);
      if ((s + 1) % block == 0 || s + 1 == T_) flush();
    }
  }
  for (int i = 0; i < M; ++i) {
    T* dst = a.grad_h0 + ((long)d * B + b0 + i) * H;
    const T* cr = carry + i * ldc;
    for (int j = 0; j < H; ++j) dst[j] = cr[j];
  }
  if (wgrad) {
    T* dwo = a.dw_part + (long)slot * N3 * H;
    for (int i = 0; i < N3; ++i) std::memcpy(dwo + (long)i * H, dw_sum + i * ldc, sizeof(T) * H);
    std::memcpy(a.db_part + (long)slot * N3, db_sum, sizeof(T) * N3);
  }
  aligned_free(db_sum);
  aligned_free(dw_sum);
  aligned_free(db);
  aligned_free(dw);
  aligned_free(hpack);
  aligned_free(gscratch);
  aligned_free(carry);
  aligned_free(Wp);
}

}  // namespace

void forward_task(const FwdArgs<float>& a, int d, int b0, int b1) { forward_task_impl<float>(a, d, b0, b1); }
void forward_task(const FwdArgs<double>& a, int d, int b0, int b1) { forward_task_impl<double>(a, d, b0, b1); }
void backward_task(const BwdArgs<float>& a, int d, int b0, int b1, int slot) {
  backward_task_impl<float>(a, d, b0, b1, slot);
}
void backward_task(const BwdArgs<double>& a, int d, int b0, int b1, int slot) {
  backward_task_impl<double>(a, d, b0, b1, slot);
}

}  // namespace BSPF_NS
}  // namespace bsp_fast_gru
