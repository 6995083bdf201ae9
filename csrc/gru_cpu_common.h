// Shared declarations of the CPU GRU kernel (argument structs, per-instruction-set entry points).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace bsp_fast_gru {

template <typename S>
struct FwdArgs {
  const S* gi;     // [T, B, 6H]
  const S* w_hh;   // [2, 3H, H]
  const S* b_hh;   // [2, 3H]
  const S* h0;     // [2, B, H]
  S* y;            // [T, B, 2H] (rows at y_st, y_sb)
  S* saved;        // [T, B, 8H] or nullptr (inference: gates not kept)
  int T, B, H;
  long y_st, y_sb;  // element strides of y's rows in t and b (2BH, 2H time-major; 2H, 2TH batch-major)
};

template <typename S>
struct BwdArgs {
  const S* grad_y;  // [T, B, 2H] (rows at gy_st, gy_sb)
  const S* grad_hn; // [2, B, H] (dL/dh_n) or nullptr
  const S* y;       // [T, B, 2H] (rows at y_st, y_sb)
  const S* saved;   // [T, B, 8H]
  const S* w_hh;    // [2, 3H, H]
  const S* h0;      // [2, B, H]
  S* grad_gi;       // [T, B, 6H]
  S* grad_gh;       // [T, B, 6H] or nullptr (then kept per step only, for dw_part / db_part)
  S* grad_h0;       // [2, B, H]
  S* dw_part;       // [slots, 3H, H] recurrent weight gradient per (tile, direction), or nullptr
  S* db_part;       // [slots, 3H] its bias gradient, or nullptr (set together with dw_part)
  int T, B, H;
  long y_st, y_sb;    // element strides of y's rows in t and b, as in FwdArgs
  long gy_st, gy_sb;  // the same for grad_y
};

// The one-hot convolution (gru_cpu_onehot_conv.h): both strands, ReLU-summed, max-pooled.
struct ConvArgs {
  const uint8_t* codes;  // [B, L] base codes: 0-3 = A C G T, anything else = N (no contribution)
  const float* table;    // [G, 5^g, 2, Fp]: group j, base-5 index of g consecutive codes, strand, filter
  const float* bias;     // [2, Fp] (forward, reverse-complement filters; padding zero)
  float* out;            // pooled row (b, t) at out + t * out_st + b * out_sb, F floats
  long out_st, out_sb;
  long rc_off;           // >= 0: row (b, t) also at out + rc_off + (T - 1 - t) * out_st + b * out_sb
  int B, L, T, pool, half, G, g, Fp, F;  // T = L / pool pooled positions, half = K / 2, Fp % 16 == 0
};

// 64-byte aligned, zero-filled scratch (std::bad_alloc on failure is never thrown from here:
// the caller checks for nullptr through the kernels' own allocation helper below).
inline void* aligned_buffer(size_t bytes) {
  size_t n = (bytes + 63) / 64 * 64;
  if (n == 0) n = 64;
  void* p = std::aligned_alloc(64, n);
  if (p) std::memset(p, 0, n);
  else std::abort();
  return p;
}
inline void aligned_free(void* p) { std::free(p); }

#define BSPF_DECLARE_ISA(ns)                                             \
  namespace ns {                                                         \
  void forward_task(const FwdArgs<float>& a, int d, int b0, int b1);     \
  void forward_task(const FwdArgs<double>& a, int d, int b0, int b1);    \
  void backward_task(const BwdArgs<float>& a, int d, int b0, int b1, int slot);  \
  void backward_task(const BwdArgs<double>& a, int d, int b0, int b1, int slot); \
  void onehot_conv_task(const ConvArgs& a, int b, int t0, int t1);              \
  }

BSPF_DECLARE_ISA(avx512)
BSPF_DECLARE_ISA(avx2)
BSPF_DECLARE_ISA(base)

}  // namespace bsp_fast_gru
