"""The compiled modules as a user meets them: found from a checkout's root, never replaced silently.

``python -m bsp_fast.<command>`` in a checkout's root puts the checkout first on sys.path, so the
source tree's ``bsp_fast/`` shadows the installed package; the kernels are top-level modules and
must still be found (bsp_fast/_native.py). A missing one is one line and exit 2, and no production
code path reaches the NumPy / PyTorch references.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from bsp_fast import _native

ROOT = Path(__file__).resolve().parent.parent
HAS_TREE = (ROOT / "build_support.py").is_file() and (ROOT / "bsp_fast").is_dir()

# the readable references that only tests may call
REFERENCES = {
    "bsp_fast/data/windows.py": {"codes_ref", "one_hot_ref"},
    "bsp_fast/data/fasta.py": {"encode_block_ref"},
    "bsp_fast/gru/reference.py": {"gru_reference", "bigru_layer_reference"},
    "bsp_fast/strand_conv.py": {"both_strands_conv_pool_reference"},
}


def _run_python(code: str, cwd: Path, env_extra: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.mark.skipif(not HAS_TREE, reason="needs the source tree beside tests/")
def test_source_tree_first_on_path_uses_installed_kernels(tmp_path):
    """As `python -m` in the checkout's root: the tree's bsp_fast, the installed kernels, no reference
    called, no stale-kernel warning; a tiny train + predict runs end to end through the compiled paths."""
    code = textwrap.dedent(
        f"""
        import sys, json, warnings
        sys.path.insert(0, {str(ROOT)!r})   # what `python -m` does in the checkout's root
        import bsp_fast
        from bsp_fast import _native
        warnings.filterwarnings("error", category=_native.StaleKernelWarning)  # kernels older than the code
        assert bsp_fast.__file__.startswith({str(ROOT / 'bsp_fast')!r}), bsp_fast.__file__

        def boom(*a, **k):
            raise AssertionError("a production path called a reference implementation")

        import bsp_fast.data.windows as w, bsp_fast.data.fasta as f
        import bsp_fast.gru as g, bsp_fast.gru.reference as r
        w.codes_ref = w.one_hot_ref = f.encode_block_ref = boom
        r.gru_reference = r.bigru_layer_reference = g.gru_reference = g.bigru_layer_reference = boom
        import bsp_fast.strand_conv as sc
        sc.both_strands_conv_pool_reference = boom

        from bsp_fast import train, predict, _native
        from bsp_fast.data.synthetic import ensure_builtin
        b = ensure_builtin({str(tmp_path / 'builtin')!r}, scale=0.05)
        common = ["--genome", str(b.fasta), "--cache-dir", {str(tmp_path / 'cache')!r}, "--threads", "1"]
        rc = train.main(common + ["--labels", str(b.labels), "--cell", b.cell, "--model", "bigru-small",
                                  "--hidden", "8", "--region", "60", "--flank", "20", "--batch-size", "16",
                                  "--steps", "6", "--eval-every", "3", "--eval-batch-size", "512",
                                  "--out", {str(tmp_path / 'run')!r}])
        assert rc == 0, rc
        rc = predict.main(common + ["--checkpoint", {str(tmp_path / 'run' / 'best.pt')!r}, "--chroms", "chr21",
                                    "--out", {str(tmp_path / 'p.tsv')!r}])
        assert rc == 0, rc
        mods = {{n: sys.modules[n].__file__ for n in ("bsp_fast_codec", "bsp_fast_gru_cpu")}}
        print("MODS " + json.dumps(mods))
        """
    )
    res = _run_python(code, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    mods = json.loads(next(x for x in res.stdout.splitlines() if x.startswith("MODS "))[5:])
    for name, path in mods.items():
        assert Path(path).name.startswith(name + "."), path
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= m["auroc"] <= 1 and 0 <= m["auprc"] <= 1
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert rows and all(len(r.split("\t")) == 4 for r in rows)


@pytest.mark.skipif(not HAS_TREE, reason="needs the source tree beside tests/")
def test_python_m_in_checkout_root_runs(tmp_path):
    """`python -m bsp_fast.cli --version` and a command's --help, with the checkout's root as cwd."""
    for argv in (["-m", "bsp_fast.cli", "--version"], ["-m", "bsp_fast.predict", "--help"]):
        res = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "StaleKernelWarning" not in res.stderr and "built from other sources" not in res.stderr
    assert "bsp-fast predict" in res.stdout


def _hide_module_code(name: str) -> str:
    # an import hook that makes the compiled module `name` unimportable, as in an unbuilt install
    return textwrap.dedent(
        f"""
        import sys, importlib.abc
        class _Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, fullname, path=None, target=None):
                if fullname == {name!r}:
                    raise ModuleNotFoundError("No module named " + repr(fullname), name=fullname)
                return None
        sys.meta_path.insert(0, _Hide())
        """
    )


@pytest.mark.parametrize("command, missing", [
    ("train", "bsp_fast_codec"), ("train", "bsp_fast_gru_cpu"), ("predict", "bsp_fast_gru_cpu"),
    ("evaluate", "bsp_fast_codec"), ("cv", "bsp_fast_gru_cpu"), ("motifs", "bsp_fast_codec"),
    ("explain", "bsp_fast_gru_cpu"), ("gradients", "bsp_fast_codec"),
])
def test_missing_module_is_one_line_exit_2(tmp_path, missing, command):
    """Every command, before doing anything: one line naming the module and how to build it; exit 2."""
    code = _hide_module_code(missing) + textwrap.dedent(
        f"""
        import importlib
        mod = importlib.import_module("bsp_fast.{command}")
        raise SystemExit(mod.main(["--out", {str(tmp_path / 'o')!r}]))
        """
    )
    res = _run_python(code, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert missing in lines[0] and "pip install ." in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()  # failed before any work


def test_missing_module_through_bsp_fast_cli(tmp_path):
    code = _hide_module_code("bsp_fast_codec") + "from bsp_fast import cli\nraise SystemExit(cli.main(['train']))\n"
    res = _run_python(code, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "bsp_fast_codec" in res.stderr and "Traceback" not in res.stderr


def test_library_calls_raise_the_one_line_error(tmp_path):
    """A library user (no command) gets NativeModuleMissing from the fast path, not the reference's result."""
    code = _hide_module_code("bsp_fast_codec") + textwrap.dedent(
        """
        import numpy as np
        from bsp_fast import _native
        from bsp_fast.data import windows
        d = np.zeros(10, np.uint8)
        try:
            windows.extract_one_hot(d, np.array([0]), np.array([10]), np.array([0]), np.array([0]), 4)
        except _native.NativeModuleMissing as exc:
            assert "\\n" not in str(exc)
            print("raised", exc)
        else:
            raise SystemExit("no error")
        # the reference is still there for tests, called explicitly
        print(windows.one_hot_ref(d, np.array([0]), np.array([10]), np.array([0]), np.array([0]), 4).shape)
        """
    )
    res = _run_python(code, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "raised bsp_fast: compiled module bsp_fast_codec" in res.stdout and "(1, 4, 4)" in res.stdout


def test_no_production_module_calls_a_reference():
    """Static check: outside its own module (and the package's re-exports), no code under bsp_fast/
    names a reference implementation."""
    pkg = Path(_native.__file__).resolve().parent
    names = set().union(*REFERENCES.values())
    offenders = []
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg.parent).as_posix()
        if rel in REFERENCES or rel == "bsp_fast/gru/__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            hit = (isinstance(node, ast.Name) and node.id in names) or \
                  (isinstance(node, ast.Attribute) and node.attr in names) or \
                  (isinstance(node, ast.alias) and node.name in names)
            if hit:
                offenders.append(f"{rel}:{node.lineno}")
    # the fasta encoder picks its reference only when asked (use_ref=True, for the tests)
    assert offenders == [], offenders
    # and inside the reference modules, the fast entry points do not branch to the reference
    windows_src = (pkg / "data" / "windows.py").read_text()
    tree = ast.parse(windows_src)
    fast = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("extract_")}
    assert set(fast) == {"extract_codes", "extract_one_hot"}
    for fn in fast.values():
        called = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        assert not called & names, (fn.name, called & names)


def test_installed_modules_carry_their_source_hash():
    for name in _native.REQUIRED:
        mod = _native.load(name)
        assert isinstance(mod.source_hash, str) and len(mod.source_hash) == 16, (name, mod.source_hash)


@pytest.mark.skipif(not HAS_TREE, reason="needs the source tree beside tests/")
def test_stale_kernels_are_reported(tmp_path, monkeypatch):
    """A source tree whose csrc/ differs from what the installed kernels were built from says so."""
    import shutil

    tree = tmp_path / "tree"
    (tree / "csrc").mkdir(parents=True)
    shutil.copy(ROOT / "build_support.py", tree / "build_support.py")
    for f in (ROOT / "csrc").iterdir():
        if f.is_file():
            shutil.copy(f, tree / "csrc" / f.name)
    monkeypatch.setattr(_native, "source_tree", lambda: tree)
    monkeypatch.setattr(_native, "_loaded", {})
    name = "bsp_fast_gru_cpu"
    built = importlib.import_module(name).source_hash
    spec = importlib.util.spec_from_file_location("bs", tree / "build_support.py")
    bs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bs)
    if bs.source_hash(name, tree) != built:
        pytest.skip("the installed kernel is not built from this checkout's csrc/ (a different build)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _native.load(name)  # same sources: silent
    kernel = next(p for p in (tree / "csrc").glob("gru_cpu*.cpp"))
    kernel.write_text(kernel.read_text() + "\n// edited after the build\n")
    monkeypatch.setattr(_native, "_loaded", {})
    with pytest.warns(_native.StaleKernelWarning, match=f"{name} .* was built from other sources"):
        _native.load(name)


def test_unknown_module_name():
    with pytest.raises(KeyError, match="unknown compiled module"):
        _native.load("bsp_fast_nope")
