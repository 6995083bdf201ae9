"""PNG plots shared by the commands: ROC and PR curves (with the right chance lines) and loss curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bsp_fast.metrics import curves  # noqa: E402


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_roc_pr(
    results: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """ROC and PR panels for one or more named (labels, scores) pairs.

    The PR chance line is the prevalence (n_pos / n), which the thesis drew at 0.5 by mistake.
    """
    from bsp_fast.metrics import binary_metrics

    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(11, 4.8))
    prevalences = []
    for name, (labels, scores) in results.items():
        c = curves(labels, scores)
        m = binary_metrics(labels, scores)
        ax_roc.plot(c["fpr"], c["tpr"], label=f"{name} (auROC {m['auroc']:.3f})")
        ax_pr.step(c["recall"], c["precision"], where="post", label=f"{name} (auPRC {m['auprc']:.3f})")
        prevalences.append(m["n_pos"] / (m["n_pos"] + m["n_neg"]))
    ax_roc.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    for p in sorted(set(np.round(prevalences, 6))):
        ax_pr.axhline(p, color="k", ls="--", lw=0.8, label=f"chance (prevalence {p:.4f})")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.01))
    ax_roc.legend(loc="lower right", fontsize=8)
    ax_pr.legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_lines(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
) -> Path:
    """Simple named line plot (loss curves, gradient magnitudes)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
