// Device code of the fused bidirectional GRU recurrence (included by csrc/gru_cuda.cu).
//
// Kept in a header of its own so that tests/test_gru_cuda_emu.py can also compile these kernels as
// plain host C++ (one std::thread per CUDA thread, std::barrier for __syncthreads) and check their
// indexing and barrier structure against the reference on a machine without a GPU.
// Design notes: see the top of csrc/gru_cuda.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace bsp_fast_cuda {
namespace detail {

constexpr int kMaxThreads = 512;  // G*H <= 512; __launch_bounds__ then allows up to 128 registers/thread

template <typename IO>
struct Traits;
template <>
struct Traits<float> {
  using Acc = float;
  using W = float;
  static constexpr int R = 8;
  static constexpr bool kFast = false;
  static constexpr bool kAllowSmem = true;
};
template <>
struct Traits<__nv_bfloat16> {
  using Acc = float;
  using W = __nv_bfloat16;
  static constexpr int R = 8;
  static constexpr bool kFast = true;
  static constexpr bool kAllowSmem = true;
};
template <>
struct Traits<double> {
  using Acc = double;
  using W = double;
  static constexpr int R = 4;
  static constexpr bool kFast = false;
  static constexpr bool kAllowSmem = false;
};

// ---- element helpers ---------------------------------------------------------------------------

__device__ __forceinline__ float ld_acc(const float* p) { return *p; }
__device__ __forceinline__ float ld_acc(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ double ld_acc(const double* p) { return *p; }

__device__ __forceinline__ void st_io(float* p, float v) { *p = v; }
__device__ __forceinline__ void st_io(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void st_io(double* p, double v) { *p = v; }

// Four consecutive state values (16-byte aligned: row offsets are multiples of H >= 32 elements and
// k is a multiple of 4, the buffers start 16-byte aligned).
__device__ __forceinline__ void ld4(const float* p, float (&v)[4]) {
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x;
  v[1] = q.y;
  v[2] = q.z;
  v[3] = q.w;
}
__device__ __forceinline__ void ld4(const double* p, double (&v)[4]) {
  const double2 a = *reinterpret_cast<const double2*>(p);
  const double2 b = *reinterpret_cast<const double2*>(p + 2);
  v[0] = a.x;
  v[1] = a.y;
  v[2] = b.x;
  v[3] = b.y;
}

__device__ __forceinline__ float tanh_fast(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return tanhf(x);  // host emulation only
#endif
}

__device__ __forceinline__ float madd(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double madd(double a, double b, double c) { return fma(a, b, c); }

template <bool kFast>
__device__ __forceinline__ float act_sigmoid(float x) {
  if constexpr (kFast) {
    return fmaf(0.5f, tanh_fast(0.5f * x), 0.5f);
  } else {
    return 1.0f / (1.0f + expf(-x));
  }
}
template <bool kFast>
__device__ __forceinline__ double act_sigmoid(double x) {
  return 1.0 / (1.0 + exp(-x));
}
template <bool kFast>
__device__ __forceinline__ float act_tanh(float x) {
  if constexpr (kFast) {
    return tanh_fast(x);
  } else {
    return tanhf(x);
  }
}
template <bool kFast>
__device__ __forceinline__ double act_tanh(double x) {
  return tanh(x);
}

// Block-cooperative copy of n elements global -> shared (16-byte vectors when both ends allow it).
template <typename T>
__device__ __forceinline__ void copy_to_smem(T* __restrict__ dst, const T* __restrict__ src, int n) {
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  if ((reinterpret_cast<uintptr_t>(src) % 16 == 0) && (reinterpret_cast<uintptr_t>(dst) % 16 == 0) &&
      (bytes % 16 == 0)) {
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    const int nv = static_cast<int>(bytes / 16);
    for (int i = threadIdx.x; i < nv; i += blockDim.x) d[i] = s[i];
  } else {
    for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
  }
}

// ---- forward -----------------------------------------------------------------------------------

// gi [T,B,6H] IO; w_t [2][H][3H] W (W_hh^T per direction); b_hh [2][3H] Acc; h0 [2][B][H] Acc;
// y [T,B,2H] IO; saved [T,B,8H] IO (per direction d at d*4H: r, z, n, hn) or null (inference).
// Dynamic shared memory: [W^T of direction d: H*3H W, when kWSmem] [state: 2][BB][H] Acc.
template <typename IO, int H, bool kWSmem>
__global__ void __launch_bounds__(kMaxThreads)
    bigru_fwd_kernel(const IO* __restrict__ gi, const typename Traits<IO>::W* __restrict__ w_t,
                     const typename Traits<IO>::Acc* __restrict__ b_hh,
                     const typename Traits<IO>::Acc* __restrict__ h0, IO* __restrict__ y,
                     IO* __restrict__ saved, int T, int B) {
  using Acc = typename Traits<IO>::Acc;
  using WT = typename Traits<IO>::W;
  constexpr int R = Traits<IO>::R;
  constexpr bool kFast = Traits<IO>::kFast;
  constexpr int H3 = 3 * H;
  static_assert(H % 32 == 0 && H % 4 == 0, "H must be a multiple of 32");

  extern __shared__ __align__(16) unsigned char smem_raw[];

  const int d = blockIdx.y;
  const int G = blockDim.x / H;
  const int BB = G * R;
  const int j = threadIdx.x % H;
  const int grp = threadIdx.x / H;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BB + static_cast<int64_t>(grp) * R;

  const WT* M;
  Acc* hs;
  if constexpr (kWSmem) {
    WT* ws = reinterpret_cast<WT*>(smem_raw);
    copy_to_smem(ws, w_t + static_cast<size_t>(d) * H * H3, H * H3);
    M = ws;
    hs = reinterpret_cast<Acc*>(smem_raw + sizeof(WT) * H * H3);  // H*H3*sizeof(WT) % 16 == 0
  } else {
    M = w_t + static_cast<size_t>(d) * H * H3;
    hs = reinterpret_cast<Acc*>(smem_raw);
  }

  Acc bias[3];
#pragma unroll
  for (int g = 0; g < 3; ++g) bias[g] = b_hh[d * H3 + g * H + j];

  bool valid[R];
  Acc hown[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t b = row0 + r;
    valid[r] = b < B;
    hown[r] = valid[r] ? h0[(static_cast<int64_t>(d) * B + b) * H + j] : Acc(0);
    hs[(grp * R + r) * H + j] = hown[r];  // buffer 0
  }
  // Input projections of the step about to be processed, loaded one step ahead (issued before the
  // barrier and matmul of the previous step, so their latency hides behind them).
  Acc xr[R], xz[R], xn[R];
  auto load_x = [&](int s) {
    const int t = (d == 0) ? s : (T - 1 - s);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (valid[r]) {
        const IO* p = gi + (static_cast<int64_t>(t) * B + row0 + r) * (6 * H) + d * H3 + j;
        xr[r] = ld_acc(p);
        xz[r] = ld_acc(p + H);
        xn[r] = ld_acc(p + 2 * H);
      } else {
        xr[r] = Acc(0);
        xz[r] = Acc(0);
        xn[r] = Acc(0);
      }
    }
  };
  if (T > 0) load_x(0);
  __syncthreads();  // W and the initial state are in shared memory

  for (int s = 0; s < T; ++s) {
    const int t = (d == 0) ? s : (T - 1 - s);
    const Acc* hcur = hs + (s & 1) * BB * H + grp * R * H;
    Acc* hnxt = hs + ((s & 1) ^ 1) * BB * H;

    Acc acc[3][R];
#pragma unroll
    for (int g = 0; g < 3; ++g) {
#pragma unroll
      for (int r = 0; r < R; ++r) acc[g][r] = bias[g];
    }

#pragma unroll 2
    for (int k = 0; k < H; k += 4) {
      Acc hv[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) ld4(hcur + r * H + k, hv[r]);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const WT* wp = M + (k + kk) * H3 + j;
        const Acc w0 = ld_acc(wp);
        const Acc w1 = ld_acc(wp + H);
        const Acc w2 = ld_acc(wp + 2 * H);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          acc[0][r] = madd(w0, hv[r][kk], acc[0][r]);
          acc[1][r] = madd(w1, hv[r][kk], acc[1][r]);
          acc[2][r] = madd(w2, hv[r][kk], acc[2][r]);
        }
      }
    }

#pragma unroll
    for (int r = 0; r < R; ++r) {
      const Acc rg = act_sigmoid<kFast>(xr[r] + acc[0][r]);
      const Acc zg = act_sigmoid<kFast>(xz[r] + acc[1][r]);
      const Acc ng = act_tanh<kFast>(madd(rg, acc[2][r], xn[r]));
      const Acc hnew = madd(zg, hown[r] - ng, ng);  // (1 - z) n + z h
      hown[r] = hnew;
      hnxt[(grp * R + r) * H + j] = hnew;
      if (valid[r]) {
        const int64_t tb = static_cast<int64_t>(t) * B + row0 + r;
        st_io(y + tb * (2 * H) + d * H + j, hnew);
        if (saved != nullptr) {  // null: inference, no gates kept
          IO* sp = saved + tb * (8 * H) + d * (4 * H) + j;
          st_io(sp, rg);
          st_io(sp + H, zg);
          st_io(sp + 2 * H, ng);
          st_io(sp + 3 * H, acc[2][r]);
        }
      }
    }
    if (s + 1 < T) load_x(s + 1);
    __syncthreads();  // buf[(s+1)&1] complete; all reads of buf[s&1] done
  }
}

// ---- backward ----------------------------------------------------------------------------------

// grad_y, y [T,B,2H] IO; saved [T,B,8H] IO; w [2][3H][H] W (W_hh as stored); h0 [2][B][H] Acc;
// grad_gi, grad_gh [T,B,6H] IO; grad_h0 [2][B][H] Acc.
// Dynamic shared memory: [W of direction d: 3H*H W, when kWSmem] [gate grads: 2][BB][3H] Acc.
template <typename IO, int H, bool kWSmem>
__global__ void __launch_bounds__(kMaxThreads)
    bigru_bwd_kernel(const IO* __restrict__ grad_y, const IO* __restrict__ y, const IO* __restrict__ saved,
                     const typename Traits<IO>::W* __restrict__ w, const typename Traits<IO>::Acc* __restrict__ h0,
                     IO* __restrict__ grad_gi, IO* __restrict__ grad_gh,
                     typename Traits<IO>::Acc* __restrict__ grad_h0, int T, int B) {
  using Acc = typename Traits<IO>::Acc;
  using WT = typename Traits<IO>::W;
  constexpr int R = Traits<IO>::R;
  constexpr int H3 = 3 * H;
  static_assert(H % 32 == 0 && H % 4 == 0, "H must be a multiple of 32");

  extern __shared__ __align__(16) unsigned char smem_raw[];

  const int d = blockIdx.y;
  const int G = blockDim.x / H;
  const int BB = G * R;
  const int j = threadIdx.x % H;
  const int grp = threadIdx.x / H;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BB + static_cast<int64_t>(grp) * R;

  const WT* M;
  Acc* dgs;
  if constexpr (kWSmem) {
    WT* ws = reinterpret_cast<WT*>(smem_raw);
    copy_to_smem(ws, w + static_cast<size_t>(d) * H3 * H, H3 * H);
    M = ws;
    dgs = reinterpret_cast<Acc*>(smem_raw + sizeof(WT) * H3 * H);
  } else {
    M = w + static_cast<size_t>(d) * H3 * H;
    dgs = reinterpret_cast<Acc*>(smem_raw);
  }

  bool valid[R];
#pragma unroll
  for (int r = 0; r < R; ++r) valid[r] = (row0 + r) < B;

  // Per-step inputs of the step about to be processed (loaded one step ahead).
  Acc cgy[R], cr[R], cz[R], cn[R], chn[R], chp[R];
  auto load_step = [&](int s) {
    const int t = (d == 0) ? s : (T - 1 - s);
    const int tp = (d == 0) ? (t - 1) : (t + 1);  // time of h_prev (valid when s > 0)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (valid[r]) {
        const int64_t b = row0 + r;
        const int64_t tb = static_cast<int64_t>(t) * B + b;
        cgy[r] = ld_acc(grad_y + tb * (2 * H) + d * H + j);
        const IO* sp = saved + tb * (8 * H) + d * (4 * H) + j;
        cr[r] = ld_acc(sp);
        cz[r] = ld_acc(sp + H);
        cn[r] = ld_acc(sp + 2 * H);
        chn[r] = ld_acc(sp + 3 * H);
        chp[r] = (s > 0) ? ld_acc(y + (static_cast<int64_t>(tp) * B + b) * (2 * H) + d * H + j)
                         : h0[(static_cast<int64_t>(d) * B + b) * H + j];
      } else {
        cgy[r] = Acc(0);
        cr[r] = Acc(0);
        cz[r] = Acc(0);
        cn[r] = Acc(0);
        chn[r] = Acc(0);
        chp[r] = Acc(0);
      }
    }
  };

  Acc dh[R];
#pragma unroll
  for (int r = 0; r < R; ++r) dh[r] = Acc(0);

  if (T > 0) load_step(T - 1);
  if constexpr (kWSmem) __syncthreads();  // W in shared memory (the per-step barrier would also cover it)

  for (int s = T - 1; s >= 0; --s) {
    const int t = (d == 0) ? s : (T - 1 - s);
    Acc* dbuf = dgs + (s & 1) * BB * H3;
    Acc dhz[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const Acc g = cgy[r] + dh[r];
      const Acc z = cz[r];
      const Acc n = cn[r];
      const Acc rr = cr[r];
      const Acc dz = g * (chp[r] - n) * z * (Acc(1) - z);
      const Acc dn = g * (Acc(1) - z) * (Acc(1) - n * n);
      const Acc dr = dn * chn[r] * rr * (Acc(1) - rr);
      const Acc dnr = dn * rr;
      dhz[r] = g * z;
      Acc* drow = dbuf + (grp * R + r) * H3 + j;
      drow[0] = dr;
      drow[H] = dz;
      drow[2 * H] = dnr;
      if (valid[r]) {
        const int64_t tb = static_cast<int64_t>(t) * B + row0 + r;
        IO* pi = grad_gi + tb * (6 * H) + d * H3 + j;
        st_io(pi, dr);
        st_io(pi + H, dz);
        st_io(pi + 2 * H, dn);
        IO* ph = grad_gh + tb * (6 * H) + d * H3 + j;
        st_io(ph, dr);
        st_io(ph + H, dz);
        st_io(ph + 2 * H, dnr);
      }
    }
    if (s > 0) load_step(s - 1);
    __syncthreads();  // dbuf complete for all rows of the block

    Acc acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = Acc(0);
    const Acc* drows = dbuf + grp * R * H3;
#pragma unroll 2
    for (int k = 0; k < H3; k += 4) {
      Acc gv[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) ld4(drows + r * H3 + k, gv[r]);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const Acc wv = ld_acc(M + (k + kk) * H + j);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] = madd(wv, gv[r][kk], acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) dh[r] = dhz[r] + acc[r];
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (valid[r]) grad_h0[(static_cast<int64_t>(d) * B + row0 + r) * H + j] = dh[r];
  }
}


// ---- bf16 tensor-core kernels (mma.sync.m16n8k16, fp32 accumulate), H in {32, 64, 128} ----------
//
// Warp w of H/16 warps owns hidden units j0 = 16w .. 16w+15. Block: 2H threads, BB = 8*NT batch rows.
// Fragment layouts (PTX ISA, mma.m16n8k16 .bf16; gid = lane/4, tig = lane%4):
//   A 16x16 row-major: a0 (gid, 2tig..+1), a1 (gid+8, 2tig..+1), a2 (gid, 2tig+8..+9), a3 (gid+8, 2tig+8..+9)
//   B 16x8 "col":      b0 (k = 2tig..+1, n = gid), b1 (k = 2tig+8..+9, n = gid)
//   C/D 16x8 fp32:     c0 (gid, 2tig), c1 (gid, 2tig+1), c2 (gid+8, 2tig), c3 (gid+8, 2tig+1)
// (two bf16 in a 32-bit register: the lower k in the low half.)
// Forward: gh^T[3H x BB] = W[3H x H] . h^T[H x BB]; the warp's A fragments (its 3 gates x 16 units, all
// of K = H) stay in registers for the whole sequence: 3 * H/16 * 4 registers (96 at H = 128).
// Backward: dh^T[H x BB] = W^T[H x 3H] . dgh^T[3H x BB]; A = W^T rows of the warp's 16 units, all of
// K = 3H: 3H/16 * 4 registers (96 at H = 128).
// Thread (warp, lane) owns, per N tile nt, the four (unit, batch column) positions of its C fragment:
//   q = 0..3 -> unit j0 + gid + 8*(q >> 1), column nt*8 + 2*tig + (q & 1)
// and the same positions in all three gates (M tiles r, z, n of the same units), so the pointwise
// step needs no data from other threads. The B operand (h, resp. the gate gradients, rounded to bf16)
// goes through shared memory [BB][K + 8] (the 8-element pad makes the fragment loads conflict-free),
// double-buffered by step parity: one __syncthreads() per step, as in the FFMA kernels.

__device__ __forceinline__ uint32_t pack_bf16(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  const uint32_t l = static_cast<uint32_t>(__bfloat16_as_ushort(lo));
  const uint32_t h = static_cast<uint32_t>(__bfloat16_as_ushort(hi));
  return l | (h << 16);
}

__device__ __forceinline__ uint32_t ld_b32(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#elif defined(BSPF_EMU_MMA)
  BSPF_EMU_MMA(c, a, b0, b1);  // host emulation (tests/test_gru_cuda_emu.py)
#endif
}

template <int H>
struct MmaShape {
  static_assert(H == 32 || H == 64 || H == 128, "tensor-core path: H in {32, 64, 128}");
  static constexpr int kThreads = 2 * H;  // H/16 warps
  static constexpr int kFwdLd = H + 8;    // shared row stride (elements) of h^T
  static constexpr int kBwdLd = 3 * H + 8;
};

// gi [T,B,6H] bf16; w_t [2][H][3H] bf16 (W^T); b_hh [2][3H] f32; h0 [2][B][H] f32; y [T,B,2H] bf16;
// saved [T,B,8H] bf16 or null. Dynamic shared memory: [2][8*NT][H+8] bf16.
template <int H, int NT>
__global__ void __launch_bounds__(MmaShape<H>::kThreads, 1)
    bigru_fwd_mma_kernel(const __nv_bfloat16* __restrict__ gi, const __nv_bfloat16* __restrict__ w_t,
                         const float* __restrict__ b_hh, const float* __restrict__ h0, __nv_bfloat16* __restrict__ y,
                         __nv_bfloat16* __restrict__ saved, int T, int B) {
  constexpr int H3 = 3 * H;
  constexpr int KT = H / 16;
  constexpr int BB = 8 * NT;
  constexpr int LD = MmaShape<H>::kFwdLd;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* hs = reinterpret_cast<__nv_bfloat16*>(smem_raw);

  const int d = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const int j0 = warp * 16;
  const int64_t nb0 = static_cast<int64_t>(blockIdx.x) * BB;

  // A fragments: A[m][k] = W[g*H + j0 + m][k] = w_t[k][g*H + j0 + m].
  uint32_t wa[3][KT][4];
  const __nv_bfloat16* wd = w_t + static_cast<size_t>(d) * H * H3;
#pragma unroll
  for (int g = 0; g < 3; ++g) {
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = gid + 8 * (i & 1);
        const int k = kt * 16 + 2 * tig + 8 * (i >> 1);
        const int col = g * H + j0 + m;
        wa[g][kt][i] = pack_bf16(wd[static_cast<size_t>(k) * H3 + col], wd[static_cast<size_t>(k + 1) * H3 + col]);
      }
    }
  }
  float bias[3][2];
#pragma unroll
  for (int g = 0; g < 3; ++g) {
#pragma unroll
    for (int u = 0; u < 2; ++u) bias[g][u] = b_hh[d * H3 + g * H + j0 + gid + 8 * u];
  }

  bool valid[NT][2];
  float hst[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) valid[nt][e] = nb0 + nt * 8 + 2 * tig + e < B;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int unit = j0 + gid + 8 * (q >> 1);
      const int col = nt * 8 + 2 * tig + (q & 1);
      hst[nt][q] = valid[nt][q & 1] ? h0[(static_cast<int64_t>(d) * B + nb0 + col) * H + unit] : 0.0f;
      hs[col * LD + unit] = __float2bfloat16_rn(hst[nt][q]);  // buffer 0
    }
  }
  // Input projections of the step about to be processed, loaded one step ahead.
  float x[3][NT][4];
  auto load_x = [&](int s) {
    const int t = (d == 0) ? s : (T - 1 - s);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int unit = j0 + gid + 8 * (q >> 1);
        const int col = nt * 8 + 2 * tig + (q & 1);
        if (valid[nt][q & 1]) {
          const __nv_bfloat16* p = gi + (static_cast<int64_t>(t) * B + nb0 + col) * (6 * H) + d * H3 + unit;
#pragma unroll
          for (int g = 0; g < 3; ++g) x[g][nt][q] = __bfloat162float(p[g * H]);
        } else {
#pragma unroll
          for (int g = 0; g < 3; ++g) x[g][nt][q] = 0.0f;
        }
      }
    }
  };
  if (T > 0) load_x(0);
  __syncthreads();

  for (int s = 0; s < T; ++s) {
    const int t = (d == 0) ? s : (T - 1 - s);
    const __nv_bfloat16* hcur = hs + (s & 1) * BB * LD;
    __nv_bfloat16* hnxt = hs + ((s & 1) ^ 1) * BB * LD;

    float acc[3][NT][4];
#pragma unroll
    for (int g = 0; g < 3; ++g) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[g][nt][q] = bias[g][q >> 1];
      }
    }
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const __nv_bfloat16* bp = hcur + (nt * 8 + gid) * LD + kt * 16 + 2 * tig;
        const uint32_t b0 = ld_b32(bp);
        const uint32_t b1 = ld_b32(bp + 8);
#pragma unroll
        for (int g = 0; g < 3; ++g) mma_bf16_16816(acc[g][nt], wa[g][kt], b0, b1);
      }
    }

#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int unit = j0 + gid + 8 * (q >> 1);
        const int col = nt * 8 + 2 * tig + (q & 1);
        const float rg = act_sigmoid<true>(x[0][nt][q] + acc[0][nt][q]);
        const float zg = act_sigmoid<true>(x[1][nt][q] + acc[1][nt][q]);
        const float ng = act_tanh<true>(madd(rg, acc[2][nt][q], x[2][nt][q]));
        const float hnew = madd(zg, hst[nt][q] - ng, ng);
        hst[nt][q] = hnew;
        hnxt[col * LD + unit] = __float2bfloat16_rn(hnew);
        if (valid[nt][q & 1]) {
          const int64_t tb = static_cast<int64_t>(t) * B + nb0 + col;
          y[tb * (2 * H) + d * H + unit] = __float2bfloat16_rn(hnew);
          if (saved != nullptr) {
            __nv_bfloat16* sp = saved + tb * (8 * H) + d * (4 * H) + unit;
            sp[0] = __float2bfloat16_rn(rg);
            sp[H] = __float2bfloat16_rn(zg);
            sp[2 * H] = __float2bfloat16_rn(ng);
            sp[3 * H] = __float2bfloat16_rn(acc[2][nt][q]);
          }
        }
      }
    }
    if (s + 1 < T) load_x(s + 1);
    __syncthreads();
  }
}

// grad_y, y [T,B,2H] bf16; saved [T,B,8H] bf16; w [2][3H][H] bf16 (as stored); h0 [2][B][H] f32;
// grad_gi, grad_gh [T,B,6H] bf16; grad_h0 [2][B][H] f32. Dynamic shared memory: [2][8*NT][3H+8] bf16.
template <int H, int NT>
__global__ void __launch_bounds__(MmaShape<H>::kThreads, 1)
    bigru_bwd_mma_kernel(const __nv_bfloat16* __restrict__ grad_y, const __nv_bfloat16* __restrict__ y,
                         const __nv_bfloat16* __restrict__ saved, const __nv_bfloat16* __restrict__ w,
                         const float* __restrict__ h0, __nv_bfloat16* __restrict__ grad_gi,
                         __nv_bfloat16* __restrict__ grad_gh, float* __restrict__ grad_h0, int T, int B) {
  constexpr int H3 = 3 * H;
  constexpr int KT = H3 / 16;
  constexpr int BB = 8 * NT;
  constexpr int LD = MmaShape<H>::kBwdLd;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* dgs = reinterpret_cast<__nv_bfloat16*>(smem_raw);

  const int d = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const int j0 = warp * 16;
  const int64_t nb0 = static_cast<int64_t>(blockIdx.x) * BB;

  // A fragments: A[m][k] = W^T[j0 + m][k] = w[k][j0 + m].
  uint32_t wa[KT][4];
  const __nv_bfloat16* wd = w + static_cast<size_t>(d) * H3 * H;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m = gid + 8 * (i & 1);
      const int k = kt * 16 + 2 * tig + 8 * (i >> 1);
      wa[kt][i] = pack_bf16(wd[static_cast<size_t>(k) * H + j0 + m], wd[static_cast<size_t>(k + 1) * H + j0 + m]);
    }
  }

  bool valid[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) valid[nt][e] = nb0 + nt * 8 + 2 * tig + e < B;
  }

  float cgy[NT][4], cr[NT][4], cz[NT][4], cn[NT][4], chn[NT][4], chp[NT][4];
  auto load_step = [&](int s) {
    const int t = (d == 0) ? s : (T - 1 - s);
    const int tp = (d == 0) ? (t - 1) : (t + 1);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int unit = j0 + gid + 8 * (q >> 1);
        const int col = nt * 8 + 2 * tig + (q & 1);
        if (valid[nt][q & 1]) {
          const int64_t b = nb0 + col;
          const int64_t tb = static_cast<int64_t>(t) * B + b;
          cgy[nt][q] = __bfloat162float(grad_y[tb * (2 * H) + d * H + unit]);
          const __nv_bfloat16* sp = saved + tb * (8 * H) + d * (4 * H) + unit;
          cr[nt][q] = __bfloat162float(sp[0]);
          cz[nt][q] = __bfloat162float(sp[H]);
          cn[nt][q] = __bfloat162float(sp[2 * H]);
          chn[nt][q] = __bfloat162float(sp[3 * H]);
          chp[nt][q] = (s > 0) ? __bfloat162float(y[(static_cast<int64_t>(tp) * B + b) * (2 * H) + d * H + unit])
                               : h0[(static_cast<int64_t>(d) * B + b) * H + unit];
        } else {
          cgy[nt][q] = 0.0f;
          cr[nt][q] = 0.0f;
          cz[nt][q] = 0.0f;
          cn[nt][q] = 0.0f;
          chn[nt][q] = 0.0f;
          chp[nt][q] = 0.0f;
        }
      }
    }
  };

  float dh[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int q = 0; q < 4; ++q) dh[nt][q] = 0.0f;
  }
  if (T > 0) load_step(T - 1);

  for (int s = T - 1; s >= 0; --s) {
    const int t = (d == 0) ? s : (T - 1 - s);
    __nv_bfloat16* dbuf = dgs + (s & 1) * BB * LD;
    float dhz[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int unit = j0 + gid + 8 * (q >> 1);
        const int col = nt * 8 + 2 * tig + (q & 1);
        const float g = cgy[nt][q] + dh[nt][q];
        const float z = cz[nt][q];
        const float n = cn[nt][q];
        const float rr = cr[nt][q];
        const float dz = g * (chp[nt][q] - n) * z * (1.0f - z);
        const float dn = g * (1.0f - z) * (1.0f - n * n);
        const float dr = dn * chn[nt][q] * rr * (1.0f - rr);
        const float dnr = dn * rr;
        dhz[nt][q] = g * z;
        __nv_bfloat16* drow = dbuf + col * LD + unit;
        drow[0] = __float2bfloat16_rn(dr);
        drow[H] = __float2bfloat16_rn(dz);
        drow[2 * H] = __float2bfloat16_rn(dnr);
        if (valid[nt][q & 1]) {
          const int64_t tb = static_cast<int64_t>(t) * B + nb0 + col;
          __nv_bfloat16* pi = grad_gi + tb * (6 * H) + d * H3 + unit;
          pi[0] = __float2bfloat16_rn(dr);
          pi[H] = __float2bfloat16_rn(dz);
          pi[2 * H] = __float2bfloat16_rn(dn);
          __nv_bfloat16* ph = grad_gh + tb * (6 * H) + d * H3 + unit;
          ph[0] = __float2bfloat16_rn(dr);
          ph[H] = __float2bfloat16_rn(dz);
          ph[2 * H] = __float2bfloat16_rn(dnr);
        }
      }
    }
    if (s > 0) load_step(s - 1);
    __syncthreads();

    // K = 3H split into its three gate blocks, one accumulator each, interleaved in issue order:
    // three independent mma chains of H/16 steps instead of one chain of 3H/16.
    constexpr int KG = KT / 3;
    float acc[3][NT][4];
#pragma unroll
    for (int g = 0; g < 3; ++g) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[g][nt][q] = 0.0f;
      }
    }
#pragma unroll
    for (int kk = 0; kk < KG; ++kk) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int g = 0; g < 3; ++g) {
          const int kt = g * KG + kk;
          const __nv_bfloat16* bp = dbuf + (nt * 8 + gid) * LD + kt * 16 + 2 * tig;
          mma_bf16_16816(acc[g][nt], wa[kt], ld_b32(bp), ld_b32(bp + 8));
        }
      }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int q = 0; q < 4; ++q) dh[nt][q] = dhz[nt][q] + (acc[0][nt][q] + acc[1][nt][q] + acc[2][nt][q]);
    }
  }

#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (valid[nt][q & 1]) {
        const int unit = j0 + gid + 8 * (q >> 1);
        const int col = nt * 8 + 2 * tig + (q & 1);
        grad_h0[(static_cast<int64_t>(d) * B + nb0 + col) * H + unit] = dh[nt][q];
      }
    }
  }
}

}  // namespace detail
}  // namespace bsp_fast_cuda
