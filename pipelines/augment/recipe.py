"""Augmentations the training loop adds to the pipeline's: recipe aliases and batched pad-and-crop."""

from __future__ import annotations

# Recipe names -> the pipeline's names (`pipelines.augment.NAMES`).
ALIASES = {"random_resized_crop": "crop", "hflip": "flip"}
# Applied here, on batches after normalisation (zero padding = padding with the mean when standardised).
LOCAL = ("pad_crop",)


def split_names(augment) -> tuple[tuple, tuple]:
    """`(pipeline names, local names)` from a recipe's `augment`."""
    if isinstance(augment, str):
        augment = [a for a in augment.replace("+", ",").split(",") if a]
    pipeline, local = [], []
    for name in augment or ():
        name = ALIASES.get(name, name)
        (local if name in LOCAL else pipeline).append(name)
    return tuple(dict.fromkeys(pipeline)), tuple(dict.fromkeys(local))


def pad_crop(dataset, pad: int = 4, seed=None):
    """Zero-pads each image by `pad` pixels and crops a random window of the original size (He et al. 2016)."""
    import tensorflow as tf

    def fn(x, y):
        b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        oy = tf.random.uniform([b], 0, 2 * pad + 1, tf.int32, seed=seed)
        ox = tf.random.uniform([b], 0, 2 * pad + 1, tf.int32, seed=None if seed is None else seed + 1)
        rows = oy[:, None] + tf.range(h)[None]
        cols = ox[:, None] + tf.range(w)[None]
        out = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        return tf.ensure_shape(out, x.shape), y

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
