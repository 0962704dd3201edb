"""Segmentation metrics: confusion matrix, per-class and mean IoU, pixel accuracy.

The numpy functions score whole evaluation sets (`evaluate`); the Keras metrics report the same quantities during
`fit`. Pixels labelled `ignore_index` (255) are never scored. A class absent from both the truth and the prediction
has no IoU (NaN) and is left out of the mean, as in `keras.metrics.MeanIoU`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from callbacks import reports


def confusion_matrix(y_true, y_pred, num_classes, ignore_index=255):
    """`[num_classes, num_classes]` pixel counts, rows = true class, columns = predicted class.

    Args:
        y_true: Integer mask(s) of any shape.
        y_pred: Predicted class ids of the same shape (argmax already taken).
        num_classes: Number of classes.
        ignore_index: True label that is skipped; true ids outside `[0, num_classes)` are skipped too.
    """
    return reports.confusion_matrix(y_true, y_pred, num_classes, ignore_index=ignore_index)


def per_class_iou(cm):
    """IoU per class: TP / (TP + FP + FN); NaN where the class appears in neither truth nor prediction."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm):
    """Mean of `per_class_iou` over the classes that have one."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")


def pixel_accuracy(cm):
    """Correct pixels / scored pixels."""
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def summarize(cm, class_names=None):
    """`{"mean_iou", "pixel_accuracy", "iou_<class>": ...}` from a confusion matrix (None for NaN)."""
    names = list(class_names or [str(i) for i in range(len(cm))])
    out = {"mean_iou": mean_iou(cm), "pixel_accuracy": pixel_accuracy(cm)}
    for name, value in zip(names, per_class_iou(cm)):
        out[f"iou_{name}"] = float(value)
    return {k: (None if v != v else v) for k, v in out.items()}


@keras.saving.register_keras_serializable(package="zoo")
class PixelAccuracy(keras.metrics.Mean):
    """Fraction of correctly classified pixels, skipping `ignore_index`.

    Takes sparse masks `[B, H, W]` and per-pixel scores `[B, H, W, C]`.
    """

    def __init__(self, ignore_index=255, name="pixel_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_index = int(ignore_index)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):
            labels = ops.squeeze(labels, axis=-1)
        pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        valid = ops.logical_and(ops.not_equal(labels, self.ignore_index),
                                ops.logical_and(labels >= 0, labels < y_pred.shape[-1]))
        valid = ops.cast(valid, self.dtype)
        if sample_weight is not None:
            valid = valid * ops.cast(sample_weight, self.dtype)
        return super().update_state(ops.cast(ops.equal(labels, pred), self.dtype), sample_weight=valid)

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index}


def keras_metrics(num_classes, ignore_index=255):
    """The metrics `fit` reports: `mean_iou` and `pixel_accuracy`."""
    return [
        keras.metrics.MeanIoU(num_classes=num_classes, ignore_class=ignore_index, sparse_y_pred=False,
                              name="mean_iou"),
        PixelAccuracy(ignore_index=ignore_index),
    ]


def evaluate_dataset(model, dataset, num_classes, class_names=None, ignore_index=255):
    """Scores `model` on a dataset of `(images, masks)` batches; returns `summarize` of the confusion matrix."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for images, masks in dataset:
        scores = model.predict_on_batch(images)
        pred = np.asarray(ops.argmax(scores, axis=-1))
        cm += confusion_matrix(np.asarray(masks), pred, num_classes, ignore_index)
    return summarize(cm, class_names)
