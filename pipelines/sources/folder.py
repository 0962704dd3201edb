"""Image folders with one subfolder per class, optionally under `train/`, `val/`, `test/`.

    root/cat/1.jpg, root/dog/2.png          -> val and test held out (seeded)
    root/train/cat/..., root/test/cat/...   -> those splits; val held out of train
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from pipelines import splits as splits_lib
from pipelines.sources import images, manifest
from pipelines.sources import paths as paths_lib
from pipelines.sources.base import Source, register_reader


def _subdirs(path):
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))


def _images_in(folder):
    """`images.list_images(folder)`, and which of those are symlinks (one scandir: no stat per file)."""
    with os.scandir(folder) as entries:
        found = sorted((e.path, e.is_symlink()) for e in entries if images.is_image_file(e.name))
    return [p for p, _ in found], {p for p, link in found if link}


def _confined(confine, folder, files, links):
    """`confine.listed` of each file; with the folder inside the root only symlinked files need a
    realpath (one per file was most of a manifest-backed open, issue 24)."""
    try:
        confine.listed(folder)
    except paths_lib.OutsideRootError:
        return [confine.listed(f) for f in files]  # the error names the first file, as before
    return [confine.listed(f) if f in links else f for f in files]


def _scan_classes(root, class_names=None, confine=None):
    classes = _subdirs(root)
    if not classes:
        files = [f for f in os.listdir(root) if images.is_image_file(f)]
        what = f"{len(files)} loose image file(s) but no class subfolders" if files else "no images"
        raise ValueError(f"Image folder {root!r} has {what}; expected one subfolder per class (root/CLASS/IMAGE).")
    items = []
    for name in classes:
        files, links = _images_in(os.path.join(root, name))
        if confine is not None:  # symlinked class folders / images leaving the dataset (issue 23)
            files = _confined(confine, os.path.join(root, name), files, links)
        if not files:
            raise ValueError(f"Class folder {os.path.join(root, name)!r} is empty (no image files).")
        items.append((name, files))
    return items


def open_folder(root, *, val_split=0.1, strict=False, channels=None, task=None, follow_symlinks=False, **_):
    root = os.fspath(root)
    confine = paths_lib.Confine(root, follow_symlinks)
    named = {d: splits_lib.split_name(d) for d in _subdirs(root)}  # "Validation/", "dev/" -> "val"
    split_dirs = {split: os.path.join(root, d) for d, split in named.items() if split}
    if split_dirs and "train" not in split_dirs:
        raise ValueError(f"Image folder {root!r} has {sorted(split_dirs)} split folders but no train/ folder.")
    scanned = ({s: _scan_classes(p, confine=confine) for s, p in split_dirs.items()} if split_dirs
               else {"train": _scan_classes(root, confine=confine)})
    class_names = sorted({name for items in scanned.values() for name, _ in items})
    index = {n: i for i, n in enumerate(class_names)}

    every = [f for items in scanned.values() for _, files in items for f in files]
    good, sizes, all_gray = manifest.check_images(root, every, strict=strict)  # one warning list, one count
    size_of = dict(zip(good, sizes))
    parts = {}
    for split, items in scanned.items():
        paths, labels = [], []
        for name, files in items:
            ok = [f for f in files if f in size_of]
            if not ok:
                raise ValueError(f"Class folder {os.path.join(split_dirs.get(split, root), name)!r} has no readable images.")
            paths += ok
            labels += [index[name]] * len(ok)
        parts[split] = (np.array(paths), np.array(labels, np.int32))
    all_sizes = sizes
    missing = tuple(s for s in ("val", "test") if s not in parts)
    if missing:
        x, y = parts.pop("train")
        idx = splits_lib.split_indices(len(x), val_split, missing)
        parts.update({k: (x[i], y[i]) for k, i in idx.items()})

    if channels is None:
        channels = 1 if all_gray else 3
    uniform, _ = images.common_size(all_sizes)

    def read(split):
        paths, labels = parts[splits_lib.canonical(split)]
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        return ds.map(lambda p, y: {"image": images.decode(p, channels), "label": y},
                      num_parallel_calls=tf.data.AUTOTUNE)

    read.paths = lambda split: [str(p) for p in parts[splits_lib.canonical(split)][0]]  # in read order
    read.labels = lambda split: parts[splits_lib.canonical(split)][1]  # in read order, no image decoded

    return Source(
        kind="folder",
        name=root,
        task=task or "classification",
        class_names=class_names,
        splits={k: int(len(v[0])) for k, v in parts.items()},
        read=read,
        image_shape=(*uniform, channels),
        cache_key=("folder", os.path.abspath(root), val_split, strict, channels,
                   tuple(os.stat(p).st_mtime_ns for p in [root] + list(split_dirs.values()))),
        extra={"common_size": list(images.common_size(all_sizes)[1])},
    )


def _is_folder(s):
    return isinstance(s, (str, os.PathLike)) and os.path.isdir(s)


register_reader("folder", _is_folder, open_folder, priority=-10,
                describe="an image folder with one subfolder per class")
