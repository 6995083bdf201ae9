// Fused bidirectional GRU recurrence on CUDA: one launch per layer runs both directions,
// forward (bigru_fwd_kernel) and backward (bigru_bwd_kernel). Semantics: docs/contracts.md.
//
// Layout of the work
//   grid  = (blocks_per_dir, 2): blockIdx.y is the direction d, blockIdx.x a slice of the batch.
//   block = G groups of H threads. Thread (grp, j) owns hidden unit j of R consecutive batch rows
//           row0 + r, row0 = blockIdx.x * (G*R) + grp * R, r < R. A block owns rows_per_block = G*R
//           rows; the last block of a direction is partially filled when B is not a multiple of G*R
//           (rows >= B compute on zeros and are never stored), so no whole block is wasted.
//   Blocks never talk to each other: there is no grid barrier, any number of waves is fine.
//
// Forward, per step (direction d reads time t = s for d = 0, t = T-1-s for d = 1):
//   gh[row, g*H + j] = b_hh[g*H + j] + sum_k W[g*H + j, k] * h[row, k]     (FFMA, fp32/fp64 accumulate)
//   W is read from M = W^T [H][3H] (shared memory when it fits, else global/L2), so a warp's 32 lanes
//   read 32 consecutive words (no bank conflicts); h[row, k] comes from a shared-memory state buffer
//   (all lanes of a warp read the same address: a broadcast). The state buffer is double-buffered by
//   step parity, so one __syncthreads() per step suffices: step s reads buf[s&1] and writes
//   buf[(s+1)&1]; the barrier at the end of step s separates every read of buf[s&1] in step s from the
//   writes into it in step s+1. Each thread keeps its own h[row, j] in registers (fp32 state).
// Backward, per step in reverse order (s = T-1 .. 0), dh = grad_y + dh_next:
//   dz = dh (h_prev - n) z (1 - z); dn = dh (1 - z)(1 - n^2); dr = dn hn r (1 - r)
//   grad_gi = [dr, dz, dn]; grad_gh = [dr, dz, dn r];  dh_prev[row, j] = z dh + sum_i W[i, j] grad_gh[row, i]
//   The gate gradients of the block go to a shared buffer [BB][3H] (double-buffered by step parity,
//   one barrier per step, same argument as above), W is read as stored, [3H][H] (lane j reads word j).
//   The per-step global loads (grad_y, saved, h_prev) of step s-1 are issued before the barrier and
//   matmul of step s, so their latency hides behind the matmul.
//
// bf16 tensor-core kernels (bigru_fwd_mma_kernel / bigru_bwd_mma_kernel, bf16 with H <= 128 unless
// the caller passes allow_mma = false): the same step structure, but per step the block computes
// gh^T = W . h^T (forward) or dh^T = W^T . dgh^T (backward) with mma.sync.m16n8k16 (bf16 in, fp32
// accumulate); each warp keeps its 16 hidden units' rows of W (forward) / W^T (backward) as A
// fragments in registers for the whole sequence, the batch is the N dimension (8*NT rows per block),
// and the B operand (h resp. the gate gradients, rounded to bf16) is exchanged through a padded,
// double-buffered shared-memory tile. Details: csrc/gru_cuda_kernels.cuh.
//
// Precision: kF32 uses IEEE expf/tanhf and plain FFMA (no TF32, no fast math: the file refuses to
// compile with --use_fast_math); kBF16 stores gi/y/saved/grads and W_hh in bf16, keeps state, bias and
// accumulation in fp32, and uses tanh.approx for the activations (error ~2^-11, below bf16's 2^-8);
// kF64 is fp64 throughout (W read from global memory; it exists for gradcheck).


#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "gru_cuda.h"
#include "gru_cuda_kernels.cuh"

#if defined(__USE_FAST_MATH__)
#error "csrc/gru_cuda.cu must be compiled without --use_fast_math (the fp32 path promises nn.GRU parity)"
#endif

namespace bsp_fast_cuda {
namespace {

using namespace detail;

// ---- host side ---------------------------------------------------------------------------------

std::string cuda_error(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

size_t io_size(int mode) { return mode == kF32 ? 4 : (mode == kBF16 ? 2 : 8); }
size_t acc_size(int mode) { return mode == kF64 ? 8 : 4; }
int rows_per_thread(int mode) { return mode == kF64 ? Traits<double>::R : Traits<float>::R; }

template <typename IO, int H>
std::string launch_fwd(const Plan& p, int T, int B, const void* gi, const void* w_t, const void* b_hh,
                       const void* h0, void* y, void* saved, cudaStream_t st) {
  using Acc = typename Traits<IO>::Acc;
  using WT = typename Traits<IO>::W;
  void (*kern)(const IO*, const WT*, const Acc*, const Acc*, IO*, IO*, int, int) = bigru_fwd_kernel<IO, H, false>;
  if constexpr (Traits<IO>::kAllowSmem) {
    if (p.w_in_smem) kern = bigru_fwd_kernel<IO, H, true>;
  }
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.smem_bytes));
  if (e != cudaSuccess) return cuda_error("cudaFuncSetAttribute(bigru_fwd_kernel)", e);
  kern<<<dim3(static_cast<unsigned>(p.blocks_per_dir), 2), p.threads, static_cast<size_t>(p.smem_bytes), st>>>(
      static_cast<const IO*>(gi), static_cast<const WT*>(w_t), static_cast<const Acc*>(b_hh),
      static_cast<const Acc*>(h0), static_cast<IO*>(y), static_cast<IO*>(saved), T, B);
  e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error("launch bigru_fwd_kernel", e);
  return std::string();
}

template <typename IO, int H>
std::string launch_bwd(const Plan& p, int T, int B, const void* grad_y, const void* y, const void* saved,
                       const void* w, const void* h0, void* grad_gi, void* grad_gh, void* grad_h0, cudaStream_t st) {
  using Acc = typename Traits<IO>::Acc;
  using WT = typename Traits<IO>::W;
  void (*kern)(const IO*, const IO*, const IO*, const WT*, const Acc*, IO*, IO*, Acc*, int, int) =
      bigru_bwd_kernel<IO, H, false>;
  if constexpr (Traits<IO>::kAllowSmem) {
    if (p.w_in_smem) kern = bigru_bwd_kernel<IO, H, true>;
  }
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.smem_bytes));
  if (e != cudaSuccess) return cuda_error("cudaFuncSetAttribute(bigru_bwd_kernel)", e);
  kern<<<dim3(static_cast<unsigned>(p.blocks_per_dir), 2), p.threads, static_cast<size_t>(p.smem_bytes), st>>>(
      static_cast<const IO*>(grad_y), static_cast<const IO*>(y), static_cast<const IO*>(saved),
      static_cast<const WT*>(w), static_cast<const Acc*>(h0), static_cast<IO*>(grad_gi), static_cast<IO*>(grad_gh),
      static_cast<Acc*>(grad_h0), T, B);
  e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error("launch bigru_bwd_kernel", e);
  return std::string();
}

template <int H, int NT>
std::string launch_fwd_mma(const Plan& p, int T, int B, const void* gi, const void* w_t, const void* b_hh,
                           const void* h0, void* y, void* saved, cudaStream_t st) {
  auto kern = bigru_fwd_mma_kernel<H, NT>;
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.smem_bytes));
  if (e != cudaSuccess) return cuda_error("cudaFuncSetAttribute(bigru_fwd_mma_kernel)", e);
  kern<<<dim3(static_cast<unsigned>(p.blocks_per_dir), 2), p.threads, static_cast<size_t>(p.smem_bytes), st>>>(
      static_cast<const __nv_bfloat16*>(gi), static_cast<const __nv_bfloat16*>(w_t), static_cast<const float*>(b_hh),
      static_cast<const float*>(h0), static_cast<__nv_bfloat16*>(y), static_cast<__nv_bfloat16*>(saved), T, B);
  e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error("launch bigru_fwd_mma_kernel", e);
  return std::string();
}

template <int H, int NT>
std::string launch_bwd_mma(const Plan& p, int T, int B, const void* grad_y, const void* y, const void* saved,
                           const void* w, const void* h0, void* grad_gi, void* grad_gh, void* grad_h0, cudaStream_t st) {
  auto kern = bigru_bwd_mma_kernel<H, NT>;
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.smem_bytes));
  if (e != cudaSuccess) return cuda_error("cudaFuncSetAttribute(bigru_bwd_mma_kernel)", e);
  kern<<<dim3(static_cast<unsigned>(p.blocks_per_dir), 2), p.threads, static_cast<size_t>(p.smem_bytes), st>>>(
      static_cast<const __nv_bfloat16*>(grad_y), static_cast<const __nv_bfloat16*>(y),
      static_cast<const __nv_bfloat16*>(saved), static_cast<const __nv_bfloat16*>(w), static_cast<const float*>(h0),
      static_cast<__nv_bfloat16*>(grad_gi), static_cast<__nv_bfloat16*>(grad_gh), static_cast<float*>(grad_h0), T, B);
  e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error("launch bigru_bwd_mma_kernel", e);
  return std::string();
}

std::string dispatch_fwd_mma(int H, const Plan& p, int T, int B, const void* gi, const void* w_t, const void* b_hh,
                             const void* h0, void* y, void* saved, cudaStream_t st) {
  const int nt = p.groups;
  if (H == 32 && nt == 1) return launch_fwd_mma<32, 1>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
  if (H == 32 && nt == 2) return launch_fwd_mma<32, 2>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
  if (H == 64 && nt == 1) return launch_fwd_mma<64, 1>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
  if (H == 64 && nt == 2) return launch_fwd_mma<64, 2>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
  if (H == 128 && nt == 1) return launch_fwd_mma<128, 1>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
  if (H == 128 && nt == 2) return launch_fwd_mma<128, 2>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
  return "no tensor-core forward kernel for H=" + std::to_string(H) + ", NT=" + std::to_string(nt);
}

std::string dispatch_bwd_mma(int H, const Plan& p, int T, int B, const void* grad_y, const void* y, const void* saved,
                             const void* w, const void* h0, void* grad_gi, void* grad_gh, void* grad_h0,
                             cudaStream_t st) {
  const int nt = p.groups;
  if (H == 32 && nt == 1) return launch_bwd_mma<32, 1>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  if (H == 32 && nt == 2) return launch_bwd_mma<32, 2>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  if (H == 64 && nt == 1) return launch_bwd_mma<64, 1>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  if (H == 64 && nt == 2) return launch_bwd_mma<64, 2>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  if (H == 128 && nt == 1)
    return launch_bwd_mma<128, 1>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  if (H == 128 && nt == 2)
    return launch_bwd_mma<128, 2>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  return "no tensor-core backward kernel for H=" + std::to_string(H) + ", NT=" + std::to_string(nt);
}

template <typename IO>
std::string dispatch_fwd(int H, const Plan& p, int T, int B, const void* gi, const void* w_t, const void* b_hh,
                         const void* h0, void* y, void* saved, cudaStream_t st) {
  switch (H) {
    case 32: return launch_fwd<IO, 32>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
    case 64: return launch_fwd<IO, 64>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
    case 128: return launch_fwd<IO, 128>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
    case 256: return launch_fwd<IO, 256>(p, T, B, gi, w_t, b_hh, h0, y, saved, st);
    default: return "unsupported hidden size " + std::to_string(H);
  }
}

template <typename IO>
std::string dispatch_bwd(int H, const Plan& p, int T, int B, const void* grad_y, const void* y, const void* saved,
                         const void* w, const void* h0, void* grad_gi, void* grad_gh, void* grad_h0, cudaStream_t st) {
  switch (H) {
    case 32: return launch_bwd<IO, 32>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
    case 64: return launch_bwd<IO, 64>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
    case 128: return launch_bwd<IO, 128>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
    case 256: return launch_bwd<IO, 256>(p, T, B, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
    default: return "unsupported hidden size " + std::to_string(H);
  }
}

std::string prepare(int mode, bool backward, int64_t T, int64_t B, int H, int device, bool allow_mma, Plan* plan) {
  if (mode != kF32 && mode != kBF16 && mode != kF64) return "unknown mode " + std::to_string(mode);
  if (!supported_hidden(H)) return "unsupported hidden size " + std::to_string(H) + " (32, 64, 128, 256)";
  if (T < 0 || B < 0 || T > INT32_MAX || B > INT32_MAX) return "T and B must be in [0, 2^31)";
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return cuda_error("cudaSetDevice", e);
  DeviceInfo dev;
  std::string err = device_info(device, &dev);
  if (!err.empty()) return err;
  return make_plan(mode, backward, B, H, dev, allow_mma, plan);
}

}  // namespace

// ---- public API --------------------------------------------------------------------------------

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state
    return 0;
  }
  return n;
}

int runtime_version() {
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

std::string device_info(int device, DeviceInfo* out) {
  cudaError_t e;
  if ((e = cudaDeviceGetAttribute(&out->sm_count, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess ||
      (e = cudaDeviceGetAttribute(&out->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) != cudaSuccess ||
      (e = cudaDeviceGetAttribute(&out->cc_major, cudaDevAttrComputeCapabilityMajor, device)) != cudaSuccess ||
      (e = cudaDeviceGetAttribute(&out->cc_minor, cudaDevAttrComputeCapabilityMinor, device)) != cudaSuccess) {
    return cuda_error("cudaDeviceGetAttribute", e);
  }
  return std::string();
}

bool supported_hidden(int H) { return H == 32 || H == 64 || H == 128 || H == 256; }

std::string make_plan(int mode, bool backward, int64_t B, int H, const DeviceInfo& dev, bool allow_mma, Plan* out) {
  if (!supported_hidden(H)) return "unsupported hidden size " + std::to_string(H);
  if (mode == kBF16 && allow_mma && H <= 128) {
    // Tensor-core kernels: 2H threads, NT tiles of 8 batch rows per block (2 if that still fills the SMs).
    const int64_t Bp = B > 0 ? B : 1;
    const int nt = (2 * ((Bp + 15) / 16) >= dev.sm_count) ? 2 : 1;
    const int64_t ld = backward ? 3 * H + 8 : H + 8;
    out->kernel = 1;
    out->groups = nt;
    out->rows_per_thread = 2 * nt;
    out->threads = 2 * H;
    out->rows_per_block = 8 * nt;
    out->blocks_per_dir = static_cast<int>((Bp + out->rows_per_block - 1) / out->rows_per_block);
    out->w_in_smem = false;  // in registers
    out->smem_bytes = 2 * static_cast<int64_t>(out->rows_per_block) * ld * 2;
    if (out->smem_bytes > dev.smem_optin) return "shared memory too small for the tensor-core kernel";
    return std::string();
  }
  const int R = rows_per_thread(mode);
  const int64_t kbuf = backward ? 3 * H : H;  // per-row width of the shared state / gate-gradient buffer
  auto buf_bytes = [&](int g) { return static_cast<int64_t>(2) * g * R * kbuf * static_cast<int64_t>(acc_size(mode)); };
  const int64_t w_bytes = static_cast<int64_t>(3) * H * H * static_cast<int64_t>(io_size(mode));
  const int64_t Bp = B > 0 ? B : 1;
  const int64_t groups_needed = (Bp + R - 1) / R;  // more groups than this would be empty in every block
  int gmax = kMaxThreads / H;
  if (gmax > groups_needed) gmax = static_cast<int>(groups_needed);
  // Largest G whose grid still gives every SM at least one block (more, smaller blocks otherwise).
  int G = 1;
  for (int g = gmax; g >= 1; --g) {
    const int64_t blocks = 2 * ((Bp + static_cast<int64_t>(g) * R - 1) / (static_cast<int64_t>(g) * R));
    if (blocks >= dev.sm_count) {
      G = g;
      break;
    }
  }
  bool w_smem = false;
  int Gs = G;
  if (mode != kF64) {
    for (; Gs >= 1; --Gs) {
      if (w_bytes + buf_bytes(Gs) <= dev.smem_optin) {
        w_smem = true;
        break;
      }
    }
  }
  if (w_smem) {
    G = Gs;
  } else {
    while (G > 1 && buf_bytes(G) > dev.smem_optin) --G;
    if (buf_bytes(G) > dev.smem_optin) return "shared memory too small for one row group";
  }
  out->rows_per_thread = R;
  out->groups = G;
  out->threads = G * H;
  out->rows_per_block = G * R;
  out->blocks_per_dir = static_cast<int>((Bp + out->rows_per_block - 1) / out->rows_per_block);
  out->w_in_smem = w_smem;
  out->smem_bytes = buf_bytes(G) + (w_smem ? w_bytes : 0);
  out->kernel = 0;
  return std::string();
}

std::string forward(int mode, int64_t T, int64_t B, int H, const void* gi, const void* w_t, const void* b_hh,
                    const void* h0, void* y, void* saved, void* stream, int device, bool allow_mma,
                    Plan* plan_out) {
  Plan p;
  std::string err = prepare(mode, false, T, B, H, device, allow_mma, &p);
  if (!err.empty()) return err;
  if (plan_out) *plan_out = p;
  if (T == 0 || B == 0) return std::string();
  if (!gi || !w_t || !b_hh || !h0 || !y) return "null pointer";  // saved may be null (inference)
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int Ti = static_cast<int>(T), Bi = static_cast<int>(B);
  if (p.kernel == 1) return dispatch_fwd_mma(H, p, Ti, Bi, gi, w_t, b_hh, h0, y, saved, st);
  switch (mode) {
    case kF32: return dispatch_fwd<float>(H, p, Ti, Bi, gi, w_t, b_hh, h0, y, saved, st);
    case kBF16: return dispatch_fwd<__nv_bfloat16>(H, p, Ti, Bi, gi, w_t, b_hh, h0, y, saved, st);
    default: return dispatch_fwd<double>(H, p, Ti, Bi, gi, w_t, b_hh, h0, y, saved, st);
  }
}

std::string backward(int mode, int64_t T, int64_t B, int H, const void* grad_y, const void* y, const void* saved,
                     const void* w, const void* h0, void* grad_gi, void* grad_gh, void* grad_h0, void* stream,
                     int device, bool allow_mma, Plan* plan_out) {
  Plan p;
  std::string err = prepare(mode, true, T, B, H, device, allow_mma, &p);
  if (!err.empty()) return err;
  if (plan_out) *plan_out = p;
  if (T == 0 || B == 0) return std::string();
  if (!grad_y || !y || !saved || !w || !h0 || !grad_gi || !grad_gh || !grad_h0) return "null pointer";
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int Ti = static_cast<int>(T), Bi = static_cast<int>(B);
  if (p.kernel == 1) return dispatch_bwd_mma(H, p, Ti, Bi, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  switch (mode) {
    case kF32: return dispatch_bwd<float>(H, p, Ti, Bi, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
    case kBF16:
      return dispatch_bwd<__nv_bfloat16>(H, p, Ti, Bi, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
    default: return dispatch_bwd<double>(H, p, Ti, Bi, grad_y, y, saved, w, h0, grad_gi, grad_gh, grad_h0, st);
  }
}

}  // namespace bsp_fast_cuda
