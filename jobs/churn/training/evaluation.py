"""Metrics and plots of a binary churn model, on numpy arrays (no Spark, no MLflow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EPS = 1e-15


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut that maximises F1 (on validation data: the caller guarantees that)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, EPS)
    best = int(np.nanargmax(f1[:-1])) if len(thresholds) else 0
    return float(thresholds[best]) if len(thresholds) else 0.5


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """roc_auc, pr_auc, log_loss, brier, and f1/precision/recall/accuracy at the threshold."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    if len(np.unique(y)) < 2:
        raise ValueError(f"evaluation data holds one class only ({len(y)} rows): AUC is undefined")
    predicted = (p >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "accuracy": float((predicted == y).mean()),
        "threshold": float(threshold),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }


def plot_evaluation(y: np.ndarray, p: np.ndarray, threshold: float, folder: Path, title: str) -> list[Path]:
    """ROC, precision-recall, calibration and confusion-matrix plots as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y).astype(int)
    written = []

    def save(fig, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    m = metrics(y, p, threshold)
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {m['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC — {title}")
    ax.legend(loc="lower right")
    save(fig, "roc.png")

    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"AP {m['pr_auc']:.3f}")
    ax.axhline(y.mean(), linestyle="--", color="grey", linewidth=1, label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall — {title}")
    ax.legend(loc="upper right")
    save(fig, "precision_recall.png")

    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(predicted, observed, "o-", label=f"Brier {m['brier']:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate", title=f"Calibration — {title}")
    ax.legend(loc="upper left")
    save(fig, "calibration.png")

    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:,}", ha="center", va="center", color="black")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["stays", "churns"],
        yticklabels=["stays", "churns"],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion at {threshold:.3f} (F1 {m['f1']:.3f})",
    )
    save(fig, "confusion_matrix.png")
    return written


def plot_shap_summary(values, frame, path: Path, title: str, max_display: int = 20) -> Path:
    """SHAP beeswarm summary (values: rows x features, frame: the feature values shown as colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    path.parent.mkdir(parents=True, exist_ok=True)
    numeric = frame.apply(lambda c: c if c.dtype.kind in "fiub" else c.astype("category").cat.codes)
    shap.summary_plot(np.asarray(values), numeric, max_display=max_display, show=False, plot_size=(8, 7))
    plt.title(title)
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
    return path
