"""In-memory sources: an `(x, y)` array pair, or a `.npz` in the keras.datasets layout."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from pipelines import splits as splits_lib
from pipelines.sources.base import Source, register_reader

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 100_000  # a larger label id is almost surely a corrupt label, not a class
IGNORE = 255  # segmentation masks: the ignore value


def _check_pair(x, y, where):
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{where}: images and labels have different lengths: {len(x)} images, {len(y)} labels.")
    if len(x) == 0:
        raise ValueError(f"{where}: no examples (empty arrays).")
    if x.ndim == 3 and x.dtype == np.uint8:
        x = x[..., None]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return x, y


def _task_of(x, y, task):
    if y.ndim == 3 and y.shape[1:] == x.shape[1:3]:
        return "segmentation"
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"Labels must be integer class ids of shape [N] (or masks [N, H, W]); received shape {y.shape}, dtype {y.dtype}."
        )
    return task or "classification"


def _first_bad(y, bad):
    """`(index, value)` of the first True in `bad` (an index tuple for masks)."""
    at = tuple(int(i) for i in np.argwhere(bad)[0])
    return (at[0] if len(at) == 1 else at), y[at].item()


def _check_ids(y, task, where):
    """Class ids must be 0..N-1 (masks: or 255 = ignore).

    Raises:
        ValueError: one line naming the array, the first bad index and its value.
    """
    if not np.issubdtype(y.dtype, np.integer):
        return  # _task_of refuses non-integer labels
    bad = (y < 0) | (y > MAX_CLASSES)
    if task == "segmentation":
        bad &= y != IGNORE
    if bad.any():
        at, value = _first_bad(y, bad)
        ignore = ", or 255 = ignore" if task == "segmentation" else ""
        raise ValueError(f"{where}: label {value} at index {at} is not a class id; class ids must be "
                         f"0..N-1 (N <= {MAX_CLASSES}){ignore} ({int(bad.sum())} such label(s)).")


def _check_range(y, top, where):
    """Held-out labels must lie within the training labels' range 0..top (classification)."""
    bad = y > top
    if bad.any():
        at, value = _first_bad(y, bad)
        raise ValueError(f"{where}: label {value} at index {at} is out of range: the training labels are "
                         f"0..{top} ({int(bad.sum())} such label(s)).")


def _source(kind, name, parts: dict, task, cache_key):
    x0, y0 = parts["train"]
    task = _task_of(x0, y0, task)
    all_y = np.concatenate([y.reshape(-1) for _, y in parts.values()])
    labels = all_y[all_y != 255] if task == "segmentation" else all_y
    num_classes = int(labels.max()) + 1 if labels.size else 0
    target = "mask" if task == "segmentation" else "label"

    def read(split):
        x, y = parts[splits_lib.canonical(split)]
        return tf.data.Dataset.from_tensor_slices({"image": x, target: y.astype(np.int32)})

    read.labels = lambda split: parts[splits_lib.canonical(split)][1]  # in read order
    return Source(
        kind=kind,
        name=name,
        task=task,
        class_names=[str(i) for i in range(num_classes)],
        splits={k: int(len(v[0])) for k, v in parts.items()},
        read=read,
        image_shape=tuple(int(d) for d in x0.shape[1:]),
        scale=1.0 / 255.0 if x0.dtype == np.uint8 else 1.0,
        cache_key=cache_key,
    )


def _carve(x, y, val_split, holdouts):
    idx = splits_lib.split_indices(len(x), val_split, holdouts)
    return {k: (x[i], y[i]) for k, i in idx.items()}


def open_arrays(source, *, val_split=0.1, task=None, **_):
    x, y = _check_pair(source[0], source[1], "(x, y) arrays")
    _check_ids(y, _task_of(x, y, task), "(x, y) arrays: y")
    return _source("arrays", "<arrays>", _carve(x, y, val_split, ("val", "test")), task, None)


def open_npz(path, *, val_split=0.1, task=None, **_):
    with np.load(path) as data:
        missing = [k for k in NPZ_KEYS if k not in data.files]
        if missing:
            raise ValueError(
                f"{path}: .npz is missing key(s) {missing}; the keras.datasets layout needs "
                f"{list(NPZ_KEYS)} (found {sorted(data.files)})."
            )
        arrays = {k: data[k] for k in data.files}
    x, y = _check_pair(arrays["x_train"], arrays["y_train"], f"{path} (x_train, y_train)")
    test = _check_pair(arrays["x_test"], arrays["y_test"], f"{path} (x_test, y_test)")
    kind = _task_of(x, y, task)
    held_out = {"y_test": test}
    if "x_val" in arrays and "y_val" in arrays:
        parts = {"train": (x, y), "val": _check_pair(arrays["x_val"], arrays["y_val"], f"{path} (x_val, y_val)")}
        held_out["y_val"] = parts["val"]
    else:
        parts = _carve(x, y, val_split, ("val",))
    parts["test"] = test
    stat = os.stat(path)
    _check_ids(y, kind, f"{path} (y_train)")
    for key, (_, held) in held_out.items():
        _check_ids(held, kind, f"{path} ({key})")
        if kind != "segmentation" and held.size and y.size:
            _check_range(held, int(y.max()), f"{path} ({key})")
    return _source("npz", str(path), parts, task, ("npz", os.path.abspath(path), stat.st_mtime, val_split))


def _is_pair(s):
    return isinstance(s, (tuple, list)) and len(s) == 2 and all(hasattr(a, "__len__") and not isinstance(a, str) for a in s)


def _is_npz(s):
    return isinstance(s, (str, os.PathLike)) and str(s).endswith(".npz") and not str(s).startswith("tfds:")


def _open_npz_checked(path, **kw):
    if not os.path.isfile(path):
        raise ValueError(f"No such .npz file: {str(path)!r}.")
    return open_npz(path, **kw)


register_reader("arrays", _is_pair, open_arrays, describe="an (x, y) array pair")
register_reader("npz", _is_npz, _open_npz_checked, describe="a .npz with x_train, y_train, x_test, y_test")
