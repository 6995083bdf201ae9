"""Build-time helpers shared by setup.py, bsp_fast._native and the tests (stdlib only: no torch,
no package import).

The compiled modules are top-level extension modules beside the pure-Python package (the way
causal-conv1d installs ``causal_conv1d_cuda`` and flash-attn ``flash_attn_2_cuda``), so that a
source tree's ``bsp_fast/`` that shadows the installed package (``python -m`` run in the
checkout's root puts it first on sys.path) still finds the installed kernels. Each module carries
the hash of the sources it was built from (``source_hash``); in a source tree, bsp_fast._native
compares it with the tree's sources and says so when the kernels are older than the code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

# module name -> the csrc/ files it is built from (globs); the hash covers exactly these
NATIVE_SOURCES: dict[str, tuple[str, ...]] = {
    "bsp_fast_gru_cpu": ("gru_cpu*.cpp", "gru_cpu*.h"),
    "bsp_fast_codec": ("bsp_fast_codec.pyx",),
    "bsp_fast_gru_cuda": ("*.cu", "gru_cuda*.cpp", "gru_cuda*.h", "gru_cuda*.cuh"),
}


def native_files(name: str, root: str | os.PathLike) -> list[Path]:
    """The csrc/ files module ``name`` is built from, sorted, relative to ``root``."""
    csrc = Path(root) / "csrc"
    files = {p.relative_to(root) for pat in NATIVE_SOURCES[name] for p in csrc.glob(pat)}
    return sorted(files, key=str)


def source_hash(name: str, root: str | os.PathLike) -> str:
    """16 hex digits of SHA-256 over the paths and bytes of module ``name``'s sources."""
    h = hashlib.sha256()
    for rel in native_files(name, root):
        h.update(rel.as_posix().encode() + b"\0")
        h.update((Path(root) / rel).read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()[:16]


def find_nvcc() -> str | None:
    """nvcc from $CUDA_HOME / $CUDA_PATH, else PATH, else /usr/local/cuda; None if there is none."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and (Path(home) / "bin" / "nvcc").exists():
        return str(Path(home) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None
