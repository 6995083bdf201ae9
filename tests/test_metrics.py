import numpy as np
import pytest

from bsp_fast.metrics import METRIC_KEYS, binary_metrics, recall_at_fdr
from bsp_fast.plots import plot_roc_pr


def test_perfect_and_reversed_scores():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = y.astype(float)
    m = binary_metrics(y, s)
    assert set(METRIC_KEYS) <= set(m)
    assert m["auroc"] == 1.0 and m["auprc"] == 1.0 and m["recall_at_fdr10"] == 1.0
    assert (m["n_pos"], m["n_neg"]) == (3, 3)
    r = binary_metrics(y, -s)
    assert r["auroc"] == 0.0


def test_random_scores_auprc_near_prevalence():
    rng = np.random.default_rng(0)
    y = (rng.random(200_000) < 0.001).astype(int)
    m = binary_metrics(y, rng.random(y.size))
    assert abs(m["auroc"] - 0.5) < 0.05
    # chance auPRC is the prevalence, not 0.5
    assert m["auprc"] < 0.01


def test_recall_at_fdr_by_hand():
    # scores sorted: 1(+) .9(-) .8(+) .7(+) .1(-): at threshold .7 precision 3/4, recall 1
    y = np.array([1, 0, 1, 1, 0])
    s = np.array([1.0, 0.9, 0.8, 0.7, 0.1])
    assert recall_at_fdr(y, s, 0.10) == pytest.approx(1 / 3)
    assert recall_at_fdr(y, s, 0.50) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "y,s,msg",
    [
        ([0, 1], [0.1], "differ in length"),
        ([0, 2], [0.1, 0.2], "0 \\(negative\\) or 1"),
        ([0, 0], [0.1, 0.2], "both classes"),
        ([0, 1], [np.nan, 0.2], "NaN"),
    ],
)
def test_bad_input(y, s, msg):
    with pytest.raises(ValueError, match=msg):
        binary_metrics(np.array(y), np.array(s))


def test_plot_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.05).astype(int)
    out = plot_roc_pr({"model": (y, y + rng.normal(0, 1, y.size))}, tmp_path / "roc_pr.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))
