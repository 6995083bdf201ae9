// Host-side interface of the fused bidirectional GRU recurrence on CUDA (csrc/gru_cuda.cu).
//
// Plain C++ (no CUDA, no pybind11, no libtorch types) so that the pybind11 module
// (csrc/gru_cuda_module.cpp, compiled by the host compiler) and the CUDA translation unit share it.
// Every buffer is allocated by torch in Python and passed as a raw device pointer; all tensors are
// dense and contiguous in the layouts of docs/contracts.md. The stream is torch's current stream
// (a cudaStream_t passed as void*). Each function returns "" on success or an error message.
#pragma once

#include <cstdint>
#include <string>

namespace bsp_fast_cuda {

// Precision modes. Names are the storage types of gi / y / saved / grad_y / grad_gi / grad_gh and
// of the recurrent weights; state, biases, h0, grad_h0 and all accumulation are fp32 (fp64 in kF64).
enum Mode : int {
  kF32 = 0,   // fp32 everywhere, exact FFMA path (no TF32)
  kBF16 = 1,  // bf16 gi/y/saved/grads and W_hh, fp32 state/bias/h0/accumulation
  kF64 = 2,   // fp64 everywhere (for gradcheck; speed irrelevant)
};

// How a call is laid out on the GPU (also returned to Python for tests and benchmarks).
struct Plan {
  // FFMA kernels: G groups of H threads, each thread owns hidden unit j of R batch rows.
  // MMA kernels (kernel == 1): 2H threads (H/16 warps), groups = NT batch tiles of 8 rows,
  // rows_per_thread = 2*NT (each thread owns 2 batch columns of each tile, for 2 hidden units).
  int rows_per_thread = 0;   // R: batch rows each thread owns (register tile)
  int groups = 0;            // G: thread groups of H threads; a block has G*H threads
  int threads = 0;           // G*H
  int rows_per_block = 0;    // G*R
  int blocks_per_dir = 0;    // ceil(B / rows_per_block); grid = (blocks_per_dir, 2)
  int64_t smem_bytes = 0;    // dynamic shared memory per block
  bool w_in_smem = false;    // W_hh of the block's direction held in shared memory (else read via L1/L2)
  int kernel = 0;            // 0: FFMA kernels; 1: bf16 tensor-core kernels (mma.sync, W_hh in registers)
};

struct DeviceInfo {
  int sm_count = 0;
  int smem_optin = 0;        // cudaDevAttrMaxSharedMemoryPerBlockOptin
  int cc_major = 0;
  int cc_minor = 0;
};

// Number of visible CUDA devices (0 when there is no driver or no GPU; never throws).
int device_count();
int runtime_version();
int driver_version();
std::string device_info(int device, DeviceInfo* out);

bool supported_hidden(int H);
// allow_mma: bf16 with H <= 128 uses the tensor-core kernels (else the FFMA kernels, as in fp32).
std::string make_plan(int mode, bool backward, int64_t B, int H, const DeviceInfo& dev, bool allow_mma, Plan* out);

// forward: gi [T,B,6H], w_t [2,H,3H] (W_hh TRANSPOSED per direction, for every kernel), b_hh [2,3H] (acc type),
// h0 [2,B,H] (acc type) -> y [T,B,2H], saved [T,B,8H] (saved may be null: inference, no gates kept).
std::string forward(int mode, int64_t T, int64_t B, int H, const void* gi, const void* w_t, const void* b_hh,
                    const void* h0, void* y, void* saved, void* stream, int device, bool allow_mma,
                    Plan* plan_out);

// backward: grad_y [T,B,2H], y [T,B,2H], saved [T,B,8H], w [2,3H,H] (W_hh as stored, for every kernel), h0 [2,B,H]
// (acc type) -> grad_gi [T,B,6H], grad_gh [T,B,6H], grad_h0 [2,B,H] (acc type).
std::string backward(int mode, int64_t T, int64_t B, int H, const void* grad_y, const void* y, const void* saved,
                     const void* w, const void* h0, void* grad_gi, void* grad_gh, void* grad_h0, void* stream,
                     int device, bool allow_mma, Plan* plan_out);

}  // namespace bsp_fast_cuda
