"""Precise BatchNorm: population statistics recomputed over training batches after training.

A BatchNormalization layer normalises with an exponential moving average of batch statistics at inference.
A short run leaves that average wrong in two ways: it still holds the initial statistics (after 225 steps at
MobileNetV2's momentum 0.999, 80% of the average is the initial mean 0 / variance 1; such a model scored chance
at inference while training at 100%), and it lags weights that moved in the last steps (ResNet-20 after 96
steps at lr 0.1). Wu & Johnson 2021 ("Rethinking 'Batch' in BatchNorm") call the fix precise BatchNorm: with
the weights fixed, average the statistics of a few thousand training examples (pycls: 8,192; the zoo's:
`Recipe.precise_bn`; fvcore's `update_bn_stats` and Detectron2 for PyTorch). Keras has no such step, hence this
module.
"""

from __future__ import annotations

import keras
import numpy as np

# Keras' moving averages already are the population statistics when (a) the initial statistics' share of the
# average, momentum ** steps, is negligible and (b) the rate had decayed, so the weights barely moved over the
# last ~1 / (1 - momentum) steps the average spans. On real digits and `shapes` such runs scored the same with
# and without the pass (BENCHMARKS.md, issue 24); skipping it saves a trace and a training-mode pass.
INITIAL_SHARE = 1e-3
DECAYED_RATE = 0.1  # the final rate over the peak rate


def staleness(model, *, steps: int, final_lr: float, peak_lr: float) -> str | None:
    """Why `model`'s moving averages may be stale after `steps` optimizer steps, or None when they are not.

    Stale when `momentum ** steps` of the initial statistics remains above `INITIAL_SHARE` (e.g. MobileNetV2's
    0.999 needs ~6,900 steps, the CIFAR ResNets' 0.9 ~66) or the rate ended above `DECAYED_RATE` of its peak.
    """
    momenta = [layer.momentum for layer in batchnorm_layers(model)]
    if not momenta:
        return None
    momentum = max(momenta)
    share = momentum ** max(int(steps), 0)
    if share > INITIAL_SHARE:
        return f"{steps} steps at momentum {momentum:g} leave {share:.1%} of the initial statistics"
    if final_lr > DECAYED_RATE * peak_lr:
        return f"the learning rate ended at {final_lr:.3g}, {final_lr / peak_lr:.0%} of its peak {peak_lr:.3g}"
    return None


def batchnorm_layers(model) -> list:
    """The trainable BatchNormalization layers of `model`, nested ones included (frozen ones keep theirs)."""
    return [layer for layer in model._flatten_layers(include_self=False)  # what zoo.export walks too
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


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
    momenta = [layer.momentum for layer in layers]
    before = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    for layer in layers:  # each training-mode call then leaves the batch's own statistics
        layer.momentum = 0.0
    try:
        seen, sums = _batch_statistics(model, layers, dataset, examples)
    except BaseException:  # an interrupted pass leaves the statistics as they were
        for layer, (mean, variance) in zip(layers, before):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for (s1, s2), layer in zip(sums, layers) if seen else ():  # an empty dataset changed nothing
        mean = s1 / seen
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign(np.maximum(s2 / seen - mean**2, 0.0).astype("float32"))
    return seen


def _batch_statistics(model, layers, dataset, examples):
    """`(examples seen, per layer [sum of n * mean, sum of n * (variance + mean^2)])` over `dataset`'s batches."""
    import tensorflow as tf

    @tf.function(autograph=False)  # plain graph code; AutoGraph's conversion of it cost ~0.2 s
    def forward(x):  # the batch's statistics come back with the call: no variable reads per layer and batch
        model(x, training=True)
        return [(tf.identity(layer.moving_mean), tf.identity(layer.moving_variance)) for layer in layers]

    sums, seen = [[0.0, 0.0] for _ in layers], 0
    for batch in dataset:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        stats = forward(x)
        n = int(keras.ops.shape(keras.tree.flatten(x)[0])[0])
        for total, (mean, variance) in zip(sums, stats):
            mean = np.asarray(mean, np.float64)
            total[0] = total[0] + n * mean
            total[1] = total[1] + n * (np.asarray(variance, np.float64) + mean**2)
        seen += n
        if seen >= examples:
            break
    return seen, sums
