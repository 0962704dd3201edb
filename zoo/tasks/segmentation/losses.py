"""Segmentation losses on sparse masks: masked cross-entropy, soft Dice, and their sum; class weights.

Every loss takes `y_true` as integer class ids `[B, H, W]` (or `[B, H, W, 1]`) and `y_pred` as per-pixel
probabilities `[B, H, W, C]` (logits with `from_logits=True`). Pixels labelled `ignore_index` (or any id outside
`[0, C)`) count for nothing. Each returns one value for the whole batch (pixel sums over the batch), which keeps
Dice stable when a class is absent from a single image.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

WEIGHTING = ("median_frequency", "inverse_frequency")


def _check_weights(class_weights):
    if class_weights is None:
        return None
    weights = [float(w) for w in class_weights]
    if not weights or any(not np.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise ValueError(
            f"`class_weights` must be a list of non-negative numbers, one per class, not all zero. "
            f"Received: class_weights={class_weights!r}"
        )
    return weights


def _prepare(y_true, y_pred, *, ignore_index, from_logits, class_weights):
    """(one-hot targets, probabilities, log-probabilities, valid-pixel mask, class weight vector)."""
    y_pred = ops.cast(y_pred, "float32")
    classes = y_pred.shape[-1]
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(y_pred.shape):
        labels = ops.squeeze(labels, axis=-1)
    valid = ops.logical_and(ops.not_equal(labels, ignore_index), ops.logical_and(labels >= 0, labels < classes))
    labels = ops.where(valid, labels, 0)
    valid = ops.cast(valid, "float32")
    onehot = ops.one_hot(labels, classes) * valid[..., None]
    if from_logits:
        log_probs = ops.log_softmax(y_pred, axis=-1)
        probs = ops.exp(log_probs)
    else:
        probs = y_pred / ops.maximum(ops.sum(y_pred, axis=-1, keepdims=True), keras.config.epsilon())
        log_probs = ops.log(ops.clip(probs, keras.config.epsilon(), 1.0))
    if class_weights is None:
        weights = ops.ones((classes,), "float32")
    else:
        if len(class_weights) != classes:
            raise ValueError(
                f"`class_weights` has {len(class_weights)} entries but the model predicts {classes} classes."
            )
        weights = ops.convert_to_tensor(class_weights, "float32")
    return onehot, probs, log_probs, valid, weights


def _cross_entropy(onehot, log_probs, weights):
    pixel_weight = ops.sum(onehot * weights, axis=-1)  # 0 on ignored pixels
    ce = -ops.sum(onehot * log_probs, axis=-1)
    return ops.sum(pixel_weight * ce) / ops.maximum(ops.sum(pixel_weight), keras.config.epsilon())


def _dice(onehot, probs, valid, weights, smooth):
    axes = tuple(range(len(probs.shape) - 1))
    probs = probs * valid[..., None]
    intersection = ops.sum(probs * onehot, axis=axes)
    total = ops.sum(probs, axis=axes) + ops.sum(onehot, axis=axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - ops.sum(weights * dice) / ops.sum(weights)


class _SegmentationLoss(keras.losses.Loss):
    def __init__(self, *, from_logits=False, ignore_index=255, class_weights=None, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)
        self.ignore_index = int(ignore_index)
        self.class_weights = _check_weights(class_weights)

    def _prepare(self, y_true, y_pred):
        return _prepare(
            y_true, y_pred, ignore_index=self.ignore_index, from_logits=self.from_logits,
            class_weights=self.class_weights,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            from_logits=self.from_logits, ignore_index=self.ignore_index, class_weights=self.class_weights
        )
        return config


@keras.saving.register_keras_serializable(package="zoo")
class MaskedCrossEntropy(_SegmentationLoss):
    """Sparse categorical cross-entropy over valid pixels, weighted per class.

    Args:
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        ignore_index: Mask value that is not scored. Defaults to 255.
        class_weights: Optional weight per class; the loss is the weighted mean over valid pixels.
    """

    def __init__(self, from_logits=False, ignore_index=255, class_weights=None, name="masked_crossentropy", **kw):
        super().__init__(from_logits=from_logits, ignore_index=ignore_index, class_weights=class_weights,
                         name=name, **kw)

    def call(self, y_true, y_pred):
        onehot, _, log_probs, _, weights = self._prepare(y_true, y_pred)
        return _cross_entropy(onehot, log_probs, weights)


@keras.saving.register_keras_serializable(package="zoo")
class DiceLoss(_SegmentationLoss):
    """Soft Dice loss (Milletari et al. 2016): `1 - weighted mean over classes of 2|P*Y| / (|P| + |Y|)`.

    Args:
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        ignore_index: Mask value that is not scored. Defaults to 255.
        class_weights: Optional weight per class in the mean over classes.
        smooth: Added to numerator and denominator; a class absent from both truth and prediction scores 1.
    """

    def __init__(self, from_logits=False, ignore_index=255, class_weights=None, smooth=1.0, name="dice", **kw):
        super().__init__(from_logits=from_logits, ignore_index=ignore_index, class_weights=class_weights,
                         name=name, **kw)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        onehot, probs, _, valid, weights = self._prepare(y_true, y_pred)
        return _dice(onehot, probs, valid, weights, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="zoo")
class DiceCrossEntropy(_SegmentationLoss):
    """`ce_weight * MaskedCrossEntropy + dice_weight * DiceLoss`, sharing one pass over the batch."""

    def __init__(self, from_logits=False, ignore_index=255, class_weights=None, smooth=1.0, ce_weight=1.0,
                 dice_weight=1.0, name="dice_crossentropy", **kw):
        super().__init__(from_logits=from_logits, ignore_index=ignore_index, class_weights=class_weights,
                         name=name, **kw)
        self.smooth, self.ce_weight, self.dice_weight = float(smooth), float(ce_weight), float(dice_weight)

    def call(self, y_true, y_pred):
        onehot, probs, log_probs, valid, weights = self._prepare(y_true, y_pred)
        return (self.ce_weight * _cross_entropy(onehot, log_probs, weights)
                + self.dice_weight * _dice(onehot, probs, valid, weights, self.smooth))

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "ce_weight": self.ce_weight,
                "dice_weight": self.dice_weight}


LOSSES = {"crossentropy": MaskedCrossEntropy, "dice": DiceLoss, "dice_ce": DiceCrossEntropy}


def get_loss(name="dice_ce", **kwargs):
    """A segmentation loss by name: one of `LOSSES` ("crossentropy", "dice", "dice_ce")."""
    if name not in LOSSES:
        raise ValueError(f"Unknown segmentation loss {name!r}; allowed: {', '.join(LOSSES)}.")
    return LOSSES[name](**kwargs)


def class_frequencies(masks, num_classes, ignore_index=255):
    """Pixel count per class over an iterable of masks (numpy arrays or tensors); ignored ids are skipped."""
    counts = np.zeros(num_classes, np.int64)
    for mask in masks:
        m = np.asarray(mask).reshape(-1).astype(np.int64)
        m = m[(m >= 0) & (m < num_classes) & (m != ignore_index)]
        counts += np.bincount(m, minlength=num_classes)
    return counts


def class_weights(counts, method="median_frequency"):
    """Per-class loss weights from pixel counts.

    Args:
        counts: Pixel count per class.
        method: `"median_frequency"` (Eigen & Fergus 2015: median(freq) / freq) or `"inverse_frequency"`
            (total / (classes * count)). Classes with no pixels get weight 0.

    Returns:
        A list of floats, one per class.
    """
    if method not in WEIGHTING:
        raise ValueError(f"Unknown class weighting {method!r}; allowed: {', '.join(WEIGHTING)}.")
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("No labelled pixels: cannot compute class weights.")
    freq = counts / counts.sum()
    weights = np.zeros_like(freq)
    if method == "median_frequency":
        weights[present] = np.median(freq[present]) / freq[present]
    else:
        weights[present] = 1.0 / (present.sum() * freq[present])
    return [float(w) for w in weights]
