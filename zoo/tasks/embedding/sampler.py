"""tf.data samplers for metric learning: P x K identity-balanced batches and a split of identities.

`pk_batches` streams any unbatched `(image, label)` dataset: it groups examples by label into runs of K
(`group_by_window`) and batches P runs, so each batch holds P identities x K images with every identity
having at least one positive and many negatives for the triplet loss (Hermans et al. 2017). Memory stays
bounded by (number of identities) x K examples, whatever the size of the source.
"""

from __future__ import annotations

import numpy as np


def _check_positive_int(value, arg):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{arg}` must be an integer >= 1. Received: {arg}={value!r}")
    return int(value)


def pk_batches(dataset, p, k, *, shuffle_buffer=2048, seed=None, drop_remainder=True):
    """Identity-balanced batches of P identities x K images from an unbatched labelled dataset.

    Args:
        dataset: Unbatched `tf.data.Dataset` of `(image, label)` with a scalar integer label.
        p: Identities per batch.
        k: Images per identity. Identities with fewer than K images left in a pass fill no group
            (with `drop_remainder=True`).
        shuffle_buffer: Examples shuffled before grouping, and groups shuffled before batching
            (0: keep the source order).
        seed: Shuffle seed (same seed, same batches).
        drop_remainder: True (training): every batch is exactly P x K, laid out as P runs of K
            equal labels, and examples that do not complete a group are left for the next pass.
            False (evaluation): every example appears exactly once; the last groups and batch may
            be short.

    Returns:
        A dataset of `(images [P*K, ...], labels [P*K])` batches; one pass over the source per
        iteration (call `.repeat()` for more).

    Note:
        Groups are shuffled, not drawn without replacement per batch, so an identity with many images
        can fill two groups of one batch; the losses treat that as more positives.
    """
    import tensorflow as tf

    p = _check_positive_int(p, "p")
    k = _check_positive_int(k, "k")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and spec[1].shape.rank == 0):
        raise ValueError(
            "`pk_batches` needs an unbatched dataset of (image, label) with scalar labels "
            f"(e.g. pipelines.build(..., batch_size=None)). Received element_spec={spec!r}"
        )
    if not spec[1].dtype.is_integer:
        raise ValueError(f"Identity labels must be integers. Received label dtype {spec[1].dtype.name}.")
    ds = dataset
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.group_by_window(
        key_func=lambda x, y: tf.cast(y, tf.int64),
        reduce_func=lambda key, window: window.batch(k),
        window_size=k,
    )
    if drop_remainder:
        ds = ds.filter(lambda x, y: tf.shape(y)[0] == k)
    if shuffle_buffer:
        ds = ds.shuffle(max(shuffle_buffer // k, p), seed=None if seed is None else seed + 1)
    ds = ds.unbatch().batch(p * k, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def split_identities(num_identities, *, fractions=(0.8, 0.1, 0.1), seed=0):
    """Assigns identities (class ids) to train/val/test, not images: the class split for one-shot learning.

    Args:
        num_identities: Number of classes in the source.
        fractions: Fractions of identities for ("train", "val", "test"); each split gets at least
            two identities when fractions are > 0.
        seed: Permutation seed.

    Returns:
        `{"train": ids, "val": ids, "test": ids}`, sorted int arrays, disjoint, covering every id.
    """
    n = _check_positive_int(num_identities, "num_identities")
    f = np.asarray(fractions, dtype="float64")
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(
            f"`fractions` must be three non-negative numbers (train, val, test) summing to 1. "
            f"Received: fractions={fractions!r}"
        )
    wanted = [max(2, int(round(x * n))) if x > 0 else 0 for x in f[1:]]
    if n - sum(wanted) < 2:
        raise ValueError(
            f"{n} identities are too few to split {tuple(fractions)} into train/val/test with at least "
            "two identities each; add classes or change `fractions`."
        )
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = wanted
    parts = {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}
    return {name: np.sort(ids).astype("int64") for name, ids in parts.items()}


def filter_identities(dataset, identities):
    """Keeps the examples of `dataset` (`(image, label)`, unbatched) whose label is in `identities`."""
    import tensorflow as tf

    ids = np.asarray(identities, dtype="int64")
    size = int(ids.max()) + 1 if ids.size else 1
    member = np.zeros(size, dtype=bool)
    member[ids] = True
    table = tf.constant(member)

    def keep(x, y):
        y = tf.cast(y, tf.int64)
        inside = tf.logical_and(y >= 0, y < size)
        return tf.logical_and(inside, tf.gather(table, tf.clip_by_value(y, 0, size - 1)))

    return dataset.filter(keep)
