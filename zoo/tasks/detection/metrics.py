"""Detection mAP: PASCAL VOC all-point AP at IoU 0.5 and the mean over IoU 0.5:0.95."""

from __future__ import annotations

import numpy as np

from zoo.tasks.detection.boxes import iou

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))


def average_precision(recall, precision):
    """VOC all-point interpolated AP (the area under the monotone precision envelope).

    Args:
        recall: Recall after each detection, by decreasing score.
        precision: Precision after each detection.
    """
    mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def class_ap(detections, ground_truth, iou_threshold, difficult=None):
    """AP of one class.

    Args:
        detections: list over images of `(boxes [D, 4], scores [D])`.
        ground_truth: list over images of `boxes [G, 4]`.
        iou_threshold: Minimum IoU of a true positive.
        difficult: Optional list over images of bool `[G]` (Pascal VOC's flag).
            Difficult truths are not counted as positives, and a detection
            whose best match is a difficult truth is ignored (neither true
            nor false positive), as in the VOC devkit.

    Returns:
        AP, or NaN when the class has no (non-difficult) ground truth.
    """
    if difficult is None:
        difficult = [np.zeros(len(g), bool) for g in ground_truth]
    difficult = [np.asarray(d, bool).reshape(-1) for d in difficult]
    n_gt = sum(int((~d).sum()) for d in difficult)
    if n_gt == 0:
        return float("nan")
    records = [(s, i, j) for i, (_, scores) in enumerate(detections) for j, s in enumerate(scores)]
    records.sort(key=lambda r: -r[0])
    used = [np.zeros(len(g), bool) for g in ground_truth]
    overlaps = [iou(d[0], g) if len(d[0]) and len(g) else None for d, g in zip(detections, ground_truth)]
    tp, fp = np.zeros(len(records)), np.ones(len(records))
    for r, (_, i, j) in enumerate(records):
        if overlaps[i] is None:
            continue
        best = int(np.argmax(overlaps[i][j]))
        if overlaps[i][j, best] < iou_threshold:
            continue
        if difficult[i][best]:
            fp[r] = 0  # ignored
        elif not used[i][best]:
            used[i][best] = True
            tp[r], fp[r] = 1, 0
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    return average_precision(ctp / n_gt, ctp / np.maximum(ctp + cfp, 1e-12))


def mean_average_precision(predictions, ground_truth, num_classes, *, class_names=None,
                           iou_thresholds=IOU_THRESHOLDS):
    """mAP@0.5 and mAP@0.5:0.95 with per-class AP.

    Detections are taken by decreasing score; each is a true positive when the true
    box of its class it overlaps most has IoU >= the threshold and is not matched
    yet (VOC rule), else a false positive. AP uses all-point interpolation at every
    threshold. Classes without ground truth are left out of the means. Difficult
    truths (VOC) are not positives, and detections matched to them are ignored.

    Args:
        predictions: list over images of `(boxes [D, 4], scores [D], classes [D])`.
        ground_truth: list over images of `(boxes [G, 4], classes [G])`, or
            `(boxes, classes, difficult [G] bool)`.
        num_classes: `K`.
        class_names: Names used in the per-class keys. Defaults to "0".."K-1".
        iou_thresholds: Thresholds averaged for `map50_95`; must include 0.5.

    Returns:
        dict `map50`, `map50_95`, and `ap50_<name>`, `ap50_95_<name>` for each
        class with ground truth (NaN means when no class has any).
    """
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    table = np.full((num_classes, len(iou_thresholds)), np.nan)
    for c in range(num_classes):
        dets = [(np.asarray(b)[np.asarray(k) == c], np.asarray(s)[np.asarray(k) == c]) for b, s, k in predictions]
        gts = [np.asarray(g[0]).reshape(-1, 4)[np.asarray(g[1]) == c] for g in ground_truth]
        hard = [np.asarray(g[2], bool)[np.asarray(g[1]) == c] if len(g) > 2 else None for g in ground_truth]
        hard = [np.zeros(len(b), bool) if h is None else h for b, h in zip(gts, hard)]
        for t, thr in enumerate(iou_thresholds):
            table[c, t] = class_ap(dets, gts, thr, hard)
    at50 = list(iou_thresholds).index(0.5)
    has_gt = ~np.isnan(table[:, 0])
    result = {
        "map50": float(np.mean(table[has_gt, at50])) if has_gt.any() else float("nan"),
        "map50_95": float(np.mean(table[has_gt])) if has_gt.any() else float("nan"),
    }
    for c, name in enumerate(names):
        if not has_gt[c]:
            continue
        result[f"ap50_{name}"] = float(table[c, at50])
        result[f"ap50_95_{name}"] = float(np.mean(table[c]))
    return result
