"""Every csrc/*.cu compiles for sm_90 with warnings as errors (runs in CI, no GPU needed).

Skipped when no nvcc is found. Also asserts that ptxas reports no register spills for any kernel
(a spill silently turns the register tiles of the GRU kernels into local-memory traffic).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CU_FILES = sorted((ROOT / "csrc").glob("*.cu"))


def _nvcc() -> str | None:
    """setup.py's own nvcc search (build_support.py beside it)."""
    spec = importlib.util.spec_from_file_location("build_support", ROOT / "build_support.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.find_nvcc()


NVCC = _nvcc()


def _includes() -> list[str]:
    incs = [f"-I{ROOT / 'csrc'}"]
    try:
        import pybind11

        incs.append(f"-I{pybind11.get_include()}")
    except ImportError:  # the .cu files do not need it
        pass
    py_inc = sysconfig.get_paths().get("include")
    if py_inc:
        incs.append(f"-I{py_inc}")
    return incs


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA_HOME, PATH, /usr/local/cuda)")
@pytest.mark.skipif(not CU_FILES, reason="no csrc/*.cu files")
@pytest.mark.parametrize("cu", CU_FILES, ids=[p.name for p in CU_FILES])
def test_cu_compiles_for_sm90_without_warnings(cu, tmp_path):
    cmd = [
        NVCC, "-arch=sm_90", "-O3", "-std=c++17", "--expt-relaxed-constexpr", "-Werror", "all-warnings",
        "-Xptxas", "-v", *_includes(), "-c", str(cu), "-o", str(tmp_path / (cu.stem + ".o")),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{' '.join(cmd)}\n{out[-6000:]}"
    spills = [m for m in re.finditer(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
              if int(m.group(1)) or int(m.group(2))]
    assert not spills, f"register spills in {cu.name}:\n{out[-6000:]}"
