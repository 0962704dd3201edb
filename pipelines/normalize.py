"""Input normalisation as data: `(x * scale - mean) / std`, recorded in the DataSpec.

"scale" maps pixels to [0, 1]; "standardize" also subtracts the per-channel mean
and divides by the per-channel std of the training split (measured on at most
`MAX_STATS_EXAMPLES` examples); "none" passes values through unchanged.
Export bakes the same formula into the serving graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

KINDS = ("scale", "standardize", "none")
MAX_STATS_EXAMPLES = 2000


def check_kind(kind) -> str:
    if isinstance(kind, dict):
        kind = kind.get("kind")
    if kind not in KINDS:
        raise ValueError(f"Unknown normalization {kind!r}; allowed: {', '.join(KINDS)}.")
    return kind


def make(kind: str, *, scale: float, channels: int, train_examples=None) -> dict:
    """Builds the normalisation record.

    Args:
        kind: One of `KINDS`.
        scale: 1/255 for 8-bit images, 1.0 for float inputs.
        channels: Size of the last axis of the inputs.
        train_examples: Iterable of raw training inputs (numpy arrays with channels last: examples or
            batches of them), needed for "standardize"; at most `MAX_STATS_EXAMPLES` items are read.
    """
    kind = check_kind(kind)
    if kind == "none":
        return {"kind": "none", "scale": 1.0, "mean": [0.0] * channels, "std": [1.0] * channels}
    if kind == "scale":
        return {"kind": "scale", "scale": scale, "mean": [0.0] * channels, "std": [1.0] * channels}
    count, total, total_sq = 0, np.zeros(channels), np.zeros(channels)
    for i, x in enumerate(train_examples):
        if i >= MAX_STATS_EXAMPLES:
            break
        x = np.asarray(x, np.float64).reshape(-1, channels) * scale
        count += x.shape[0]
        total += x.sum(0)
        total_sq += (x**2).sum(0)
    if count == 0:
        raise ValueError("Cannot standardize: the training split is empty.")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return {"kind": "standardize", "scale": scale, "mean": mean.round(6).tolist(), "std": std.round(6).tolist()}


def apply(x, norm: dict):
    """Applies a normalisation record to a float tensor with channels last."""
    x = tf.cast(x, tf.float32)
    if norm["kind"] == "none":
        return x
    x = x * norm["scale"]
    if norm["kind"] == "standardize":
        x = (x - tf.constant(norm["mean"], tf.float32)) / tf.constant(norm["std"], tf.float32)
    return x
