"""Score filtering and per-class non-max suppression (numpy, and tf for serving graphs)."""

from __future__ import annotations

import numpy as np

from zoo.tasks.detection.boxes import iou
from zoo.tasks.detection.encoding import decode, grid_to_boxes


def filter_scores(boxes, scores, score_threshold):
    """Keeps `(box, class)` pairs whose score passes `score_threshold`.

    Args:
        boxes: `[N, 4]` corner boxes.
        scores: `[N, K]` class scores (objectness x class probability).
        score_threshold: Scores must exceed this to be kept (as in `tf.image.combined_non_max_suppression`).

    Returns:
        `(boxes [D, 4], scores [D], classes [D])` numpy arrays.
    """
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    idx, cls = np.nonzero(scores > score_threshold)
    return boxes[idx], scores[idx, cls], cls.astype("int32")


def non_max_suppression(boxes, scores, classes, *, iou_threshold=0.5, max_boxes=100):
    """Greedy per-class NMS: keep the best box, drop boxes of its class that overlap it by more than `iou_threshold`.

    Args:
        boxes: `[D, 4]` corner boxes.
        scores: `[D]` scores.
        classes: `[D]` class ids; boxes of different classes never suppress each other.
        iou_threshold: Boxes with IoU above this with a kept box are removed.
        max_boxes: Most boxes returned overall (the highest scores).

    Returns:
        Indices of the kept boxes, by decreasing score.
    """
    boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
    keep = []
    for c in np.unique(classes):
        idx = np.nonzero(classes == c)[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        while idx.size:
            best, idx = idx[0], idx[1:]
            keep.append(best)
            idx = idx[iou(boxes[best], boxes[idx])[0] <= iou_threshold]
    keep = np.asarray(keep, "int64")
    return keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]


def detect(raw, anchors, *, score_threshold=0.25, iou_threshold=0.5, max_boxes=100):
    """Raw outputs of one image -> `(boxes, scores, classes)` after decoding, filtering and NMS (numpy)."""
    boxes, obj, probs = (np.asarray(t) for t in grid_to_boxes(decode(raw, anchors)))
    boxes = np.clip(boxes, 0.0, 1.0)
    b, s, c = filter_scores(boxes, obj[:, None] * probs, score_threshold)
    keep = non_max_suppression(b, s, c, iou_threshold=iou_threshold, max_boxes=max_boxes)
    return b[keep], s[keep], c[keep]


def batched_nms(raw, anchors, *, score_threshold=0.25, iou_threshold=0.5, max_boxes=100):
    """Graph version of `detect` for a batch (what the exported serving signature runs).

    Args:
        raw: `[N, S, S, B, 5 + K]` model output.
        anchors: `[B, 2]` anchors of the model.

    Returns:
        dict `boxes [N, max_boxes, 4]`, `scores [N, max_boxes]`, `classes [N, max_boxes]`
        (int32), `valid_detections [N]`; rows past `valid_detections` are zero padding.
    """
    import tensorflow as tf

    boxes, obj, probs = grid_to_boxes(decode(raw, anchors))
    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    scores = obj[..., None] * probs
    out = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :],
        scores,
        max_output_size_per_class=max_boxes,
        max_total_size=max_boxes,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        clip_boxes=True,
    )
    return {
        "boxes": out.nmsed_boxes,
        "scores": out.nmsed_scores,
        "classes": tf.cast(out.nmsed_classes, tf.int32),
        "valid_detections": out.valid_detections,
    }
