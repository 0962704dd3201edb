"""A learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks"; fastai's lr_find).

Train for a few dozen steps while the rate grows exponentially from `start` to `end`, record the smoothed
loss, stop once it diverges, and suggest a rate a decade below a landmark of the curve:
- "minimum" (fastai's `lr_min / 10`), for an untrained part such as a new head: the loss minimum sits at the
  edge of divergence, so a tenth of it still descends quickly but stays stable;
- "edge", for a model whose loss is already low (phase 2, after the head has converged): the minimum is then
  the first step and says nothing; the rate at which the smoothed loss first doubles its starting value marks
  where training starts to undo what was learnt, and a tenth of it is safe.
The model's weights (moving statistics included) are restored afterwards.

    >>> found = lr_find(model, train_ds, loss=keras.losses.SparseCategoricalCrossentropy())
    >>> found.suggestion, found.lrs[:3], found.losses[:3]
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np


@dataclasses.dataclass
class LRFind:
    """The result of `lr_find`.

    Attributes:
        lrs: The rate of each step.
        losses: The smoothed (bias-corrected exponential average) training loss after each step.
        suggestion: The suggested rate: the landmark rate divided by `LR_DIVISOR`.
        landmark: The rate at the smoothed loss minimum ("minimum") or where it first doubles ("edge").
        rule: "minimum" or "edge".
    """

    lrs: list
    losses: list
    suggestion: float
    landmark: float
    rule: str


LR_DIVISOR = 10.0


def _sweep(model, batches, optimizer, start, end, steps, beta, diverge):
    lrs, losses, avg, best = [], [], 0.0, math.inf
    for i, (x, y) in enumerate(batches):
        if i == steps:
            break
        lr = start * (end / start) ** (i / max(steps - 1, 1))
        optimizer.learning_rate.assign(lr)
        loss = float(np.asarray(model.train_on_batch(x, y)).reshape(-1)[0])
        if not math.isfinite(loss):
            break
        avg = beta * avg + (1 - beta) * loss
        smooth = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if i > steps // 10 and smooth > diverge * max(best, losses[0] / 2):
            break
    return lrs, losses


def _landmark(lrs, losses, rule):
    if rule == "minimum":
        return lrs[int(np.argmin(losses))]
    first = losses[0]
    return next((lr for lr, value in zip(lrs, losses) if value > 2 * first), lrs[-1])


def lr_find(model, dataset, *, loss, optimizer="adam", rule="minimum", start=1e-6, end=1.0, steps=100, beta=0.9,
            diverge=4.0):
    """Runs the range test on `model` and `dataset` (repeated as needed); returns an `LRFind`.

    Args:
        model: A Keras model; its trainable layers are the ones the test trains.
        dataset: A `tf.data.Dataset` of `(x, y)` training batches.
        loss: The training loss.
        optimizer: A Keras optimizer name (a fresh instance is used).
        rule: "minimum" (an untrained head) or "edge" (an already trained model). Defaults to "minimum".
        start: First rate. Defaults to `1e-6`.
        end: Last rate. Defaults to `1.0`.
        steps: Number of steps (fewer when the loss diverges). Defaults to `100`.
        beta: Smoothing of the loss. Defaults to `0.9` (a short test on a small dataset needs less
            smoothing than fastai's 0.98).
        diverge: Stop once the smoothed loss exceeds `diverge` times its minimum. Defaults to `4.0`.

    Raises:
        ValueError: Bad range or step count; or not one finite loss was recorded.
    """
    if rule not in ("minimum", "edge"):
        raise ValueError(f"`rule` must be 'minimum' or 'edge'. Received: rule={rule!r}")
    if not 0 < start < end or isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"lr_find needs 0 < start < end and steps >= 2. Received: {start=}, {end=}, {steps=}")
    weights = model.get_weights()
    opt = keras.optimizers.get(optimizer)
    model.compile(optimizer=opt, loss=loss, jit_compile=False)
    try:
        lrs, losses = _sweep(model, dataset.repeat(), opt, start, end, steps, beta, diverge)
    finally:
        model.set_weights(weights)
    if not losses:
        raise ValueError("lr_find recorded no finite loss; check the data and the model.")
    landmark = _landmark(lrs, losses, rule)
    return LRFind(lrs=lrs, losses=losses, suggestion=landmark / LR_DIVISOR, landmark=landmark, rule=rule)
