"""Out-of-sample class probabilities for every training example by K-fold cross-training.

Each fold's model is trained with the run's own recipe (model, builder arguments, optimiser, schedule,
augmentation, normalisation, seed) on the other K-1 folds and predicts the fold it never saw.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

import numpy as np

from zoo.analysis import data as data_lib
from zoo.analysis import mistakes


def training_arrays(rd):
    """The run's training split as raw arrays `(x, y)` at the model's input size (no normalisation)."""
    overrides = {"normalization": "none", "batch_size": 256}
    if rd.task == "sequence":
        overrides["task"] = "classification"  # images, reshaped to rows by the fold's own pipeline
    xs, ys = [], []
    for x, y in data_lib.dataset(rd, "train", **overrides):
        xs.append(np.asarray(x))
        ys.append(np.asarray(y).reshape(-1))
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.int32)
    scale = float((rd.spec.normalization or {}).get("scale", 1.0))
    if abs(scale - 1 / 255) < 1e-9 and x.min() >= 0 and x.max() <= 255 and np.all(x == np.round(x)):
        x = x.astype(np.uint8)  # 8-bit images stay 8-bit, so each fold scales them as the run did
    return x, y


def fold_ids(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """A seeded assignment of `n` examples to `folds` folds of (nearly) equal size."""
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= max(n, 2):
        raise ValueError(f"--folds must be an integer in [2, {max(n, 2)}]. Received: {folds!r}")
    ids = np.empty(n, np.int64)
    ids[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return ids


def _normalize(x, norm, input_shape):
    x = x.astype(np.float32) * float(norm.get("scale", 1.0))
    x = (x - np.asarray(norm.get("mean", 0.0), np.float32)) / np.asarray(norm.get("std", 1.0), np.float32)
    return x.reshape((-1, *input_shape))


def out_of_sample(rd, folds: int = 4, epochs: int | None = None, log=print):
    """`(labels [n], probs [n, K], x)` for the run's training split; probs[i] from a model that never saw i.

    Args:
        rd: The opened run (`zoo.analysis.data.open_run`).
        folds: K. Each example is predicted by the model trained on the other K-1 folds.
        epochs: Epochs per fold model. Defaults to the run's own.
        log: Where the one line per fold goes.
    """
    from zoo.training import loop

    if rd.run.model_name is None:
        raise ValueError(f"{rd.run.path!r} records no model name; K-fold cross-training needs a registered model.")
    x, y = training_arrays(rd)
    ids = fold_ids(len(y), folds, int(rd.run.config.get("seed", 0)))
    recipe = {**rd.recipe.to_dict(), "val_split": 0.0, "train_dev": 0.0, "early_stopping": None}
    if epochs is not None:
        recipe["epochs"] = int(epochs)
    probs = None
    for f in range(folds):
        held = ids == f
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            run = loop.train(rd.run.model_name, (x[~held], y[~held]), out=os.path.join(tmp, "fold"),
                             model_kwargs=dict(rd.run.config.get("model_kwargs") or {}),
                             seed=int(rd.run.config.get("seed", 0)) + f, precision=rd.run.config.get("precision", "auto"),
                             xla=rd.run.config.get("xla", "auto"), verbose=0, **recipe)
            inputs = _normalize(x[held], run.config["data"]["normalization"], run.model.input_shape[1:])
            p = np.concatenate([mistakes.probabilities(run.model, run.model(inputs[i:i + 256], training=False))
                                for i in range(0, len(inputs), 256)])
        probs = np.zeros((len(y), p.shape[1])) if probs is None else probs
        probs[held] = p
        log(f"zoo: analyze: fold {f + 1}/{folds} trained on {int((~held).sum())}, predicted {int(held.sum())}")
    return y.astype(np.int64), probs, x
