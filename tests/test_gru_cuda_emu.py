"""The CUDA bi-GRU kernels, run on the CPU (no GPU needed).

csrc/gru_cuda_kernels.cuh is compiled as plain host C++ with g++: each CUDA thread becomes a
std::thread, ``__syncthreads()`` a std::barrier, blocks run one after another (they never talk to each
other), and the dynamic shared memory is one array poisoned with NaN bytes before every block. The
results are held to a float64 reference of docs/contracts.md. This checks the kernels' indexing,
masking of the rows past B, direction/time order, the double-buffered shared state (a read of a
buffer before it is written shows up as NaN) and the gate-gradient algebra; it does not check
timing-dependent races (compute-sanitizer racecheck on a GPU does: benchmarks/gpu_checks.sh).
"""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from _gru_layer_ref import ref_backward, ref_forward  # tests/ is on sys.path (conftest.py)

ROOT = Path(__file__).resolve().parents[1]

HARNESS = r"""
#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include <barrier>
#include <cstring>
#include <thread>
#include <vector>

#include <cstdint>
#include <memory>

namespace emu {
thread_local uint3 tid;
thread_local uint3 bid;
dim3 bdim;
std::barrier<>* bar = nullptr;

// mma.sync.m16n8k16 (bf16 in, fp32 accumulate) as a warp-collective: every lane publishes its
// fragments, then computes its own C elements from the whole A (16x16) and B (16x8), with the
// fragment layouts of the PTX ISA (groupID = lane / 4, threadID_in_group = lane % 4):
//   A reg r of lane: row groupID + 8*(r & 1), cols 2*tig + 8*(r >> 1) + {0, 1} (low half first)
//   B reg r of lane: rows 2*tig + 8*r + {0, 1}, col groupID
//   C elem i of lane: row groupID + 8*(i >> 1), col 2*tig + (i & 1)
struct WarpStage {
  uint32_t a[32][4];
  uint32_t b[32][2];
};
std::vector<WarpStage> stages;
std::vector<std::unique_ptr<std::barrier<>>> wbars;

inline float bf_half(uint32_t v, int hi) {
  const uint32_t bits = (hi ? (v >> 16) : (v & 0xFFFFu)) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const int w = tid.x / 32, lane = tid.x % 32;
  WarpStage& st = stages[w];
  for (int i = 0; i < 4; ++i) st.a[lane][i] = a[i];
  st.b[lane][0] = b0;
  st.b[lane][1] = b1;
  wbars[w]->arrive_and_wait();
  auto A = [&](int m, int k) {
    const int ln = (m % 8) * 4 + (k % 8) / 2;
    const int reg = (m >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return bf_half(st.a[ln][reg], k % 2);
  };
  auto Bm = [&](int k, int n) {
    const int ln = n * 4 + (k % 8) / 2;
    const int reg = k >= 8 ? 1 : 0;
    return bf_half(st.b[ln][reg], k % 2);
  };
  const int gid = lane / 4, tig = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int m = gid + 8 * (i >> 1), n = 2 * tig + (i & 1);
    float sum = c[i];
    for (int k = 0; k < 16; ++k) sum += A(m, k) * Bm(k, n);
    c[i] = sum;
  }
  wbars[w]->arrive_and_wait();
}
}  // namespace emu

#define BSPF_EMU_MMA(c, a, b0, b1) emu::mma(c, a, b0, b1)

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __shared__
#define __shared__
#undef threadIdx
#define threadIdx (emu::tid)
#undef blockIdx
#define blockIdx (emu::bid)
#undef blockDim
#define blockDim (emu::bdim)
#define __syncthreads() (emu::bar->arrive_and_wait())

namespace bsp_fast_cuda {
namespace detail {
constexpr size_t kEmuSmem = 512 * 1024;
alignas(16) unsigned char smem_raw[kEmuSmem];
}  // namespace detail
}  // namespace bsp_fast_cuda

#include "gru_cuda_kernels.cuh"

using namespace bsp_fast_cuda::detail;

template <class F>
static void run_grid(int nbx, int nthreads, F f) {
  emu::bdim = dim3(nthreads, 1, 1);
  for (int d = 0; d < 2; ++d) {
    for (int bx = 0; bx < nbx; ++bx) {
      std::barrier<> bar(nthreads);
      emu::bar = &bar;
      emu::stages.assign((nthreads + 31) / 32, emu::WarpStage{});
      emu::wbars.clear();
      for (int w = 0; w < (nthreads + 31) / 32; ++w) emu::wbars.push_back(std::make_unique<std::barrier<>>(32));
      std::memset(smem_raw, 0xFF, kEmuSmem);  // NaN in float, bf16 and double
      std::vector<std::thread> ts;
      ts.reserve(nthreads);
      for (int t = 0; t < nthreads; ++t) {
        ts.emplace_back([=] {
          emu::tid = make_uint3(t, 0, 0);
          emu::bid = make_uint3(bx, d, 0);
          f();
        });
      }
      for (auto& th : ts) th.join();
    }
  }
}

template <typename IO, int H, bool S>
static void fwd(int T, int B, int G, const void* gi, const void* w_t, const void* b, const void* h0, void* y,
                void* saved) {
  using Acc = typename Traits<IO>::Acc;
  using WT = typename Traits<IO>::W;
  const int R = Traits<IO>::R;
  const int nbx = (B + G * R - 1) / (G * R);
  run_grid(nbx, G * H, [=] {
    bigru_fwd_kernel<IO, H, S>(static_cast<const IO*>(gi), static_cast<const WT*>(w_t), static_cast<const Acc*>(b),
                               static_cast<const Acc*>(h0), static_cast<IO*>(y), static_cast<IO*>(saved), T, B);
  });
}

template <typename IO, int H, bool S>
static void bwd(int T, int B, int G, const void* gy, const void* y, const void* saved, const void* w, const void* h0,
                void* ggi, void* ggh, void* gh0) {
  using Acc = typename Traits<IO>::Acc;
  using WT = typename Traits<IO>::W;
  const int R = Traits<IO>::R;
  const int nbx = (B + G * R - 1) / (G * R);
  run_grid(nbx, G * H, [=] {
    bigru_bwd_kernel<IO, H, S>(static_cast<const IO*>(gy), static_cast<const IO*>(y), static_cast<const IO*>(saved),
                               static_cast<const WT*>(w), static_cast<const Acc*>(h0), static_cast<IO*>(ggi),
                               static_cast<IO*>(ggh), static_cast<Acc*>(gh0), T, B);
  });
}

template <int H, int NT>
static void fwd_mma(int T, int B, const void* gi, const void* w_t, const void* b, const void* h0, void* y,
                    void* saved) {
  const int nbx = (B + 8 * NT - 1) / (8 * NT);
  run_grid(nbx, 2 * H, [=] {
    bigru_fwd_mma_kernel<H, NT>(static_cast<const __nv_bfloat16*>(gi), static_cast<const __nv_bfloat16*>(w_t),
                                static_cast<const float*>(b), static_cast<const float*>(h0),
                                static_cast<__nv_bfloat16*>(y), static_cast<__nv_bfloat16*>(saved), T, B);
  });
}

template <int H, int NT>
static void bwd_mma(int T, int B, const void* gy, const void* y, const void* saved, const void* w, const void* h0,
                    void* ggi, void* ggh, void* gh0) {
  const int nbx = (B + 8 * NT - 1) / (8 * NT);
  run_grid(nbx, 2 * H, [=] {
    bigru_bwd_mma_kernel<H, NT>(static_cast<const __nv_bfloat16*>(gy), static_cast<const __nv_bfloat16*>(y),
                                static_cast<const __nv_bfloat16*>(saved), static_cast<const __nv_bfloat16*>(w),
                                static_cast<const float*>(h0), static_cast<__nv_bfloat16*>(ggi),
                                static_cast<__nv_bfloat16*>(ggh), static_cast<float*>(gh0), T, B);
  });
}

#define DISPATCH_MMA(FN, ...)                                    \
  if (H == 32 && nt == 1) FN<32, 1>(__VA_ARGS__);                \
  else if (H == 32 && nt == 2) FN<32, 2>(__VA_ARGS__);           \
  else if (H == 64 && nt == 1) FN<64, 1>(__VA_ARGS__);           \
  else if (H == 128 && nt == 1) FN<128, 1>(__VA_ARGS__);         \
  else if (H == 128 && nt == 2) FN<128, 2>(__VA_ARGS__);         \
  else return 1;                                                 \
  return 0;

extern "C" int emu_forward_mma(int H, int nt, int T, int B, const void* gi, const void* w_t, const void* b,
                               const void* h0, void* y, void* saved) {
  DISPATCH_MMA(fwd_mma, T, B, gi, w_t, b, h0, y, saved)
}

extern "C" int emu_backward_mma(int H, int nt, int T, int B, const void* gy, const void* y, const void* saved,
                                const void* w, const void* h0, void* ggi, void* ggh, void* gh0) {
  DISPATCH_MMA(bwd_mma, T, B, gy, y, saved, w, h0, ggi, ggh, gh0)
}

#define DISPATCH(FN, ...)                                                              \
  if (mode == 0 && H == 32 && s) FN<float, 32, true>(__VA_ARGS__);                     \
  else if (mode == 0 && H == 32) FN<float, 32, false>(__VA_ARGS__);                    \
  else if (mode == 0 && H == 64 && s) FN<float, 64, true>(__VA_ARGS__);                \
  else if (mode == 0 && H == 64) FN<float, 64, false>(__VA_ARGS__);                    \
  else if (mode == 0 && H == 128 && s) FN<float, 128, true>(__VA_ARGS__);              \
  else if (mode == 0 && H == 256) FN<float, 256, false>(__VA_ARGS__);                  \
  else if (mode == 1 && H == 256) FN<__nv_bfloat16, 256, false>(__VA_ARGS__);          \
  else if (mode == 1 && H == 32 && s) FN<__nv_bfloat16, 32, true>(__VA_ARGS__);        \
  else if (mode == 1 && H == 32) FN<__nv_bfloat16, 32, false>(__VA_ARGS__);            \
  else if (mode == 2 && H == 32) FN<double, 32, false>(__VA_ARGS__);                   \
  else return 1;                                                                       \
  return 0;

extern "C" int emu_rows_per_thread(int mode) {
  return mode == 2 ? Traits<double>::R : Traits<float>::R;
}

extern "C" int emu_forward(int mode, int H, int s, int T, int B, int G, const void* gi, const void* w_t, const void* b,
                           const void* h0, void* y, void* saved) {
  DISPATCH(fwd, T, B, G, gi, w_t, b, h0, y, saved)
}

extern "C" int emu_backward(int mode, int H, int s, int T, int B, int G, const void* gy, const void* y,
                            const void* saved, const void* w, const void* h0, void* ggi, void* ggh, void* gh0) {
  DISPATCH(bwd, T, B, G, gy, y, saved, w, h0, ggi, ggh, gh0)
}
"""


def _cuda_include() -> Path | None:
    cands = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        cands.append(Path(nvcc).resolve().parent.parent / "include")
    cands += [Path("/usr/local/cuda/include")]
    for c in cands:
        if (c / "cuda_bf16.h").exists() and (c / "cuda_runtime.h").exists():
            return c
    return None


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    gxx = shutil.which("g++")
    inc = _cuda_include()
    if gxx is None or inc is None:
        pytest.skip("needs g++ and the CUDA headers")
    d = tmp_path_factory.mktemp("gru_emu")
    src = d / "emu.cpp"
    src.write_text(HARNESS)
    lib = d / "libemu.so"
    cmd = [gxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-w",
           f"-I{ROOT / 'csrc'}", f"-I{inc}", str(src), "-o", str(lib)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    L = ctypes.CDLL(str(lib))
    vp = ctypes.c_void_p
    L.emu_forward.argtypes = [ctypes.c_int] * 6 + [vp] * 6
    L.emu_backward.argtypes = [ctypes.c_int] * 6 + [vp] * 8
    L.emu_rows_per_thread.argtypes = [ctypes.c_int]
    L.emu_forward_mma.argtypes = [ctypes.c_int] * 4 + [vp] * 6
    L.emu_backward_mma.argtypes = [ctypes.c_int] * 4 + [vp] * 8
    return L


def _p(t):
    return ctypes.c_void_p(t.data_ptr())


DTYPES = {0: torch.float32, 1: torch.bfloat16, 2: torch.float64}

CASES = [
    # mode, H, w_in_smem, T, B, G
    (0, 32, True, 5, 11, 1),    # odd B, partial last block
    (0, 32, True, 4, 19, 2),    # two row groups, second partially filled
    (0, 32, False, 3, 8, 1),    # W from global memory, exactly one full block
    (0, 64, True, 6, 17, 3),    # 3 groups x 8 rows: one block, third group has 1 valid row
    (0, 64, False, 1, 3, 1),    # T = 1
    (1, 32, True, 5, 9, 1),     # bf16
    (1, 32, False, 3, 5, 2),    # bf16, W global, second group empty of valid rows
    (2, 32, False, 4, 7, 2),    # fp64
    (0, 128, True, 3, 13, 2),   # H = 128, W in shared memory, 256 threads
    (0, 256, False, 2, 9, 2),   # H = 256, W from global memory, 512 threads
    (1, 256, False, 2, 3, 1),   # bf16 H = 256
]


@pytest.mark.parametrize("mode,H,smem,T,B,G", CASES)
def test_emulated_kernels_match_reference(emu, mode, H, smem, T, B, G):
    torch.manual_seed(1000 * mode + 10 * H + T + B)
    dt = DTYPES[mode]
    acc = torch.float64 if mode == 2 else torch.float32
    k = 1 / math.sqrt(H)
    gi = (torch.randn(T, B, 6 * H, dtype=torch.float64) * 0.7).to(dt)
    w_hh = torch.empty(2, 3 * H, H, dtype=torch.float64).uniform_(-k, k).to(dt)
    b_hh = torch.empty(2, 3 * H, dtype=torch.float64).uniform_(-k, k).to(acc)
    h0 = (torch.randn(2, B, H, dtype=torch.float64) * 0.5).to(acc)
    grad_y = torch.randn(T, B, 2 * H, dtype=torch.float64).to(dt)

    w_t = w_hh.transpose(1, 2).contiguous()
    y = torch.full((T, B, 2 * H), float("nan"), dtype=dt)
    saved = torch.full((T, B, 8 * H), float("nan"), dtype=dt)
    assert emu.emu_forward(mode, H, int(smem), T, B, G, _p(gi), _p(w_t), _p(b_hh), _p(h0), _p(y), _p(saved)) == 0

    y_inf = torch.full((T, B, 2 * H), float("nan"), dtype=dt)  # saved = null: inference, no gates kept
    assert emu.emu_forward(mode, H, int(smem), T, B, G, _p(gi), _p(w_t), _p(b_hh), _p(h0), _p(y_inf),
                           ctypes.c_void_p(None)) == 0
    assert torch.equal(y_inf, y)

    ry, rsaved, _ = ref_forward(gi.double(), w_hh.double(), b_hh.double(), h0.double())
    tol = {0: (2e-5, 2e-5), 1: (3e-2, 3e-2), 2: (1e-12, 1e-12)}[mode]
    torch.testing.assert_close(y.double(), ry, atol=tol[0], rtol=tol[1])
    torch.testing.assert_close(saved.double(), rsaved, atol=tol[0], rtol=tol[1])

    ggi = torch.full((T, B, 6 * H), float("nan"), dtype=dt)
    ggh = torch.full((T, B, 6 * H), float("nan"), dtype=dt)
    gh0 = torch.full((2, B, H), float("nan"), dtype=acc)
    w = w_hh.contiguous()
    assert emu.emu_backward(mode, H, int(smem), T, B, G, _p(grad_y), _p(y), _p(saved), _p(w), _p(h0),
                            _p(ggi), _p(ggh), _p(gh0)) == 0
    # Reference gradients at the kernel's own forward (in bf16 the kernel reads its bf16 y / saved).
    r_gi, r_gh, r_h0 = ref_backward(gi, w_hh, b_hh, h0, grad_y)
    btol = {0: (1e-4, 1e-4), 1: (6e-2, 6e-2), 2: (1e-11, 1e-11)}[mode]
    torch.testing.assert_close(ggi.double(), r_gi, atol=btol[0], rtol=btol[1])
    torch.testing.assert_close(ggh.double(), r_gh, atol=btol[0], rtol=btol[1])
    torch.testing.assert_close(gh0.double(), r_h0, atol=btol[0], rtol=btol[1])


MMA_CASES = [
    # H, NT (8-row batch tiles per block), T, B
    (32, 1, 5, 11),    # odd B, two blocks, the second with 3 valid rows
    (32, 2, 4, 19),    # 16-row blocks, partial second block
    (64, 1, 3, 9),
    (128, 1, 2, 5),    # 8 warps, one partial block
    (128, 2, 3, 21),
]


@pytest.mark.parametrize("H,NT,T,B", MMA_CASES)
def test_emulated_tensor_core_kernels_match_reference(emu, H, NT, T, B):
    """bf16 mma.sync kernels (warp-collective mma emulated from the PTX fragment layouts)."""
    torch.manual_seed(H + 10 * NT + T + B)
    dt = torch.bfloat16
    k = 1 / math.sqrt(H)
    gi = (torch.randn(T, B, 6 * H, dtype=torch.float64) * 0.7).to(dt)
    w_hh = torch.empty(2, 3 * H, H, dtype=torch.float64).uniform_(-k, k).to(dt)
    b_hh = torch.empty(2, 3 * H, dtype=torch.float64).uniform_(-k, k).float()
    h0 = (torch.randn(2, B, H, dtype=torch.float64) * 0.5).float()
    grad_y = torch.randn(T, B, 2 * H, dtype=torch.float64).to(dt)

    w_t = w_hh.transpose(1, 2).contiguous()
    y = torch.full((T, B, 2 * H), float("nan"), dtype=dt)
    saved = torch.full((T, B, 8 * H), float("nan"), dtype=dt)
    assert emu.emu_forward_mma(H, NT, T, B, _p(gi), _p(w_t), _p(b_hh), _p(h0), _p(y), _p(saved)) == 0
    y_inf = torch.full((T, B, 2 * H), float("nan"), dtype=dt)
    assert emu.emu_forward_mma(H, NT, T, B, _p(gi), _p(w_t), _p(b_hh), _p(h0), _p(y_inf), ctypes.c_void_p(None)) == 0
    assert torch.equal(y_inf, y)
    ry, rsaved, _ = ref_forward(gi.double(), w_hh.double(), b_hh.double(), h0.double())
    torch.testing.assert_close(y.double(), ry, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(saved.double(), rsaved, atol=3e-2, rtol=3e-2)

    ggi = torch.full((T, B, 6 * H), float("nan"), dtype=dt)
    ggh = torch.full((T, B, 6 * H), float("nan"), dtype=dt)
    gh0 = torch.full((2, B, H), float("nan"), dtype=torch.float32)
    assert emu.emu_backward_mma(H, NT, T, B, _p(grad_y), _p(y), _p(saved), _p(w_hh.contiguous()), _p(h0),
                                _p(ggi), _p(ggh), _p(gh0)) == 0
    r_gi, r_gh, r_h0 = ref_backward(gi, w_hh, b_hh, h0, grad_y)
    torch.testing.assert_close(ggi.double(), r_gi, atol=6e-2, rtol=6e-2)
    torch.testing.assert_close(ggh.double(), r_gh, atol=6e-2, rtol=6e-2)
    torch.testing.assert_close(gh0.double(), r_h0, atol=6e-2, rtol=6e-2)
