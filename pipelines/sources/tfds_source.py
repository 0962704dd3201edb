"""TFDS datasets: `"tfds:NAME[/CONFIG][:VERSION]"` and the built-in `"shapes/<config>"`.

Canonical splits map to the dataset's own: "val" is its "validation" split, or the
last examples of "train" (TFDS shuffles at preparation, so they follow the same
distribution); "test" likewise. Any other split string (e.g. `"train[:98%]"`) is
passed to TFDS unchanged.
"""

from __future__ import annotations

import difflib
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import splits as splits_lib
from pipelines.sources.base import Source, register_reader

_VAL_NAMES = ("validation", "val", "valid", "dev")


def data_dir(explicit=None):
    """`explicit`, else $TFDS_DATA_DIR at call time, else TFDS' default."""
    return explicit or os.environ.get("TFDS_DATA_DIR") or None


def _builder(name, data_dir_):
    try:
        return tfds.builder(name, data_dir=data_dir_)
    except tfds.core.registered.DatasetNotFoundError:
        base = name.split("/")[0].split(":")[0]
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(base, known, n=1)
        hint = f" Did you mean 'tfds:{close[0]}'?" if close else ""
        raise ValueError(f"Unknown TFDS dataset {name!r}; see tfds.list_builders() for the catalogue.{hint}") from None


def _task_and_keys(info):
    feats = info.features
    meta = dict(info.metadata or {}) if info.metadata is not None else {}
    if "image" not in feats:
        raise ValueError(f"TFDS dataset {info.full_name!r} has no 'image' feature; features: {sorted(feats.keys())}.")
    if "segmentation_mask" in feats:
        return "segmentation", meta
    if "objects" in feats and "bbox" in feats["objects"].feature:
        return "detection", meta
    if "label" in feats:
        return meta.get("task", "classification"), meta
    raise ValueError(f"TFDS dataset {info.full_name!r}: no 'label', 'objects' or 'segmentation_mask' feature to train on.")


def _class_names(info, task, meta):
    if "class_names" in meta:
        return list(meta["class_names"])
    feat = info.features["objects"]["label"] if task == "detection" else (info.features["label"] if "label" in info.features else None)
    if isinstance(feat, tfds.features.ClassLabel):
        return list(feat.names)
    return []


def _convert(task):
    def fn(ex):
        image = ex["image"]
        if task == "detection":
            return {"image": image, "boxes": tf.cast(ex["objects"]["bbox"], tf.float32),
                    "classes": tf.cast(ex["objects"]["label"], tf.int32)}
        if task == "segmentation":
            return {"image": image, "mask": ex["segmentation_mask"][..., 0]}
        return {"image": image, "label": tf.cast(ex["label"], tf.int32)}
    return fn


def _files(info, mapping):
    """Record files each canonical split reads (FILE sharding across workers needs one per worker)."""
    try:
        return {s: len({f.filename for f in info.splits[real].file_instructions}) for s, real in mapping.items()}
    except (KeyError, ValueError, AssertionError):  # split sizes unknown (e.g. tfds.testing.mock_data)
        return {}


def open_tfds(source, *, val_split=0.1, data_dir=None, task=None, **_):
    name = source[len("tfds:"):] if source.startswith("tfds:") else source
    if name == "shapes":
        name = "shapes/classification"
    if name.startswith("shapes"):
        from pipelines.shapes import prepare

        builder = prepare(name.split("/", 1)[1] if "/" in name else "classification", data_dir=data_dir)
    else:
        builder = _builder(name, globals()["data_dir"](data_dir))
        builder.download_and_prepare()
    info = builder.info
    source_task, meta = _task_and_keys(info)
    available = {k: v.num_examples for k, v in info.splits.items()} or {"train": None, "test": None}
    val_name = next((v for v in _VAL_NAMES if v in available), None)
    carve = [s for s, present in (("val", val_name), ("test", "test" in available)) if not present]
    n_train = available.get("train")
    mapping, counts = {}, {}
    if carve and n_train:
        k = splits_lib.holdout_count(n_train, val_split)
        ranges = {s: (n_train - k * (i + 1), n_train - k * i) for i, s in enumerate(reversed(carve))}
        mapping["train"] = f"train[:{n_train - k * len(carve)}]"
        counts["train"] = n_train - k * len(carve)
        for s, (a, b) in ranges.items():
            mapping[s], counts[s] = f"train[{a}:{b}]", k
    elif carve:  # split sizes unknown (e.g. under tfds.testing.mock_data): cut by percent
        pct = max(1, int(round(100 * val_split)))
        mapping["train"] = f"train[:{100 - pct * len(carve)}%]"
        for i, s in enumerate(reversed(carve)):
            mapping[s] = f"train[{100 - pct * (i + 1)}%:{100 - pct * i}%]"
    for s, real in (("train", "train"), ("val", val_name), ("test", "test")):
        if s not in mapping and real:
            mapping[s], counts[s] = real, available.get(real)
    convert = _convert(source_task)

    def read(split):
        real = mapping[splits_lib.canonical(split)] if split in ("train", "val", "test") or split in splits_lib._ALIASES else split
        return builder.as_dataset(split=real, shuffle_files=False).map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    shape = tuple(info.features["image"].shape)
    task = task or source_task
    return Source(
        kind="tfds",
        name=source,
        task=task,
        class_names=_class_names(info, source_task, meta),
        splits={k: v for k, v in counts.items() if v is not None},
        read=read,
        image_shape=shape,
        max_boxes=meta.get("max_boxes"),
        cache_key=("tfds", builder.info.full_name, str(builder.data_dir), val_split),
        extra={"tfds_name": info.full_name, "tfds_splits": mapping, "files": _files(info, mapping)},
    )


def _is_tfds(s):
    return isinstance(s, str) and (s.startswith("tfds:") or s == "shapes" or s.startswith("shapes/"))


register_reader("tfds", _is_tfds, open_tfds, priority=10,
                describe="a TFDS name 'tfds:NAME' or the built-in 'shapes/<config>'")
