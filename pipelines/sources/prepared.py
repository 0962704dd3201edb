"""Folders written by `zoo prepare` (`pipelines.prepare`): a TFDS dataset read back as its source was.

`--data OUT` (the folder given to `zoo prepare`), `OUT/<name>` or `OUT/<name>/<version>` are recognised
by their `dataset_info.json`. The splits, class names, task and image shape are the prepared source's;
images are decoded as the image-file readers decode them (`images.decode`), so the pixels match.
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf

from pipelines import splits as splits_lib
from pipelines.sources.base import Source, register_reader

INFO = "dataset_info.json"


def version_dir(path):
    """The folder holding `dataset_info.json` at `path` or one or two levels below it; None if none or several."""
    path = os.fspath(path)
    for pattern in (INFO, os.path.join("*", INFO), os.path.join("*", "*", INFO)):
        found = glob.glob(os.path.join(glob.escape(path), pattern))
        if found:
            return os.path.dirname(found[0]) if len(found) == 1 else None
    return None


def _is_prepared(s):
    return isinstance(s, (str, os.PathLike)) and os.path.isdir(s) and version_dir(s) is not None


def _decode(data, channels):
    """`images.decode` from the stored bytes: the same pixels as the file read by the folder readers."""
    img = tf.io.decode_image(data, channels=3, expand_animations=False)
    if channels == 1:
        img = tf.image.rgb_to_grayscale(img)
    img.set_shape([None, None, channels])
    return img


def _convert(task, channels):
    def fn(ex):
        out = {"image": _decode(ex["image"], channels)}
        if task == "detection":
            objects = ex["objects"]
            out.update(boxes=tf.cast(objects["bbox"], tf.float32), classes=tf.cast(objects["label"], tf.int32))
            if "difficult" in objects:
                out["difficult"] = objects["difficult"]
        elif task == "segmentation":
            out["mask"] = ex["segmentation_mask"][..., 0]
        else:
            out["label"] = tf.cast(ex["label"], tf.int32)
        return out
    return fn


def open_prepared(root, *, task=None, **_):
    import tensorflow_datasets as tfds

    where = version_dir(root)
    builder = tfds.builder_from_directory(where)
    info = builder.info
    meta = dict(info.metadata or {})
    if "task" not in meta or "splits" not in meta:
        raise ValueError(f"{where!r} is a TFDS dataset without zoo prepare's metadata.json; "
                         "read TFDS datasets with 'tfds:NAME'.")
    if task not in (None, meta["task"]):
        raise ValueError(f"{os.fspath(root)!r} holds {meta['task']} data (zoo prepare); it cannot feed task {task!r}.")
    mapping = dict(meta["splits"])  # canonical -> TFDS split
    shape = tuple(meta["image_shape"])
    convert = _convert(meta["task"], shape[-1])

    files = _record_files(info, mapping, where)
    skip = {"image": tfds.decode.SkipDecoding()}

    def read(split):
        real = mapping.get(splits_lib.canonical(split), split)
        if real in files:  # TFRecord shards in order: tf.data's FILE sharding gives each worker its own
            ds = tf.data.TFRecordDataset(files[real]).map(
                lambda rec: info.features.deserialize_example(rec, decoders=skip), num_parallel_calls=tf.data.AUTOTUNE)
            ds = ds.apply(tf.data.experimental.assert_cardinality(info.splits[real].num_examples))  # Keras' steps
        else:  # a slice ("train[:50%]"): TFDS' reader
            ds = builder.as_dataset(split=real, shuffle_files=False, decoders=skip)
        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    return Source(
        kind="prepared",
        name=os.fspath(root),
        task=meta["task"],
        class_names=list(meta["class_names"]),
        splits={s: info.splits[real].num_examples for s, real in mapping.items()},
        read=read,
        image_shape=shape,
        max_boxes=meta.get("max_boxes"),
        cache_key=("prepared", os.path.abspath(where), os.stat(os.path.join(where, INFO)).st_mtime_ns),
        extra={"common_size": meta.get("common_size"), "prepared_from": meta.get("source"),
               "files": {s: len(files[real]) for s, real in mapping.items() if real in files}},
    )


def _record_files(info, mapping, where):
    """`{tfds_split: [shard path, ...]}` in example order when the shards are TFRecord files (else empty)."""
    import tensorflow_datasets as tfds

    if info.file_format != tfds.core.FileFormat.TFRECORD:
        return {}
    return {real: [os.path.join(where, f) for f in info.splits[real].filenames] for real in mapping.values()}


register_reader("prepared", _is_prepared, open_prepared, priority=8,
                describe="a folder written by zoo prepare (TFDS shards with dataset_info.json)")
