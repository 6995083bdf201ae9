"""The benchmark panel's held-out splits (benchmarks/panel.py: ``held_out``, ``--fold``)."""

import importlib.util
from pathlib import Path

import pytest

_PANEL = Path(__file__).resolve().parent.parent / "benchmarks" / "panel.py"


def _panel():
    spec = importlib.util.spec_from_file_location("bsp_panel_under_test", _PANEL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("n", [9, 12, 17, 20])
def test_folds_test_every_segment_once(n):
    """Across the four folds each segment is test exactly once; validation never overlaps test and is
    never empty; fold 0 is the split the panel has always used (every fourth from the first, the
    third of each eight)."""
    panel = _panel()
    names = [f"s_{k}" for k in range(1, n + 1)]
    seen = []
    for fold in range(panel.FOLDS):
        test, valid = panel.held_out(names, fold)
        assert test and valid and not set(test) & set(valid)
        seen += test
    assert sorted(seen) == sorted(names)
    assert panel.held_out(names) == (names[0::4], [x for x in names[2::8] if x not in names[0::4]])
    with pytest.raises(ValueError, match="fold 4"):
        panel.held_out(names, 4)
