"""Run reports: JSON files without NaN, learning curves, confusion matrix, precision / recall / F1."""

from __future__ import annotations

import json
import math
import os

import numpy as np


def write_json(path, obj) -> None:
    """Writes `obj` as JSON atomically; NaN and infinities become `null` (never invalid JSON)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(finite(obj), f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def finite(obj):
    """`obj` made JSON-able (arrays, tuples, sets, numpy scalars) with every NaN / infinity as None."""
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) and k is not None else k: finite(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [finite(v) for v in obj]
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):
        return finite(obj.tolist())
    return str(obj)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict], path, mark=None) -> str:
    """One panel per metric (loss first), train vs dev, from history rows; returns `path`.

    Args:
        rows: History rows (`epoch`, metrics, `val_*`; a `phase` column is ignored).
        path: PNG to write.
        mark: Optional `(epoch, label)`: a dashed line after that epoch (e.g. where fine-tuning began).
    """
    plt = _pyplot()
    names = [k for k in (rows[0] if rows else {})
             if k not in ("epoch", "learning_rate", "phase") and not k.startswith("val_")]
    names.sort(key=lambda n: (n != "loss", n))
    panels = names + (["learning_rate"] if rows and "learning_rate" in rows[0] else [])
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.5 * max(len(panels), 1), 3.6), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for ax, name in zip(axes[0], panels):
        ax.plot(epochs, [r.get(name, np.nan) for r in rows], marker="o", label="train" if name != "learning_rate" else name)
        if any(f"val_{name}" in r for r in rows):
            ax.plot(epochs, [r.get(f"val_{name}", np.nan) for r in rows], marker="o", label="dev")
        if mark is not None:
            ax.axvline(mark[0] + 0.5, color="gray", linestyle="--", label=mark[1])
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return os.fspath(path)


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index=None) -> np.ndarray:
    """`[num_classes, num_classes]` counts, rows = true class, columns = predicted class.

    Args:
        y_true: Integer class ids (labels, or masks of any shape).
        y_pred: Predicted class ids of the same shape (argmax already taken).
        num_classes: Number of classes.
        ignore_index: True id to skip (e.g. 255, the "void" of segmentation masks). When set, pairs with an
            id outside `[0, num_classes)` are skipped too; when None, such ids raise ValueError.
    """
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"Shapes differ: y_true {np.shape(y_true)} vs y_pred {np.shape(y_pred)}.")
    keep = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    if ignore_index is not None:
        keep &= t != ignore_index
    elif not keep.all():
        bad = np.concatenate([t[(t < 0) | (t >= num_classes)], p[(p < 0) | (p >= num_classes)]])
        raise ValueError(f"Class ids must be in [0, {num_classes}). Received: {sorted(set(bad.tolist()))[:5]}")
    idx = t[keep] * num_classes + p[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(cm: np.ndarray) -> dict:
    """Accuracy and macro precision / recall / F1 from a confusion matrix, plus per-class values."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(0), cm.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = actual > 0
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()},
    }


def plot_confusion(cm, class_names, path, title="confusion matrix") -> str:
    plt = _pyplot()
    cm = np.asarray(cm)
    n = cm.shape[0]
    size = min(max(3.5, 0.5 * n + 2), 14)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    names = [str(c) for c in (class_names or range(n))]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        limit = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > limit else "black",
                        fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return os.fspath(path)
