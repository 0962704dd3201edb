"""Precise BatchNorm: population statistics recomputed over training batches after training.

A BatchNormalization layer normalises with an exponential moving average of batch statistics at inference.
A short run leaves that average wrong in two ways: it still holds the initial statistics (after 225 steps at
MobileNetV2's momentum 0.999, 80% of the average is the initial mean 0 / variance 1; such a model scored chance
at inference while training at 100%), and it lags weights that moved in the last steps (ResNet-20 after 96
steps at lr 0.1). Wu & Johnson 2021 ("Rethinking 'Batch' in BatchNorm") call the fix precise BatchNorm: with
the weights fixed, average the statistics of a few thousand training examples (pycls: 8,192; fvcore's
`update_bn_stats` and Detectron2 for PyTorch). Keras has no such step, hence this module.
"""

from __future__ import annotations

import keras
import numpy as np


def batchnorm_layers(model) -> list:
    """The trainable BatchNormalization layers of `model`, nested models included (frozen ones keep theirs)."""
    found, stack = [], list(model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable:
                found.append(layer)
        elif hasattr(layer, "layers"):
            stack.extend(layer.layers)
    return found


def recalibrate(model, dataset, examples: int) -> int:
    """Sets every trainable BatchNormalization layer's moving statistics to their average over `dataset`.

    The model runs in training mode (batch statistics, as during training) on batches of `dataset` until
    `examples` examples are seen; each layer's moving mean becomes the mean of its input and its moving
    variance the variance of its input over those examples (per channel). Weights are not changed.

    Args:
        model: A Keras model.
        dataset: Batches as `fit` takes them (`x`, or `(x, y[, sample_weight])`).
        examples: How many examples to average over (at least one batch).

    Returns:
        The number of examples used (0 when the model has no trainable BatchNormalization layer).
    """
    layers = batchnorm_layers(model)
    if not layers or examples < 1:
        return 0
    import tensorflow as tf

    momenta = [layer.momentum for layer in layers]
    before = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    sums = [[0.0, 0.0] for _ in layers]
    seen, done = 0, False
    try:
        for layer in layers:  # each training-mode call then leaves the batch's own statistics
            layer.momentum = 0.0
        forward = tf.function(lambda x: model(x, training=True))
        for batch in dataset:
            x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            forward(x)
            n = int(keras.ops.shape(keras.tree.flatten(x)[0])[0])
            for total, layer in zip(sums, layers):
                mean = np.asarray(layer.moving_mean, np.float64)
                total[0] = total[0] + n * mean
                total[1] = total[1] + n * (np.asarray(layer.moving_variance, np.float64) + mean**2)
            seen += n
            if seen >= examples:
                break
        done = True
    finally:
        for layer, momentum, (mean, variance) in zip(layers, momenta, before):
            layer.momentum = momentum
            if not done or not seen:  # an interrupted pass leaves the statistics as they were
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
    for (s1, s2), layer in zip(sums, layers) if seen else ():
        mean = s1 / seen
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign(np.maximum(s2 / seen - mean**2, 0.0).astype("float32"))
    return seen
