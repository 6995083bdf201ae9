"""The compiled modules, found wherever they are installed, and checked against the source tree.

The kernels are top-level extension modules (``bsp_fast_gru_cpu``, ``bsp_fast_codec``,
``bsp_fast_gru_cuda``) installed beside the pure-Python package, not inside it. ``python -m
bsp_fast.<command>`` run in a checkout's root puts the checkout first on sys.path, so its
``bsp_fast/`` (which holds no compiled files in a fresh clone) shadows the installed package; the
kernels, being top-level, are still found in site-packages. causal-conv1d (``causal_conv1d_cuda``)
and flash-attn (``flash_attn_2_cuda``) install their kernels the same way.

A missing module is a :class:`NativeModuleMissing` with a one-line message saying which module
and how to build it; nothing falls back to the NumPy / PyTorch references (tests call those
explicitly). When this package is imported from a source tree (``build_support.py`` and ``csrc/``
beside ``bsp_fast/``), each module's ``source_hash`` is compared with that tree's sources and a
:class:`StaleKernelWarning` says when the kernels were built from other sources than the code.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["NativeModuleMissing", "StaleKernelWarning", "load", "require", "source_tree", "REQUIRED"]

# module -> what it is (for the messages)
MODULES = {
    "bsp_fast_codec": "the Cython FASTA / one-hot / label kernels",
    "bsp_fast_gru_cpu": "the fused bi-GRU CPU kernel",
    "bsp_fast_gru_cuda": "the fused bi-GRU CUDA kernels (built where nvcc is found)",
}
# what every command needs (CUDA is optional: only --device cuda needs it)
REQUIRED = ("bsp_fast_codec", "bsp_fast_gru_cpu")

_loaded: dict[str, ModuleType] = {}


class NativeModuleMissing(ImportError):
    """A compiled module of bsp_fast is not installed (its message is one line)."""


class StaleKernelWarning(UserWarning):
    """The installed kernels were built from other sources than this source tree's."""


def source_tree() -> Path | None:
    """The checkout this package is imported from, or None for an installed package."""
    root = Path(__file__).resolve().parent.parent
    if (root / "build_support.py").is_file() and (root / "csrc").is_dir():
        return root
    return None


def _build_hint(name: str) -> str:
    if name == "bsp_fast_gru_cuda":
        return "reinstall with nvcc on PATH or CUDA_HOME set: `pip install .`"
    return "run `pip install .` in the source tree (developers: `python setup.py build_ext --inplace`)"


def load(name: str) -> ModuleType:
    """The compiled module ``name``; NativeModuleMissing (one line) when it is not installed."""
    mod = _loaded.get(name)
    if mod is not None:
        return mod
    if name not in MODULES:
        raise KeyError(f"unknown compiled module {name!r}; expected one of {', '.join(MODULES)}")
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        detail = "" if isinstance(exc, ModuleNotFoundError) and exc.name == name else f" ({exc})"
        raise NativeModuleMissing(
            f"bsp_fast: compiled module {name} ({MODULES[name]}) is not installed{detail}; {_build_hint(name)}"
        ) from None
    _check_fresh(name, mod)
    _loaded[name] = mod
    return mod


def available(name: str) -> bool:
    """True when compiled module ``name`` can be imported (never raises)."""
    try:
        load(name)
    except NativeModuleMissing:
        return False
    return True


def require(names: tuple[str, ...] = REQUIRED) -> None:
    """Load ``names`` now, so that a command fails at once (not after minutes of work)."""
    for name in names:
        load(name)


def _check_fresh(name: str, mod: ModuleType) -> None:
    tree = source_tree()
    if tree is None:
        return
    spec = importlib.util.spec_from_file_location("_bsp_fast_build_support", tree / "build_support.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file exists (source_tree)
        return
    support = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(support)
    if name not in getattr(support, "NATIVE_SOURCES", {}):
        return
    expected = support.source_hash(name, tree)
    built = getattr(mod, "source_hash", "unknown")
    if built != expected:
        warnings.warn(
            f"bsp_fast: {name} ({getattr(mod, '__file__', '?')}) was built from other sources than "
            f"{tree / 'csrc'} (built {built}, tree {expected}); rebuild: `pip install .` "
            "(developers: `python setup.py build_ext --inplace`)",
            StaleKernelWarning,
            stacklevel=3,
        )
