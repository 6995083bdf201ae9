"""Binary classification metrics that stay honest at genome-wide prevalence (about 1 in 1000).

All commands write the same keys: ``auroc``, ``auprc``, ``recall_at_fdr10``, ``recall_at_fdr50``,
``n_pos``, ``n_neg``. auPRC is average precision (step-wise, no optimistic interpolation), and
its chance level is the prevalence ``n_pos / (n_pos + n_neg)``, not 0.5.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

METRIC_KEYS = ("auroc", "auprc", "recall_at_fdr10", "recall_at_fdr50", "n_pos", "n_neg")


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.shape[0]} vs {scores.shape[0]}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive); drop ambiguous bins before scoring")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return labels.astype(np.int8), scores


def recall_at_fdr(labels: np.ndarray, scores: np.ndarray, fdr: float) -> float:
    """Largest recall reachable at a score threshold whose false discovery rate is <= ``fdr``."""
    labels, scores = _check(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    ok = precision >= 1.0 - fdr
    return float(recall[ok].max()) if ok.any() else 0.0


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float | int]:
    """auROC, auPRC, recall at 10 % and 50 % FDR, and the class counts.

    Raises ValueError when either class is missing (the areas are undefined then).
    """
    labels, scores = _check(labels, scores)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes to score, got {n_pos} positives and {n_neg} negatives")
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "auprc": float(average_precision_score(labels, scores)),
        "recall_at_fdr10": recall_at_fdr(labels, scores, 0.10),
        "recall_at_fdr50": recall_at_fdr(labels, scores, 0.50),
        "n_pos": n_pos,
        "n_neg": n_neg,
    }


def curves(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """ROC (fpr, tpr) and PR (recall, precision) curves for plotting."""
    labels, scores = _check(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}
