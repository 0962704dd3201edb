"""Augmentations as a recipe names them: aliases, strengths (`augment_args`) and batched pad-and-crop."""

from __future__ import annotations

import difflib

from pipelines.augment.policy import STRENGTHS, from_args

# Recipe names -> the pipeline's names (`pipelines.augment.NAMES`).
ALIASES = {"random_resized_crop": "crop", "hflip": "flip"}
# Applied here, on batches after normalisation (zero padding = padding with the mean when standardised).
LOCAL = ("pad_crop",)
# Strengths of the local transforms (the pipeline's are `Policy` fields) and their defaults.
LOCAL_ARGS = {"pad_pixels": 4}


def split_names(augment) -> tuple[tuple, tuple]:
    """`(pipeline names, local names)` from a recipe's `augment`."""
    if isinstance(augment, str):
        augment = [a for a in augment.replace("+", ",").split(",") if a]
    pipeline, local = [], []
    for name in augment or ():
        name = ALIASES.get(name, name)
        (local if name in LOCAL else pipeline).append(name)
    return tuple(dict.fromkeys(pipeline)), tuple(dict.fromkeys(local))


def from_recipe(recipe):
    """The recipe's augmentation with its strengths: `(pipeline Policy or (), {local name: kwargs})`.

    `recipe.augment_args` sets strengths by name (`Policy` fields such as `crop_scale`, `rotate`, `shift`,
    and `pad_pixels`); `extra["pad_pixels"]` is still read for older recipes.

    Raises:
        ValueError: An unknown augmentation or strength, or a strength out of its range (one line, naming it).
    """
    args = getattr(recipe, "augment_args", None) or {}
    if not isinstance(args, dict):
        raise ValueError(f"`augment_args` must be a dict, e.g. --set augment_args={{'rotate': 10}}. "
                         f"Received: augment_args={args!r}")
    allowed = STRENGTHS + tuple(LOCAL_ARGS)
    for key in args:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown augment_args key {key!r}; allowed: {', '.join(allowed)}.{hint}")
    names, local = split_names(getattr(recipe, "augment", ()))
    policy = from_args(names, {k: v for k, v in args.items() if k in STRENGTHS}) if names else ()
    pad = args.get("pad_pixels", (getattr(recipe, "extra", None) or {}).get("pad_pixels", LOCAL_ARGS["pad_pixels"]))
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"Augmentation strength pad_pixels={pad!r} must be an integer >= 0.")
    return policy, ({"pad_crop": {"pad": pad}} if "pad_crop" in local else {})


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
