"""Shared parts of the labelled-folder readers (YOLO txt, COCO JSON, Pascal VOC, mask folders).

Each format module parses its own label files into per-split lists of
`Record(image, boxes, classes, difficult)` (boxes normalised `[ymin, xmin, ymax, xmax]`)
or image/mask path pairs, and hands them to `detection_source` / `mask_source`, which
check the images, hold out missing splits and build the `Source`. The folder itself
is claimed by one reader ("labelled") that recognises the layout and dispatches, so an
unknown or ambiguous layout gets one error saying what was looked for and what was found.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import tensorflow as tf

from pipelines import splits as splits_lib
from pipelines.sources import images, paths
from pipelines.sources.base import Source, register_reader

CLIP_TOLERANCE = 0.05  # boxes up to 5% of the image outside it are clipped; further out is an error


class LabelError(paths.OneLineError):
    """A label file that cannot be used, with its file and line (or annotation id), on one line."""


def shown(value, limit=80):
    """`repr(value)`, cut to `limit` characters (label-file contents quoted in errors stay short)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclasses.dataclass
class Record:
    image: str
    boxes: np.ndarray  # [N, 4] float32 normalised ymin, xmin, ymax, xmax
    classes: np.ndarray  # [N] int32
    difficult: np.ndarray  # [N] bool


def canonical_split(name: str):
    """"train2017" -> "train"; None when `name` is not a split name."""
    base = name.lower().rstrip("0123456789")
    return splits_lib.split_name(base)


class BoxChecker:
    """Validates boxes, clips ones slightly outside the image, and counts the clipped ones."""

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.clipped = 0

    def __call__(self, where, cls, ymin, xmin, ymax, xmax):
        coords = {"ymin": ymin, "xmin": xmin, "ymax": ymax, "xmax": xmax}
        bad = {k: v for k, v in coords.items() if not np.isfinite(v)}
        if bad:
            raise LabelError(f"{where}: box coordinate(s) {', '.join(f'{k}={v}' for k, v in bad.items())} "
                             "are not finite numbers; every coordinate must be a finite number.")
        if not 0 <= cls < self.num_classes:
            raise LabelError(f"{where}: class id {cls} is outside the names list (0..{self.num_classes - 1}).")
        if ymax <= ymin or xmax <= xmin:
            raise LabelError(f"{where}: box has non-positive size (ymin={ymin:.4g}, xmin={xmin:.4g}, "
                             f"ymax={ymax:.4g}, xmax={xmax:.4g}).")
        lo, hi = -CLIP_TOLERANCE, 1 + CLIP_TOLERANCE
        if min(ymin, xmin) < lo or max(ymax, xmax) > hi:
            raise LabelError(f"{where}: box lies outside the image (normalised ymin={ymin:.4g}, xmin={xmin:.4g}, "
                             f"ymax={ymax:.4g}, xmax={xmax:.4g}).")
        box = np.clip([ymin, xmin, ymax, xmax], 0.0, 1.0)
        if not np.allclose(box, [ymin, xmin, ymax, xmax]):
            self.clipped += 1
        return box

    def warn(self, name):
        if self.clipped:
            warnings.warn(f"{name}: clipped {self.clipped} box(es) slightly outside their image.", stacklevel=3)


def _hold_out(parts, val_split):
    missing = tuple(s for s in ("val", "test") if s not in parts)
    if missing and "train" in parts:
        items = parts.pop("train")
        idx = splits_lib.split_indices(len(items), val_split, missing)
        parts.update({k: [items[j] for j in i] for k, i in idx.items()})
    return parts


def _checked(parts, strict, declared=None):
    every = [r.image if isinstance(r, Record) else r[0] for items in parts.values() for r in items]
    good, sizes, all_gray = images.check_images(every, strict=strict)
    size_of = dict(zip(good, sizes))
    if declared:
        _check_declared_sizes(declared, size_of)
    kept = {s: [r for r in items if (r.image if isinstance(r, Record) else r[0]) in size_of]
            for s, items in parts.items()}
    return kept, size_of, all_gray


def _check_declared_sizes(declared, size_of):
    """Refuses images whose size in the label file differs from the decoded file (boxes would be rescaled)."""
    wrong = [(p, d, size_of[p]) for p, d in declared.items() if p in size_of and tuple(d[0]) != tuple(size_of[p])]
    if wrong:
        path, ((h, w), where), (fh, fw) = wrong[0]
        raise LabelError(f"{where}: declares width x height {w:g}x{h:g} but {path} decodes to {fw}x{fh}; "
                         f"boxes are in the declared size's pixels, so fix width/height to the image's real size "
                         f"({len(wrong)} image(s) differ).")


def detection_source(kind, name, class_names, parts, *, val_split, strict, channels, task=None, extra=None,
                     declared_sizes=None):
    """A detection `Source` from `{split: [Record]}`.

    Args:
        declared_sizes: `{image_path: ((H, W), where)}` sizes the label files state (COCO); an image
            that decodes to another size is an error naming `where`.
    """
    if task not in (None, "detection"):
        raise ValueError(f"{name!r} is a {kind} detection dataset; it cannot feed task {task!r}.")
    parts, size_of, all_gray = _checked(parts, strict, declared_sizes)
    parts = _hold_out(parts, val_split)
    channels = channels or (1 if all_gray else 3)
    with_difficult = kind == "voc"  # only VOC marks objects difficult (kept, excluded from mAP)
    tables = {}
    for split, recs in parts.items():
        counts = [len(r.classes) for r in recs]
        row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        boxes = np.concatenate([r.boxes.reshape(-1, 4) for r in recs] or [np.zeros((0, 4))]).astype(np.float32)
        classes = np.concatenate([r.classes for r in recs] or [np.zeros(0)]).astype(np.int32)
        difficult = np.concatenate([r.difficult for r in recs] or [np.zeros(0)]).astype(bool)
        tables[split] = (np.array([r.image for r in recs]), row_splits, boxes, classes, difficult)

    def read(split):
        paths, row_splits, boxes, classes, difficult = tables[splits_lib.canonical(split)]
        rs, bx, cl, df = (tf.constant(a) for a in (row_splits, boxes, classes, difficult))

        def example(i, path):
            s, e = rs[i], rs[i + 1]
            ex = {"image": images.decode(path, channels), "boxes": tf.reshape(bx[s:e], [-1, 4]), "classes": cl[s:e]}
            if with_difficult:
                ex["difficult"] = df[s:e]
            return ex

        ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), paths))
        return ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)

    read.paths = lambda split: [str(p) for p in tables[splits_lib.canonical(split)][0]]  # in read order

    sizes = list(size_of.values())
    uniform, common = images.common_size(sizes)
    max_boxes = max([len(r.classes) for recs in parts.values() for r in recs] or [1])
    return Source(
        kind=kind, name=name, task="detection", class_names=list(class_names),
        splits={k: len(v) for k, v in parts.items()}, read=read, image_shape=(*uniform, channels),
        max_boxes=max(1, max_boxes),
        cache_key=(kind, os.path.abspath(name), val_split, strict, channels, _mtimes(name)),
        extra={"common_size": list(common), "format": kind, **(extra or {})},
    )


def mask_source(kind, name, class_names, parts, *, val_split, strict, channels, task=None):
    """A segmentation `Source` from `{split: [(image_path, mask_path)]}` (masks already validated)."""
    if task not in (None, "segmentation"):
        raise ValueError(f"{name!r} is a mask-folder segmentation dataset; it cannot feed task {task!r}.")
    parts, size_of, all_gray = _checked(parts, strict)
    parts = _hold_out(parts, val_split)
    channels = channels or (1 if all_gray else 3)

    def read_mask(path):
        from PIL import Image

        with Image.open(path.decode() if isinstance(path, bytes) else path) as m:
            return np.asarray(m, dtype=np.uint8)

    def example(img_path, mask_path):
        mask = tf.numpy_function(read_mask, [mask_path], tf.uint8, stateful=False)
        mask.set_shape([None, None])
        return {"image": images.decode(img_path, channels), "mask": mask}

    def read(split):
        pairs = parts[splits_lib.canonical(split)]
        ds = tf.data.Dataset.from_tensor_slices(([p for p, _ in pairs], [m for _, m in pairs]))
        return ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)

    read.paths = lambda split: [str(p) for p, _ in parts[splits_lib.canonical(split)]]  # images, in read order

    uniform, common = images.common_size(list(size_of.values()))
    return Source(
        kind=kind, name=name, task="segmentation", class_names=list(class_names),
        splits={k: len(v) for k, v in parts.items()}, read=read, image_shape=(*uniform, channels),
        cache_key=(kind, os.path.abspath(name), val_split, strict, channels, _mtimes(name)),
        extra={"common_size": list(common), "format": kind},
    )


def _mtimes(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out.append(_mtime(dirpath))
        out.extend(_mtime(os.path.join(dirpath, f)) for f in filenames if not f.endswith(".jpg"))
    return hash(tuple(out))


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:  # a dangling symlink: its own time
        return os.lstat(path).st_mtime_ns


def read_text_lines(path):
    """The lines of a text file; a file that is not UTF-8 text is a LabelError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}).") from None
    except OSError as exc:
        raise LabelError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def read_names_file(path):
    """Class names from a `classes.txt`-style file: one per line, blank lines ignored."""
    return [line.strip() for line in read_text_lines(path) if line.strip()]


def images_by_stem(folder, confine=None):
    """`{stem: path}` of the images in `folder`; each checked by `confine` (a `paths.Confine`) when given."""
    found = images.list_images(folder)
    if confine is not None:
        found = [confine.listed(p) for p in found]
    return {os.path.splitext(os.path.basename(p))[0]: p for p in found}


# Layout dispatch ---------------------------------------------------------------------------------

_LAYOUTS = []  # (name, matches(root) -> bool, open, tree)


def register_layout(name, matches, open, tree):
    """A labelled-folder layout: `matches(root)` is cheap; `tree` is shown in errors."""
    _LAYOUTS.append((name, matches, open, tree))


MARKERS = ("images", "labels", "masks", "annotations", "Annotations", "JPEGImages", "data.yaml")


def _claims(source):
    if not isinstance(source, (str, os.PathLike)) or not os.path.isdir(source):
        return False
    return any(os.path.exists(os.path.join(source, m)) for m in MARKERS)


def _found(root):
    entries = sorted(os.listdir(root))[:12]
    return ", ".join(e + ("/" if os.path.isdir(os.path.join(root, e)) else "") for e in entries) or "nothing"


def open_labelled(root, **kw):
    root = os.fspath(root)
    matched = [(n, o) for n, m, o, _ in _LAYOUTS if m(root)]
    looked = "; ".join(f"{n} ({t})" for n, _, _, t in _LAYOUTS)
    if not matched:
        raise ValueError(f"Unknown dataset layout in {root!r}: found {_found(root)}. Looked for: {looked}; "
                         "or class subfolders (root/CLASS/IMAGE) for classification.")
    if len(matched) > 1:
        raise ValueError(f"Ambiguous dataset layout in {root!r}: it matches {', '.join(n for n, _ in matched)} "
                         f"(found {_found(root)}). Keep one layout per folder.")
    return matched[0][1](root, **kw)


register_reader("labelled", _claims, open_labelled, priority=5,
                describe="a labelled folder (YOLO txt, COCO JSON, Pascal VOC or image/mask folders)")
