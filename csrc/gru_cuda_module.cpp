// pybind11 front of the CUDA bi-GRU recurrence (bsp_fast_gru_cuda). No libtorch, no CUDA headers:
// pointers, shapes and the stream arrive as integers from bsp_fast/gru/cuda_backend.py, which
// allocates every tensor with torch. Importing the module never touches the GPU.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "gru_cuda.h"

namespace py = pybind11;
using namespace bsp_fast_cuda;

namespace {

void* ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }

py::dict plan_dict(const Plan& p) {
  py::dict d;
  d["rows_per_thread"] = p.rows_per_thread;
  d["groups"] = p.groups;
  d["threads"] = p.threads;
  d["rows_per_block"] = p.rows_per_block;
  d["blocks_per_dir"] = p.blocks_per_dir;
  d["smem_bytes"] = p.smem_bytes;
  d["w_in_smem"] = p.w_in_smem;
  d["kernel"] = p.kernel == 1 ? "mma" : "ffma";
  return d;
}

void check(const std::string& err) {
  if (!err.empty()) throw std::runtime_error("bsp_fast_gru_cuda: " + err);
}

}  // namespace

#ifndef BSP_FAST_SRC_HASH
#define BSP_FAST_SRC_HASH "unknown"
#endif

PYBIND11_MODULE(bsp_fast_gru_cuda, m) {
  m.doc() = "Fused bidirectional GRU recurrence on CUDA (raw pointers; see bsp_fast/gru/cuda_backend.py)";
  m.attr("source_hash") = BSP_FAST_SRC_HASH;  // build_support.source_hash of its sources
  m.attr("MODE_F32") = static_cast<int>(kF32);
  m.attr("MODE_BF16") = static_cast<int>(kBF16);
  m.attr("MODE_F64") = static_cast<int>(kF64);

  m.def("device_count", &device_count, "visible CUDA devices (0 without driver/GPU)");
  m.def("runtime_version", &runtime_version, "CUDA runtime version this module was built with (static cudart)");
  m.def("driver_version", &driver_version, "CUDA driver version (0 without driver)");
  m.def("supported_hidden", &supported_hidden);

  m.def("device_info", [](int device) {
    DeviceInfo info;
    check(device_info(device, &info));
    py::dict d;
    d["sm_count"] = info.sm_count;
    d["smem_optin"] = info.smem_optin;
    d["cc"] = py::make_tuple(info.cc_major, info.cc_minor);
    return d;
  }, py::arg("device"));

  m.def("plan", [](int mode, bool backward, int64_t B, int H, int device, bool allow_mma) {
    DeviceInfo info;
    check(device_info(device, &info));
    Plan p;
    check(make_plan(mode, backward, B, H, info, allow_mma, &p));
    return plan_dict(p);
  }, py::arg("mode"), py::arg("backward"), py::arg("B"), py::arg("H"), py::arg("device"), py::arg("allow_mma") = true,
     "launch layout the kernels would use on this device");

  m.def("plan_for", [](int mode, bool backward, int64_t B, int H, int sm_count, int smem_optin, bool allow_mma) {
    DeviceInfo info;
    info.sm_count = sm_count;
    info.smem_optin = smem_optin;
    Plan p;
    check(make_plan(mode, backward, B, H, info, allow_mma, &p));
    return plan_dict(p);
  }, py::arg("mode"), py::arg("backward"), py::arg("B"), py::arg("H"), py::arg("sm_count"), py::arg("smem_optin"),
     py::arg("allow_mma") = true,
     "launch layout for a hypothetical device (no GPU needed; for tests)");

  m.def("forward", [](int mode, int64_t T, int64_t B, int H, uintptr_t gi, uintptr_t w_t, uintptr_t b_hh, uintptr_t h0,
                      uintptr_t y, uintptr_t saved, uintptr_t stream, int device, bool allow_mma) {
    Plan p;
    std::string err;
    {
      py::gil_scoped_release nogil;
      err = forward(mode, T, B, H, ptr(gi), ptr(w_t), ptr(b_hh), ptr(h0), ptr(y), ptr(saved), ptr(stream), device,
                    allow_mma, &p);
    }
    check(err);
  }, py::arg("mode"), py::arg("T"), py::arg("B"), py::arg("H"), py::arg("gi"), py::arg("w_t"), py::arg("b_hh"),
     py::arg("h0"), py::arg("y"), py::arg("saved"), py::arg("stream"), py::arg("device"), py::arg("allow_mma") = true,
     "gi [T,B,6H], w_t [2,H,3H] (W_hh transposed), b_hh [2,3H], h0 [2,B,H] -> y [T,B,2H], saved [T,B,8H]");

  m.def("backward", [](int mode, int64_t T, int64_t B, int H, uintptr_t grad_y, uintptr_t y, uintptr_t saved,
                       uintptr_t w, uintptr_t h0, uintptr_t grad_gi, uintptr_t grad_gh, uintptr_t grad_h0,
                       uintptr_t stream, int device, bool allow_mma) {
    Plan p;
    std::string err;
    {
      py::gil_scoped_release nogil;
      err = backward(mode, T, B, H, ptr(grad_y), ptr(y), ptr(saved), ptr(w), ptr(h0), ptr(grad_gi), ptr(grad_gh),
                     ptr(grad_h0), ptr(stream), device, allow_mma, &p);
    }
    check(err);
  }, py::arg("mode"), py::arg("T"), py::arg("B"), py::arg("H"), py::arg("grad_y"), py::arg("y"), py::arg("saved"),
     py::arg("w"), py::arg("h0"), py::arg("grad_gi"), py::arg("grad_gh"), py::arg("grad_h0"), py::arg("stream"),
     py::arg("device"), py::arg("allow_mma") = true,
     "grad_y, y [T,B,2H], saved [T,B,8H], w [2,3H,H], h0 [2,B,H] -> grad_gi, grad_gh [T,B,6H], grad_h0 [2,B,H]");
}
