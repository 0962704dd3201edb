"""Per-task mistakes on the dev split: galleries (PNG), a traceable CSV and summary lines.

Each function takes a `RunData` and an output folder and returns `(summary_lines, written_files)`.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from zoo.analysis import data as data_lib


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show(x):
    """Any input as a displayable image in [0, 1] (min-max per image; sequences as rows of pixels)."""
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        side = int(np.ceil(np.sqrt(x.size)))
        x = np.pad(x, (0, side * side - x.size)).reshape(side, side)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def gallery(images, titles, path, columns=6) -> str:
    """A grid of images with a title each; returns `path`."""
    plt = _pyplot()
    n = max(len(images), 1)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        img = _show(img)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return os.fspath(path)


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return os.fspath(path)


def probabilities(model, outputs) -> np.ndarray:
    """Class probabilities `[n, K]` from a classifier's outputs (softmax / sigmoid when it emits logits)."""
    out = np.asarray(outputs, np.float64)
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    logits = activation not in ("softmax", "sigmoid")
    if out.shape[-1] == 1:
        p = 1.0 / (1.0 + np.exp(-out[:, 0])) if logits else out[:, 0]
        return np.stack([1.0 - p, p], 1)
    if logits:
        out = np.exp(out - out.max(1, keepdims=True))
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)


def predict_split(rd, split, **overrides):
    """`(labels [n], probs [n, K])` of one split, unshuffled."""
    labels, probs = [], []
    for x, y in data_lib.dataset(rd, split, **overrides):
        probs.append(probabilities(rd.model, rd.model(x, training=False)))
        labels.append(np.asarray(y).reshape(-1))
    if not probs:
        return np.zeros(0, np.int64), np.zeros((0, 2))
    return np.concatenate(labels).astype(np.int64), np.concatenate(probs)


def pick_inputs(rd, split, indices, **overrides) -> dict:
    """`{index: input}` for the given example indices of an unshuffled split (a second pass: only these kept)."""
    wanted, found, start = set(int(i) for i in indices), {}, 0
    for x, _ in data_lib.dataset(rd, split, **overrides):
        x = np.asarray(x)
        for j in range(len(x)):
            if start + j in wanted:
                found[start + j] = x[j]
        start += len(x)
        if len(found) == len(wanted):
            break
    return found


def _names(rd, k):
    names = list(rd.spec.class_names or [])
    return names if len(names) == k else [str(i) for i in range(k)]


def classification(rd, out_dir, top=18):
    """mistakes.png (highest-loss dev examples), mistakes.csv, confused pairs and per-class P/R/F1."""
    from callbacks import reports

    labels, probs = predict_split(rd, "val")
    k = probs.shape[1]
    names = _names(rd, k)
    pred = probs.argmax(1)
    loss = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))
    order = np.argsort(-loss, kind="stable")
    where = data_lib.paths(rd, "val", len(labels))
    files = [write_csv(os.path.join(out_dir, "mistakes.csv"), ("path", "label", "prediction", "probability", "loss"),
                       [(where[i], names[labels[i]], names[pred[i]], f"{probs[i, pred[i]]:.4f}", f"{loss[i]:.4f}")
                        for i in order])]
    shown = [int(i) for i in order[:top]]
    inputs = pick_inputs(rd, "val", shown)
    titles = [f"{os.path.basename(str(where[i]))[-18:]}\ngiven {names[labels[i]]}\n"
              f"pred {names[pred[i]]} ({probs[i, pred[i]]:.2f})" for i in shown]
    files.append(gallery([inputs[i] for i in shown], titles, os.path.join(out_dir, "mistakes.png")))
    cm = reports.confusion_matrix(labels, pred, k)
    metrics = reports.classification_metrics(cm)
    per = metrics["per_class"]
    worst = sorted(range(k), key=lambda c: (per["f1"][c], names[c]))
    files.append(write_csv(os.path.join(out_dir, "per_class.csv"), ("class", "precision", "recall", "f1", "support"),
                           [(names[c], f"{per['precision'][c]:.4f}", f"{per['recall'][c]:.4f}", f"{per['f1'][c]:.4f}",
                             int(cm[c].sum())) for c in worst]))
    off = [(int(cm[i, j]), names[i], names[j]) for i in range(k) for j in range(k) if i != j and cm[i, j]]
    off.sort(key=lambda t: -t[0])
    lines = [f"dev mistakes: {int((pred != labels).sum())} of {len(labels)}"]
    lines += ["most confused (true -> predicted: count): "
              + ("; ".join(f"{a} -> {b}: {c}" for c, a, b in off[:8]) or "none")]
    lines += ["worst classes by F1: " + "; ".join(
        f"{names[c]} P {per['precision'][c]:.2f} R {per['recall'][c]:.2f} F1 {per['f1'][c]:.2f}" for c in worst[:5])]
    return lines, files


def detection(rd, out_dir, top=8):
    """mistakes.png: the dev images with the most missed plus false boxes (IoU 0.5, same class); mistakes.csv."""
    from zoo.tasks.detection import boxes as boxes_lib
    from zoo.tasks.detection import draw
    from zoo.tasks.detection import task as det

    extra = dict(rd.recipe.extra or {})
    extra["score_threshold"] = det.setting(extra, "serving_score_threshold")
    ds = data_lib.dataset(rd, "val")
    rows, kept = [], []
    raw = getattr(ds, "raw_targets", None)
    for images, targets in (raw if raw is not None else ds):
        preds, truth = det.predict(rd.model, images, extra), det.ground_truth(targets)
        for img, p, g in zip(np.asarray(images), preds, truth):
            missed, false = _box_errors(boxes_lib, p, g[:2])
            rows.append((missed, false))
            kept.append((missed + false, len(rows) - 1, img, p, g[:2]))
            kept = sorted(kept, key=lambda t: (-t[0], t[1]))[:top]
    where = data_lib.paths(rd, "val", len(rows))
    order = sorted(range(len(rows)), key=lambda i: -(rows[i][0] + rows[i][1]))
    files = [write_csv(os.path.join(out_dir, "mistakes.csv"), ("path", "missed_boxes", "false_boxes"),
                       [(where[i], *rows[i]) for i in order])]
    path = os.path.join(out_dir, "mistakes.png")
    unit = [(t[2] - t[2].min()) / max(float(t[2].max() - t[2].min()), 1e-12) for t in kept]
    draw.draw_detections(path, np.stack(unit),
                         [t[3] for t in kept], [t[4] for t in kept], class_names=rd.spec.class_names)
    files.append(path)
    missed, false = sum(r[0] for r in rows), sum(r[1] for r in rows)
    return [f"dev boxes missed: {missed}, false boxes: {false} over {len(rows)} images (IoU 0.5, same class)"], files


def _box_errors(boxes_lib, prediction, truth):
    """`(missed, false)`: greedy one-to-one matching by score at IoU >= 0.5 with the same class."""
    pb, _, pc = (np.asarray(a) for a in prediction)
    gb, gc = (np.asarray(a) for a in truth)
    if not len(pb) or not len(gb):
        return len(gb), len(pb)
    ious = np.asarray(boxes_lib.iou(pb, gb))
    used, matched = set(), 0
    for i in range(len(pb)):
        cand = [j for j in np.argsort(-ious[i]) if ious[i, j] >= 0.5 and gc[j] == pc[i] and j not in used]
        if cand:
            used.add(int(cand[0]))
            matched += 1
    return len(gb) - matched, len(pb) - matched


def segmentation(rd, out_dir, top=6):
    """mistakes.png: the worst-IoU dev images with true and predicted masks; mistakes.csv (path, IoU)."""
    from zoo.tasks.segmentation import metrics as seg_metrics
    from zoo.tasks.segmentation import report as seg_report

    k = int(rd.model.output_shape[-1])
    ious, kept = [], []
    for x, y in data_lib.dataset(rd, "val"):
        pred = np.argmax(np.asarray(rd.model(x, training=False)), -1)
        for img, t, p in zip(np.asarray(x), np.asarray(y).reshape(pred.shape), pred):
            value = seg_metrics.mean_iou(seg_metrics.confusion_matrix(t[None], p[None], k))
            value = 0.0 if value is None or not np.isfinite(value) else float(value)
            ious.append(value)
            kept = sorted(kept + [(value, len(ious) - 1, img, t, p)], key=lambda e: (e[0], e[1]))[:top]
    where = data_lib.paths(rd, "val", len(ious))
    order = np.argsort(ious, kind="stable")
    files = [write_csv(os.path.join(out_dir, "mistakes.csv"), ("path", "iou"),
                       [(where[i], f"{ious[i]:.4f}") for i in order])]
    files.append(seg_report.mask_report(
        np.stack([e[2] for e in kept]), np.stack([e[3] for e in kept]), np.stack([e[4] for e in kept]),
        os.path.join(out_dir, "mistakes.png"), num_classes=k, class_names=_names(rd, k),
        normalization=rd.spec.normalization))
    lines = [f"dev images: {len(ious)}; worst per-image mean IoU: "
             + ", ".join(f"{ious[i]:.2f} ({os.path.basename(str(where[i]))})" for i in order[:top])]
    return lines, files


def embedding(rd, out_dir, top=18):
    """mistakes.csv: dev examples whose nearest other dev embedding has another identity."""
    from zoo.tasks.embedding import evaluation

    emb, labels = (np.asarray(a) for a in evaluation.embed(rd.model, data_lib.dataset(rd, "val")))
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    dist = np.sqrt(np.maximum(2.0 - 2.0 * emb @ emb.T, 0.0))
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(1)
    wrong = np.flatnonzero(labels[nearest] != labels)
    wrong = wrong[np.argsort(dist[wrong, nearest[wrong]])]
    names = _names(rd, int(max(labels.max() + 1, len(rd.spec.class_names or [])))) if len(labels) else []
    rows = [(i, names[labels[i]], names[labels[nearest[i]]], f"{dist[i, nearest[i]]:.4f}") for i in wrong]
    files = [write_csv(os.path.join(out_dir, "mistakes.csv"),
                       ("dev_index", "identity", "nearest_identity", "distance"), rows)]
    return [f"dev nearest-neighbour mistakes: {len(wrong)} of {len(labels)} (closest first in mistakes.csv)"], files


BY_TASK = {"classification": classification, "sequence": classification, "detection": detection,
           "segmentation": segmentation, "embedding": embedding}
