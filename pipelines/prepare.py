"""`zoo prepare`: a labelled image source written once as a TFDS dataset (shards + dataset_info.json).

The source is opened with its own reader (`open_source`: the same files, corrupt ones skipped with the
same warnings, the same train/val/test split and class names), then a `tfds.core.GeneratorBasedBuilder`
made for it writes each split with TFDS' writer:

    OUT/<name>/1.0.0/dataset_info.json, features.json, metadata.json, <name>-train.tfrecord-00000-of-0000N, ...

Images are stored as their file's bytes (no re-encoding); masks as PNG. Examples keep the reader's order
(no shuffling at preparation), so the prepared source reads like the original. `pipelines.sources.prepared`
reads it back (`--data OUT`); `tfds.builder_from_directory(OUT/<name>/1.0.0)` does too.
The data is written into a temporary folder next to OUT and renamed to OUT at the end.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import tempfile

import numpy as np

VERSION = "1.0.0"
FORMATS = ("tfrecord",)  # ArrayRecord shards are written by TFDS 4.9 but its `as_dataset` cannot read them
TASKS = ("classification", "detection", "segmentation")
_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}  # TFDS' own split names
READ_AHEAD = 64  # image files read concurrently ahead of the writer


def check_out(out) -> str:
    """Refuses an `out` that exists and is not an empty folder (nothing the user has is overwritten)."""
    out = os.fspath(out)
    if os.path.exists(out) and not (os.path.isdir(out) and not os.listdir(out)):
        what = "a non-empty folder" if os.path.isdir(out) else "a file"
        raise ValueError(f"--out {out!r} is {what}; give a new or empty folder (nothing is overwritten).")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ValueError(f"--out {out!r}: its folder {parent!r} does not exist.")
    return out


def dataset_name(source) -> str:
    """A TFDS dataset name from the source's folder name ("My Pets-2" -> "my_pets_2")."""
    base = os.path.basename(os.path.normpath(os.fspath(source))).lower()
    name = re.sub(r"[^a-z0-9]+", "_", base).strip("_")
    return name if name[:1].isalpha() else f"prepared_{name}".rstrip("_")


def examples(src, split, pool):
    """`(key, example)` of one split in read order; image files are read `READ_AHEAD` at a time on `pool`."""
    paths = src.read.paths(split)
    if src.task == "classification":
        targets = ({"label": int(y)} for y in src.read.labels(split))
    else:  # the labels from the reader's own dataset (its images are decoded and dropped)
        targets = (_targets(src.task, ex) for ex in src.read(split).as_numpy_iterator())

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    for i in range(0, len(paths), READ_AHEAD):
        chunk = paths[i:i + READ_AHEAD]
        for j, data in enumerate(pool.map(read, chunk)):
            yield i + j, {"image": data, **next(targets)}


def _targets(task, ex):
    if task == "detection":
        objects = {"bbox": np.asarray(ex["boxes"], np.float32).reshape(-1, 4),
                   "label": np.asarray(ex["classes"], np.int64)}
        if "difficult" in ex:
            objects["difficult"] = np.asarray(ex["difficult"], bool)
        return {"objects": objects}
    return {"segmentation_mask": np.asarray(ex["mask"], np.uint8)[..., None]}


def features(src, difficult=False):
    """The TFDS features of `src`'s examples."""
    import tensorflow_datasets as tfds

    image = tfds.features.Image(shape=(None, None, src.image_shape[-1]))  # any encoding, stored as is
    if src.task == "classification":
        return tfds.features.FeaturesDict({"image": image, "label": tfds.features.ClassLabel(names=src.class_names)})
    if src.task == "detection":
        objects = {"bbox": tfds.features.BBoxFeature(), "label": tfds.features.ClassLabel(names=src.class_names)}
        if difficult:
            objects["difficult"] = tfds.features.Tensor(shape=(), dtype=np.bool_)
        return tfds.features.FeaturesDict({"image": image, "objects": tfds.features.Sequence(objects)})
    return tfds.features.FeaturesDict({"image": image, "segmentation_mask": tfds.features.Image(
        shape=(None, None, 1), encoding_format="png")})


def metadata(src) -> dict:
    """What the reader of the prepared data needs beyond the features (JSON-able)."""
    return {"task": src.task, "class_names": list(src.class_names), "image_shape": list(src.image_shape),
            "max_boxes": src.max_boxes, "source_kind": src.kind, "source": os.path.abspath(src.name),
            "splits": {s: _SPLIT_NAMES[s] for s in src.splits}, "common_size": src.extra.get("common_size")}


def _builder_class(name, src, pool, beam=None):
    """A `GeneratorBasedBuilder` writing `src` (not registered in TFDS' catalogue)."""
    import tensorflow_datasets as tfds

    difficult = src.task == "detection" and src.kind == "voc"  # only VOC marks objects difficult
    splits = {_SPLIT_NAMES[s]: s for s, n in src.splits.items() if n}

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=features(src, difficult), disable_shuffling=True,
                                     metadata=tfds.core.MetadataDict(metadata(src)),
                                     description=f"{src.kind} source {src.name}, written by zoo prepare.")

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        if beam is None:
            return {real: examples(src, s, pool) for real, s in splits.items()}
        return {real: beam.Create(list(_keyed_paths(src, s))) | beam.Map(_with_bytes) for real, s in splits.items()}

    attrs = {"name": name, "VERSION": tfds.core.Version(VERSION), "RELEASE_NOTES": {VERSION: "zoo prepare"},
             "_info": _info, "_split_generators": _split_generators, "_generate_examples": None}
    return type("Prepared", (tfds.core.GeneratorBasedBuilder,), attrs, skip_registration=True)


def _keyed_paths(src, split):
    """(Beam) `(key, (path, targets))` of one split: what each worker needs to build its examples."""
    paths = src.read.paths(split)
    for key, (_, ex) in enumerate(examples(src, split, _NoRead())):
        yield key, (paths[key], {k: v for k, v in ex.items() if k != "image"})


def _with_bytes(item):
    key, (path, targets) = item
    with open(path, "rb") as f:
        return key, {"image": f.read(), **targets}


class _NoRead:
    """A `pool` for `examples` that reads no file (the Beam workers read them)."""

    def map(self, fn, items):
        return [b""] * len(items)


def _beam():
    try:
        import apache_beam as beam
    except ImportError:
        raise ValueError("--beam needs Apache Beam, which is not installed: pip install apache-beam "
                         "(the 'prepare-beam' extra); without --beam the shards are written in this process.") from None
    return beam


def _beam_config(beam):
    """Beam's DirectRunner with one worker process per CPU."""
    options = beam.options.pipeline_options.PipelineOptions(
        direct_num_workers=os.cpu_count() or 1, direct_running_mode="multi_processing")
    return {"beam_runner": beam.runners.DirectRunner(), "beam_options": options}


def _check_args(source, out, file_format):
    out = check_out(out)
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        root = os.path.abspath(source)
        if os.path.commonpath([os.path.abspath(out), root]) == root:  # the next read would take it for data
            raise ValueError(f"--out {out!r} is inside the source folder {os.fspath(source)!r}; write it elsewhere.")
    if file_format not in FORMATS:
        raise ValueError(f"file_format {file_format!r} is not supported; allowed: {', '.join(FORMATS)}.")
    return out


def prepare(source, out, *, num_shards=None, file_format="tfrecord", beam=False, **open_kw):
    """Writes `source` under `out` as a TFDS dataset; returns its version folder.

    Args:
        source: What `pipelines.sources.open_source` opens: an image folder, or a YOLO/COCO/VOC/mask folder.
        out: A new (or empty) folder; the data is written next to it and renamed to it at the end.
        num_shards: Record files per split. Defaults to the number of CPUs (at least 2, so two workers
            can each read their own files); fewer where a split has fewer examples.
        file_format: One of `FORMATS`.
        beam: Write with Apache Beam's DirectRunner (TFDS' Beam path) instead of in this process.
        **open_kw: For the reader (`val_split`, `strict`, `channels`, `task`, `follow_symlinks`).

    Raises:
        ValueError: one line: an unknown source, one that is not made of image files, a used `out`.
    """
    import tensorflow_datasets as tfds

    from pipelines.sources import open_source

    out = _check_args(source, out, file_format)
    beam_mod = _beam() if beam else None
    src = open_source(source, **open_kw)
    if src.task not in TASKS or not hasattr(src.read, "paths"):
        raise ValueError(f"{src.name!r} is a {src.kind} source; zoo prepare writes image-file sources "
                         "(an image folder, or a YOLO, COCO, VOC or mask folder).")
    smallest = min([n for n in src.splits.values() if n] or [1])
    shards = max(1, min(num_shards or max(2, os.cpu_count() or 1), smallest))
    parent = os.path.dirname(os.path.abspath(out))
    tmp = tempfile.mkdtemp(prefix=".zoo-prepare-", dir=parent)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
            cls = _builder_class(dataset_name(source), src, pool, beam_mod)
            builder = cls(data_dir=tmp, file_format=file_format)
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                num_shards=shards, **(_beam_config(beam_mod) if beam_mod else {})))
        version_dir = os.path.relpath(builder.data_dir, tmp)
        shutil.rmtree(os.path.join(tmp, "downloads"), ignore_errors=True)  # TFDS' (empty) download folder
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.isdir(out):
            os.rmdir(out)  # empty (checked): replaced by the finished folder
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(out, version_dir)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
