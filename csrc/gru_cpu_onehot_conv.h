// One-hot convolution of both strands, ReLU, strand sum and max pool in one pass (inference of
// hybrid-dense's first layer; the readable reference is bsp_fast/strand_conv.py's
// both_strands_conv_pool_reference: conv1d over the one-hot input, as models.both_strands_conv).
//
// Included once per instruction set, like gru_cpu_kernel.h (BSPF_NS names the namespace). A
// convolution over one-hot DNA is a sum of looked-up weight columns: the response at position p
// is bias + sum_k W[:, base(p + k - K/2), k]. Here g consecutive kernel positions form a group
// whose 5^g base combinations (N = no contribution) are pre-summed by the caller into a table, so
// a position costs G = ceil(K / g) vector additions per 16 filters and strand instead of 4 K
// multiply-adds, and the (forward, reverse-complement) responses are ReLU-summed and max-pooled
// in registers: only the pooled features [T, B, F] are written.

#include "gru_cpu_common.h"

namespace bsp_fast_gru {
namespace BSPF_NS {
namespace {
typedef float ConvV __attribute__((vector_size(64)));  // 16 filters (one zmm, two ymm, four xmm)

// (by reference: a 64-byte vector returned by value changes the ABI below AVX-512, GCC warns)
inline __attribute__((always_inline)) void conv_add(ConvV& acc, const float* p) {
  ConvV v;
  __builtin_memcpy(&v, p, sizeof(ConvV));
  acc += v;
}
}  // namespace

void onehot_conv_task(const ConvArgs& a, int b, int t0, int t1) {
  const int g = a.g, G = a.G, Fp = a.Fp;
  long rows = 1;
  for (int u = 0; u < g; ++u) rows *= 5;  // 5^g table rows per group
  const long group_stride = rows * 2L * Fp;
  const long lo = (long)t0 * a.pool, hi = (long)t1 * a.pool;
  const long ng = hi - lo + (long)g * (G - 1);
  // row offsets (elements) of the group starting at each padded position
  long* gidx = static_cast<long*>(aligned_buffer(sizeof(long) * (size_t)std::max<long>(ng, 1)));
  const uint8_t* codes = a.codes + (long)b * a.L;
  for (long i = 0; i < ng; ++i) {
    long idx = 0;
    for (int u = 0; u < g; ++u) {
      const long q = lo + i + u - a.half;
      int c = (q >= 0 && q < a.L) ? (int)codes[q] : 4;
      if (c > 4) c = 4;
      idx = idx * 5 + c;
    }
    gidx[i] = idx * 2L * Fp;
  }
  const ConvV zero = {};
  for (int f0 = 0; f0 < Fp; f0 += 16) {
    ConvV bf = zero, br = zero;
    conv_add(bf, a.bias + f0);
    conv_add(br, a.bias + Fp + f0);
    const int nf = std::min(16, a.F - f0);
    for (int t = t0; t < t1; ++t) {
      ConvV m = zero;  // every pooled value is a sum of ReLUs, so >= 0
      const long* gi = gidx + (long)(t - t0) * a.pool;
      for (int p = 0; p < a.pool; ++p) {
        ConvV af = bf, ar = br;
        const float* tab = a.table + f0;
        for (int j = 0; j < G; ++j, tab += group_stride) {
          const float* row = tab + gi[p + (long)g * j];
          conv_add(af, row);
          conv_add(ar, row + Fp);
        }
        const ConvV y = (af > zero ? af : zero) + (ar > zero ? ar : zero);
        m = y > m ? y : m;
      }
      __builtin_memcpy(a.out + (long)t * a.out_st + (long)b * a.out_sb + f0, &m, sizeof(float) * nf);
      if (a.rc_off >= 0)
        __builtin_memcpy(a.out + a.rc_off + (long)(a.T - 1 - t) * a.out_st + (long)b * a.out_sb + f0, &m,
                         sizeof(float) * nf);
    }
  }
  aligned_free(gidx);
}

}  // namespace BSPF_NS
}  // namespace bsp_fast_gru
