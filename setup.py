"""Build the compiled parts of bsp_fast.

- ``bsp_fast_gru_cpu``   pybind11 C++ module (csrc/gru_cpu*.cpp): the fused bi-GRU recurrence on CPU.
- ``bsp_fast_codec``     Cython module (csrc/bsp_fast_codec.pyx): FASTA encoding, window / one-hot
                         extraction, label parsing.
- ``bsp_fast_gru_cuda``  pybind11 + CUDA module (csrc/*.cu), only where nvcc is found.

They are top-level modules beside the package, not inside it, so that a checkout's ``bsp_fast/``
shadowing the installed package (``python -m`` in the checkout's root) still finds them; each
records the hash of its sources (``source_hash``), checked by bsp_fast/_native.py in a checkout.
None of them links libtorch: they take raw pointers, shapes and (for CUDA) a stream handle, so one
build serves any torch version and the build never imports torch.

Environment switches:
  BSP_FAST_NATIVE=1        compile the CPU code with -march=native (not portable)
  BSP_FAST_NO_CUDA=1       skip the CUDA module even where nvcc exists
  BSP_FAST_CUDA_ARCH       e.g. "8.0;9.0" (else TORCH_CUDA_ARCH_LIST, else 8.0 8.6 8.9 9.0 + PTX)
  BSP_FAST_BUILD_ONLY      comma-separated extension names to build (developer convenience)
  BSP_FAST_CUDA_WERROR=1   treat nvcc warnings as errors
  BSP_FAST_OPENMP=0        CPU kernel on std::threads instead of (torch's) OpenMP pool
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pybind11
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()
sys.path.insert(0, str(ROOT))
import build_support  # noqa: E402  (beside this file; shared with tests/test_cuda_compile.py)


def _cpu_flags() -> list[str]:
    flags = ["-O3", "-std=c++17", "-fvisibility=hidden", "-fno-math-errno", "-pthread"]
    if os.environ.get("BSP_FAST_NATIVE") == "1":
        flags.append("-march=native")
    return flags


def _openmp_flags() -> list[str]:
    """-fopenmp for the CPU GRU kernel on Linux (GCC/Clang with libgomp).

    The module then needs ``libgomp.so.1``; torch's Linux wheels load their own copy under that
    same soname first (bsp_fast imports torch before the module), and the dynamic loader binds the
    module to that copy, so the process keeps ONE OpenMP runtime and the kernel shares torch's
    thread pool (tests/test_gru_op.py checks both). Elsewhere, or with BSP_FAST_OPENMP=0, the
    kernel uses std::threads.
    """
    if not sys.platform.startswith("linux") or os.environ.get("BSP_FAST_OPENMP") == "0":
        return []
    return ["-fopenmp"]


def find_nvcc() -> str | None:
    if os.environ.get("BSP_FAST_NO_CUDA") == "1":
        return None
    return build_support.find_nvcc()


def cuda_arch_flags() -> list[str]:
    spec = os.environ.get("BSP_FAST_CUDA_ARCH") or os.environ.get("TORCH_CUDA_ARCH_LIST") or "8.0;8.6;8.9;9.0+PTX"
    flags: list[str] = []
    for item in re.split(r"[;,\s]+", spec.strip()):
        if not item:
            continue
        ptx = item.endswith("+PTX")
        num = item.replace("+PTX", "").replace(".", "")
        flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    return flags


class BuildExt(build_ext):
    """build_ext that compiles .cu sources with nvcc and links the CUDA runtime statically."""

    def build_extensions(self) -> None:
        only = os.environ.get("BSP_FAST_BUILD_ONLY")
        if only:
            keep = {s.strip() for s in only.split(",")}
            self.extensions = [e for e in self.extensions if e.name.split(".")[-1] in keep]
        self.compiler.src_extensions.append(".cu")
        default_compile = self.compiler._compile
        nvcc = find_nvcc()

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            if src.endswith(".cu"):
                postargs = extra_postargs["nvcc"] if isinstance(extra_postargs, dict) else []
                cmd = [nvcc, "-c", src, "-o", obj, *pp_opts, *postargs]
                self.spawn(cmd)
                return
            postargs = extra_postargs["cxx"] if isinstance(extra_postargs, dict) else extra_postargs
            default_compile(obj, src, ext, cc_args, postargs, pp_opts)

        self.compiler._compile = _compile
        try:
            super().build_extensions()
        finally:
            self.compiler._compile = default_compile


def _hash_macro(name: str) -> tuple[str, str]:
    # spawned without a shell, so the quotes reach the compiler: a string literal
    return ("BSP_FAST_SRC_HASH", f'"{build_support.source_hash(name, ROOT)}"')


def _files(name: str, suffixes: tuple[str, ...]) -> list[str]:
    return [str(p) for p in build_support.native_files(name, ROOT) if p.suffix in suffixes]


def extensions() -> list[Extension]:
    exts: list[Extension] = []
    exts.append(
        Extension(
            "bsp_fast_gru_cpu",
            sources=_files("bsp_fast_gru_cpu", (".cpp",)),
            # headers too: an in-place rebuild after a change to the kernel header alone must recompile
            depends=_files("bsp_fast_gru_cpu", (".h",)),
            define_macros=[_hash_macro("bsp_fast_gru_cpu")],
            include_dirs=[pybind11.get_include(), "csrc"],
            language="c++",
            extra_compile_args=_cpu_flags() + _openmp_flags(),
            extra_link_args=["-pthread", *_openmp_flags()],
        )
    )
    if (ROOT / "csrc/bsp_fast_codec.pyx").exists():
        exts += cythonize(
            [
                Extension(
                    "bsp_fast_codec",
                    sources=["csrc/bsp_fast_codec.pyx"],
                    include_dirs=[np.get_include()],
                    language="c++",
                    extra_compile_args=_cpu_flags(),
                    extra_link_args=["-pthread"],
                    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), _hash_macro("bsp_fast_codec")],
                )
            ],
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
            quiet=True,
        )
    nvcc = find_nvcc()
    cu_sources = _files("bsp_fast_gru_cuda", (".cu",))
    if nvcc and cu_sources:
        cuda_home = Path(nvcc).resolve().parent.parent
        if not (cuda_home / "include" / "cuda_runtime.h").exists():
            # nvcc may be a wrapper script (e.g. /usr/local/bin/nvcc -> exec /usr/local/cuda-X/bin/nvcc)
            for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
                if cand and (Path(cand) / "include" / "cuda_runtime.h").exists():
                    cuda_home = Path(cand).resolve()
                    break
        nvcc_flags = [
            "-O3", "-std=c++17", "-lineinfo", "-Xcompiler", "-fPIC",
            "-Xcompiler", "-fvisibility=hidden", "--expt-relaxed-constexpr", *cuda_arch_flags(),
        ]
        if os.environ.get("BSP_FAST_CUDA_WERROR") == "1":
            nvcc_flags += ["-Werror", "all-warnings"]
        libdirs = [str(cuda_home / d) for d in ("lib64", "lib", "targets/x86_64-linux/lib") if (cuda_home / d).exists()]
        exts.append(
            Extension(
                "bsp_fast_gru_cuda",
                sources=[*cu_sources, *_files("bsp_fast_gru_cuda", (".cpp",))],
                depends=_files("bsp_fast_gru_cuda", (".h", ".cuh")),
                define_macros=[_hash_macro("bsp_fast_gru_cuda")],
                include_dirs=[pybind11.get_include(), "csrc", str(cuda_home / "include")],
                library_dirs=libdirs,
                # Static cudart: the module loads on machines without a GPU and needs no CUDA libs.
                libraries=["cudart_static", "dl", "rt"],
                language="c++",
                extra_compile_args={"cxx": _cpu_flags(), "nvcc": nvcc_flags},
                extra_link_args=["-pthread"],
            )
        )
    elif cu_sources:
        print("bsp_fast: nvcc not found, building without the CUDA module", file=sys.stderr)
    return exts


def _present(ext: Extension) -> bool:
    # Lets a partial checkout build; the missing module then raises a clear ImportError on use.
    return bool(ext.sources) and all((ROOT / s).exists() for s in ext.sources)


setup(ext_modules=[e for e in extensions() if _present(e)], cmdclass={"build_ext": BuildExt})
