// bsp_fast_gru_cpu: the fused bidirectional GRU recurrence on CPU (pybind11, no libtorch).
//
// Python (bsp_fast/gru/cpu_backend.py) allocates every tensor with torch and passes raw data
// pointers (ints), the sizes, the dtype and the thread count (torch.get_num_threads()). The work
// is split into (direction x batch tile) tasks, each running the whole time loop on its own rows
// (the batch rows of a GRU are independent, so no barrier per step is needed). The tasks run on
// torch's own OpenMP thread pool where the module is built with -fopenmp (Linux: it binds to the
// libgomp.so.1 that torch has loaded, one runtime per process; sharing the pool means the kernel
// never competes with torch's workers while they spin after an op), else on std::threads; the
// calling thread takes part, and the GIL is released for the whole call.

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "gru_cpu_common.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace py = pybind11;
using namespace bsp_fast_gru;

namespace {

enum class Isa { base, avx2, avx512 };

Isa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::base;
}

Isa g_isa = detect_isa();

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "base";
  }
}

template <typename Args>
void call_forward(const Args& a, int d, int b0, int b1) {
  switch (g_isa) {
#if defined(__x86_64__) || defined(__i386__)
    case Isa::avx512: avx512::forward_task(a, d, b0, b1); return;
    case Isa::avx2: avx2::forward_task(a, d, b0, b1); return;
#endif
    default: base::forward_task(a, d, b0, b1); return;
  }
}

template <typename Args>
void call_backward(const Args& a, int d, int b0, int b1, int slot) {
  switch (g_isa) {
#if defined(__x86_64__) || defined(__i386__)
    case Isa::avx512: avx512::backward_task(a, d, b0, b1, slot); return;
    case Isa::avx2: avx2::backward_task(a, d, b0, b1, slot); return;
#endif
    default: base::backward_task(a, d, b0, b1, slot); return;
  }
}

// Batch tiles per direction for `nthreads` threads: one per two threads when the count is even
// (2 tasks per pair of threads), else one per thread (each thread then runs one tile of each
// direction); at least 4 rows per tile.
int tiles_for(int B, int nthreads) {
  nthreads = std::max(1, nthreads);
  const int ntiles = nthreads == 1 ? 1 : (nthreads % 2 == 0 ? nthreads / 2 : nthreads);
  return std::max(1, std::min(ntiles, (B + 3) / 4));
}

// Runs task(k) for k < ntasks on at most `nthreads` threads (the caller's thread included), dealt
// out statically (k = thread, thread + n, ...): the tasks of each caller all cost about the same.
template <typename Task>
void run_parallel(long ntasks, int nthreads, Task task) {
  const int nth = (int)std::max(1L, std::min<long>(std::max(1, nthreads), ntasks));
  if (nth <= 1) {
    for (long k = 0; k < ntasks; ++k) task(k);
    return;
  }
#if defined(_OPENMP)
  // torch's own OpenMP pool (the process has one libgomp: see setup.py), so the kernel runs on
  // the very threads torch's ops just used instead of competing with them while they spin.
#pragma omp parallel num_threads(nth)
  {
    const int th = omp_get_thread_num(), n = omp_get_num_threads();
    for (long k = th; k < ntasks; k += n) task(k);
  }
#else
  std::vector<std::thread> threads;
  threads.reserve(nth - 1);
  int started = 1;
  try {
    for (int th = 1; th < nth; ++th) {
      threads.emplace_back([&, th] {
        for (long k = th; k < ntasks; k += nth) task(k);
      });
      ++started;
    }
  } catch (const std::system_error&) {
    // could not start more threads: the ones that did not start are run here below
  }
  for (long k = 0; k < ntasks; k += nth) task(k);
  for (int th = started; th < nth; ++th)
    for (long k = th; k < ntasks; k += nth) task(k);
  for (auto& t : threads) t.join();
#endif
}

// Runs fn(direction, tile, b0, b1) over 2 x tiles_for(B, nthreads) tasks on at most `nthreads`
// threads (run_parallel).
template <typename Fn>
void run_tasks(int B, int nthreads, Fn fn) {
  const int ntiles = tiles_for(B, nthreads);
  run_parallel(2L * ntiles, nthreads, [&](long k) {
    const int d = (int)(k % 2), tile = (int)(k / 2);
    const int b0 = (int)((long)B * tile / ntiles), b1 = (int)((long)B * (tile + 1) / ntiles);
    fn(d, tile, b0, b1);
  });
}

void check_sizes(int T, int B, int H) {
  if (T <= 0 || B <= 0 || H <= 0)
    throw std::invalid_argument("bsp_fast_gru_cpu: T, B and H must be positive, got T=" + std::to_string(T) +
                                " B=" + std::to_string(B) + " H=" + std::to_string(H));
}

template <typename T>
void forward_t(uintptr_t gi, uintptr_t w_hh, uintptr_t b_hh, uintptr_t h0, uintptr_t y, uintptr_t saved, int T_,
               int B, int H, long y_st, long y_sb, int nthreads) {
  FwdArgs<T> a{reinterpret_cast<const T*>(gi), reinterpret_cast<const T*>(w_hh), reinterpret_cast<const T*>(b_hh),
               reinterpret_cast<const T*>(h0), reinterpret_cast<T*>(y), reinterpret_cast<T*>(saved), T_, B, H,
               y_st, y_sb};
  run_tasks(B, nthreads, [&](int d, int, int b0, int b1) { call_forward(a, d, b0, b1); });
}

template <typename T>
void backward_t(uintptr_t grad_y, uintptr_t grad_hn, uintptr_t y, uintptr_t saved, uintptr_t w_hh, uintptr_t h0,
                uintptr_t grad_gi, uintptr_t grad_gh, uintptr_t grad_h0, uintptr_t grad_w_hh, uintptr_t grad_b_hh,
                int T_, int B, int H, const long* st, int nthreads) {
  BwdArgs<T> a{reinterpret_cast<const T*>(grad_y), reinterpret_cast<const T*>(grad_hn),
               reinterpret_cast<const T*>(y),      reinterpret_cast<const T*>(saved),
               reinterpret_cast<const T*>(w_hh),   reinterpret_cast<const T*>(h0), reinterpret_cast<T*>(grad_gi),
               reinterpret_cast<T*>(grad_gh),      reinterpret_cast<T*>(grad_h0), nullptr, nullptr, T_, B, H,
               st[0], st[1], st[2], st[3]};
  const int ntiles = tiles_for(B, nthreads);
  const long w = 3L * H * H, b = 3L * H;
  // weight gradients: one slot per (tile, direction), slot 2 * tile + d; with one tile the outputs
  // themselves are the slots, else they are summed over the tiles below
  std::vector<T> parts;
  if (grad_w_hh) {
    if (ntiles == 1) {
      a.dw_part = reinterpret_cast<T*>(grad_w_hh);
      a.db_part = reinterpret_cast<T*>(grad_b_hh);
    } else {
      parts.assign((size_t)2 * ntiles * (w + b), T(0));
      a.dw_part = parts.data();
      a.db_part = parts.data() + 2 * ntiles * w;
    }
  }
  run_tasks(B, nthreads, [&](int d, int tile, int b0, int b1) { call_backward(a, d, b0, b1, 2 * tile + d); });
  if (grad_w_hh && ntiles > 1) {
    auto sum_tiles = [&](const T* slots, long n, T* out) {
      for (int d = 0; d < 2; ++d)
        for (long i = 0; i < n; ++i) {
          T acc = T(0);
          for (int tile = 0; tile < ntiles; ++tile) acc += slots[(2 * tile + d) * n + i];
          out[d * n + i] = acc;
        }
    };
    sum_tiles(a.dw_part, w, reinterpret_cast<T*>(grad_w_hh));
    sum_tiles(a.db_part, b, reinterpret_cast<T*>(grad_b_hh));
  }
}

// Row strides (elements) of y / grad_y: a row is 2H contiguous values; 0, 0 means time-major [T, B, 2H].
void check_strides(const char* name, long& st, long& sb, int T, int B, int H) {
  if (st == 0 && sb == 0) {
    st = 2L * B * H;
    sb = 2L * H;
    return;
  }
  // rows must not overlap: one of the two strides steps over the other's whole extent
  const bool ok = st >= 2L * H && sb >= 2L * H && (st >= sb * B || sb >= st * T);
  if (!ok)
    throw std::invalid_argument(std::string("bsp_fast_gru_cpu: ") + name + " row strides (" + std::to_string(st) +
                                ", " + std::to_string(sb) + ") overlap for T=" + std::to_string(T) + " B=" +
                                std::to_string(B) + " H=" + std::to_string(H));
}

void forward(uintptr_t gi, uintptr_t w_hh, uintptr_t b_hh, uintptr_t h0, uintptr_t y, uintptr_t saved, int T_, int B,
             int H, long y_st, long y_sb, bool is_double, int nthreads) {
  check_sizes(T_, B, H);
  check_strides("y", y_st, y_sb, T_, B, H);
  py::gil_scoped_release release;
  if (is_double)
    forward_t<double>(gi, w_hh, b_hh, h0, y, saved, T_, B, H, y_st, y_sb, nthreads);
  else
    forward_t<float>(gi, w_hh, b_hh, h0, y, saved, T_, B, H, y_st, y_sb, nthreads);
}

void backward(uintptr_t grad_y, uintptr_t grad_hn, uintptr_t y, uintptr_t saved, uintptr_t w_hh, uintptr_t h0,
              uintptr_t grad_gi, uintptr_t grad_gh, uintptr_t grad_h0, uintptr_t grad_w_hh, uintptr_t grad_b_hh,
              int T_, int B, int H, long y_st, long y_sb, long gy_st, long gy_sb, bool is_double, int nthreads) {
  check_sizes(T_, B, H);
  check_strides("y", y_st, y_sb, T_, B, H);
  check_strides("grad_y", gy_st, gy_sb, T_, B, H);
  if (!saved) throw std::invalid_argument("bsp_fast_gru_cpu.backward: saved gates are required");
  if (!grad_w_hh != !grad_b_hh)
    throw std::invalid_argument("bsp_fast_gru_cpu.backward: grad_w_hh and grad_b_hh go together");
  if (!grad_gh && !grad_w_hh)
    throw std::invalid_argument("bsp_fast_gru_cpu.backward: needs grad_gh or grad_w_hh / grad_b_hh");
  const long st[4] = {y_st, y_sb, gy_st, gy_sb};
  py::gil_scoped_release release;
  if (is_double)
    backward_t<double>(grad_y, grad_hn, y, saved, w_hh, h0, grad_gi, grad_gh, grad_h0, grad_w_hh, grad_b_hh, T_, B, H,
                       st, nthreads);
  else
    backward_t<float>(grad_y, grad_hn, y, saved, w_hh, h0, grad_gi, grad_gh, grad_h0, grad_w_hh, grad_b_hh, T_, B, H,
                      st, nthreads);
}

// grad_table[r, :] = sum of grad[i, :] over the rows i with codes[i] == r (codes 0..R-1, checked
// by the caller): the backward of the one-hot input projection, without a GEMM or atomics.
// Threads split the columns.
template <typename T, typename C>
void table_grad_t(const C* codes, long n, const T* grad, long F, T* out, int R, int nthreads) {
  for (long i = 0; i < (long)R * F; ++i) out[i] = T(0);
  auto work = [&](long c0, long c1) {
    for (long i = 0; i < n; ++i) {
      const long r = (long)codes[i];
      if (r < 0 || r >= R) continue;
      T* dst = out + r * F;
      const T* src = grad + i * F;
      for (long j = c0; j < c1; ++j) dst[j] += src[j];
    }
  };
  int nth = std::max(1, std::min<int>(nthreads, (int)(F / 64)));
  if ((double)n * F < 1e6) nth = 1;
  if (nth == 1) {
    work(0, F);
    return;
  }
  std::vector<std::thread> threads;
  auto range = [&](int k) { return std::make_pair(F * k / nth / 16 * 16, k + 1 == nth ? F : F * (k + 1) / nth / 16 * 16); };
  int started = 1;
  try {
    for (int k = 1; k < nth; ++k) {
      auto rg = range(k);
      threads.emplace_back([&, rg] { work(rg.first, rg.second); });
      ++started;
    }
  } catch (const std::system_error&) {
  }
  work(range(0).first, range(0).second);
  for (int k = started; k < nth; ++k) work(range(k).first, range(k).second);
  for (auto& t : threads) t.join();
}

void table_grad(uintptr_t codes, int code_bytes, long n, uintptr_t grad, long F, uintptr_t out, int R, bool is_double,
                int nthreads) {
  py::gil_scoped_release release;
  auto run = [&](auto* g, auto* o) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(g)>>;
    switch (code_bytes) {
      case 1: table_grad_t<T>(reinterpret_cast<const uint8_t*>(codes), n, g, F, o, R, nthreads); break;
      case 4: table_grad_t<T>(reinterpret_cast<const int32_t*>(codes), n, g, F, o, R, nthreads); break;
      default: table_grad_t<T>(reinterpret_cast<const int64_t*>(codes), n, g, F, o, R, nthreads); break;
    }
  };
  if (is_double)
    run(reinterpret_cast<const double*>(grad), reinterpret_cast<double*>(out));
  else
    run(reinterpret_cast<const float*>(grad), reinterpret_cast<float*>(out));
}

void call_onehot_conv(const ConvArgs& a, int b, int t0, int t1) {
  switch (g_isa) {
#if defined(__x86_64__) || defined(__i386__)
    case Isa::avx512: avx512::onehot_conv_task(a, b, t0, t1); return;
    case Isa::avx2: avx2::onehot_conv_task(a, b, t0, t1); return;
#endif
    default: base::onehot_conv_task(a, b, t0, t1); return;
  }
}

// Pooled both-strand features of one-hot codes (gru_cpu_onehot_conv.h); tasks are (row, chunk of
// 64 pooled positions), dealt out by run_parallel.
void onehot_conv(uintptr_t codes, uintptr_t table, uintptr_t bias, uintptr_t out, long out_st, long out_sb,
                 long rc_off, int B, int L, int T_, int pool, int half, int G, int g, int Fp, int F, int nthreads) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("bsp_fast_gru_cpu.onehot_conv: " + what); };
  if (B <= 0 || L <= 0 || pool <= 0 || T_ <= 0 || (long)T_ * pool > L)
    bad("need B, L, pool, T > 0 and T * pool <= L; got B=" + std::to_string(B) + " L=" + std::to_string(L) +
        " T=" + std::to_string(T_) + " pool=" + std::to_string(pool));
  if (g < 1 || g > 6 || G < 1 || half < 0) bad("need 1 <= g <= 6, G >= 1, half >= 0");
  if (F <= 0 || F > Fp || Fp % 16) bad("need 0 < F <= Fp and Fp a multiple of 16");
  if (out_st < F || out_sb < F) bad("output row strides must be >= F");
  ConvArgs a{reinterpret_cast<const uint8_t*>(codes), reinterpret_cast<const float*>(table),
             reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(out), out_st, out_sb, rc_off,
             B, L, T_, pool, half, G, g, Fp, F};
  const int chunk = 64;
  const int per_row = (T_ + chunk - 1) / chunk;
  const long ntasks = (long)B * per_row;
  auto task = [&](long k) {
    const int b = (int)(k / per_row), c = (int)(k % per_row);
    call_onehot_conv(a, b, c * chunk, std::min(T_, (c + 1) * chunk));
  };
  py::gil_scoped_release release;
  run_parallel(ntasks, nthreads, task);
}

// glibc malloc tuning (opt-in, process-wide): keep freed memory in the heap instead of giving it
// back to the kernel after every large free, so that the next training step does not page-fault
// its way through fresh memory again. Returns false where it is not glibc.
bool tune_malloc(long mmap_threshold, long trim_threshold, long top_pad) {
#if defined(__GLIBC__)
  bool ok = mallopt(M_MMAP_THRESHOLD, (int)std::min<long>(mmap_threshold, 1L << 30)) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, (int)std::min<long>(trim_threshold, (1L << 31) - 1)) == 1 && ok;
  ok = mallopt(M_TOP_PAD, (int)std::min<long>(top_pad, 1L << 30)) == 1 && ok;
  return ok;
#else
  (void)mmap_threshold; (void)trim_threshold; (void)top_pad;
  return false;
#endif
}

}  // namespace

#ifndef BSP_FAST_SRC_HASH
#define BSP_FAST_SRC_HASH "unknown"
#endif

PYBIND11_MODULE(bsp_fast_gru_cpu, m) {
  m.doc() =
      "Fused bidirectional GRU recurrence on CPU (raw pointers; tensors are allocated by torch in "
      "bsp_fast/gru/cpu_backend.py). Layouts: docs/contracts.md.";
  // build_support.source_hash of the sources this was built from (bsp_fast._native checks it)
  m.attr("source_hash") = BSP_FAST_SRC_HASH;
  m.def("forward", &forward, py::arg("gi"), py::arg("w_hh"), py::arg("b_hh"), py::arg("h0"), py::arg("y"),
        py::arg("saved"), py::arg("T"), py::arg("B"), py::arg("H"), py::arg("y_st"), py::arg("y_sb"),
        py::arg("is_double"), py::arg("num_threads"),
        "y[T,B,2H] (rows at element strides y_st, y_sb; 0, 0 = contiguous) and saved[T,B,8H] (saved may be 0 "
        "to skip keeping the gates) from gi[T,B,6H], w_hh[2,3H,H], b_hh[2,3H], h0[2,B,H]; all C-contiguous.");
  m.def("backward", &backward, py::arg("grad_y"), py::arg("grad_hn"), py::arg("y"), py::arg("saved"),
        py::arg("w_hh"), py::arg("h0"), py::arg("grad_gi"), py::arg("grad_gh"), py::arg("grad_h0"),
        py::arg("grad_w_hh"), py::arg("grad_b_hh"), py::arg("T"), py::arg("B"), py::arg("H"), py::arg("y_st"), py::arg("y_sb"), py::arg("gy_st"),
        py::arg("gy_sb"), py::arg("is_double"), py::arg("num_threads"),
        "grad_gi[T,B,6H], grad_h0[2,B,H], and grad_gh[T,B,6H] and/or grad_w_hh[2,3H,H] + grad_b_hh[2,3H] "
        "(either may be 0 = not computed) from grad_y[T,B,2H], grad_hn[2,B,H] (0 = none), y, saved, w_hh, h0; "
        "y and grad_y rows at the given element strides (0, 0 = contiguous).");
  m.def("table_grad", &table_grad, py::arg("codes"), py::arg("code_bytes"), py::arg("n"), py::arg("grad"),
        py::arg("F"), py::arg("out"), py::arg("R"), py::arg("is_double"), py::arg("num_threads"),
        "out[R, F] = per-code row sums of grad[n, F] (codes uint8 / int32 / int64, n of them)");
  m.def("onehot_conv", &onehot_conv, py::arg("codes"), py::arg("table"), py::arg("bias"), py::arg("out"),
        py::arg("out_st"), py::arg("out_sb"), py::arg("rc_off"), py::arg("B"), py::arg("L"), py::arg("T"),
        py::arg("pool"), py::arg("half"), py::arg("G"), py::arg("g"), py::arg("Fp"), py::arg("F"),
        py::arg("num_threads"),
        "pooled both-strand one-hot convolution: out rows (b, t) at out + t*out_st + b*out_sb (and, with "
        "rc_off >= 0, reversed in t at out + rc_off) from codes uint8 [B, L], table float [G, 5^g, 2, Fp], "
        "bias [2, Fp]");
  m.def("tune_malloc", &tune_malloc, py::arg("mmap_threshold"), py::arg("trim_threshold"), py::arg("top_pad"),
        "glibc mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD / M_TOP_PAD); False where unsupported");
  m.def("isa", [] { return std::string(isa_name(g_isa)); }, "instruction set the kernel dispatches to");
  m.def(
      "set_isa",
      [](const std::string& name) {
        Isa best = detect_isa();
        Isa want = name == "avx512" ? Isa::avx512 : name == "avx2" ? Isa::avx2 : name == "base" ? Isa::base : best;
        if (name != "avx512" && name != "avx2" && name != "base" && name != "auto")
          throw std::invalid_argument("isa must be one of auto, avx512, avx2, base");
        if ((int)want > (int)best) throw std::invalid_argument("this CPU does not support " + name);
        g_isa = want;
      },
      py::arg("name"), "force an instruction set (testing): auto, avx512, avx2 or base");
}
