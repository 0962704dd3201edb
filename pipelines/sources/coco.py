"""COCO JSON layout.

    root/annotations/instances_<split>.json     (e.g. instances_train2017.json, instances_val.json)
    root/<split>/*.jpg  or  root/images/<split>/*.jpg  or  root/images/*.jpg

Boxes are `[x, y, w, h]` in pixels; `category_id`s map to contiguous ids in sorted id
order; `iscrowd` objects are skipped. Every field is checked before use: an error names
the file and the image or annotation id, the bad value and what is allowed, on one line.
A `file_name` must stay inside the dataset (see `pipelines.sources.paths`), and each
image's `width`/`height` must match the decoded file (boxes are in those pixels).
"""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np

from pipelines.sources import labelled, paths

TREE = "annotations/instances_<split>.json + images"


def _matches(root):
    return bool(glob.glob(os.path.join(root, "annotations", "instances_*.json")))


def _image_dir(root, split_name):
    for cand in (os.path.join(root, split_name), os.path.join(root, "images", split_name), os.path.join(root, "images")):
        if os.path.isdir(cand):
            return cand
    raise ValueError(f"COCO dataset {root!r}: no image folder for split {split_name!r} "
                     f"(looked for {split_name}/, images/{split_name}/, images/).")


def _err(where, msg):
    return labelled.LabelError(f"{where}: {msg}")


def read_json(path):
    """The parsed JSON of an annotation file; LabelError naming the file when it is not JSON."""
    text = "\n".join(labelled.read_text_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _err(path, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer too long to convert, nesting too deep
        raise _err(path, f"not usable JSON ({type(exc).__name__}: {str(exc)[:80]}).") from None


def _list_of_dicts(data, key, path, required=True):
    if not isinstance(data, dict):
        raise _err(path, f"expected a JSON object with `images`, `annotations` and `categories`; "
                         f"the file holds a {type(data).__name__}.")
    value = data.get(key, [] if not required else None)
    if value is None and not required:
        value = []
    if not isinstance(value, list):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise _err(path, f"`{key}` must be a list of objects; it is {found}.")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _err(path, f"`{key}`[{i}] must be an object; it is {labelled.shown(item)}.")
    return value


def _id(value, where, field="id"):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _err(where, f"`{field}` {labelled.shown(value)} must be an integer or a string.")
    return value


def _number(value, where, field, *, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(where, f"`{field}` {labelled.shown(value)} must be a number.")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise _err(where, f"`{field}` {labelled.shown(value)} must be a finite number.")
    if positive and value <= 0:
        raise _err(where, f"`{field}` {value:g} must be a positive number of pixels.")
    return value


def load_categories(path, data=None):
    """`{category_id: name}` of one annotation file."""
    data = read_json(path) if data is None else data
    cats = {}
    for c in _list_of_dicts(data, "categories", path, required=False):
        where = f"{path}: category {labelled.shown(c.get('id'))}"
        cid = _id(c.get("id"), where)
        name = c.get("name")
        if not isinstance(name, str):
            raise _err(where, f"`name` {labelled.shown(name)} must be a string.")
        cats[cid] = name
    return cats


def load_annotations(path, image_dir, categories, check, confine=None, data=None):
    """Records of one COCO annotation file.

    Args:
        path: The `instances_<split>.json` file.
        image_dir: Folder the `file_name`s are relative to.
        categories: `{category_id: contiguous class id}`.
        check: A `labelled.BoxChecker`.
        confine: A `paths.Confine` for the `file_name`s (default: `image_dir`'s parent's rule, no symlinks).
        data: The parsed JSON, if already read.

    Returns:
        `(records, declared)`: `[Record]` in image-id order, and `{image_path: ((H, W), where)}`.

    Raises:
        LabelError: one line naming the file and the image or annotation id.
    """
    data = read_json(path) if data is None else data
    confine = confine or paths.Confine(os.path.dirname(os.path.abspath(image_dir)))
    by_image, declared = {}, {}
    for img in _list_of_dicts(data, "images", path):
        where = f"{path}: image id {labelled.shown(img.get('id'))}"
        img_id = _id(img.get("id"), where)
        if img_id in by_image:
            raise _err(where, "appears twice in `images`; image ids must be unique.")
        file_name = confine.named(img.get("file_name"), by=f"{where} `file_name`", base=image_dir)
        W = _number(img.get("width"), where, "width", positive=True)
        H = _number(img.get("height"), where, "height", positive=True)
        by_image[img_id] = (file_name, W, H)
        declared[file_name] = ((H, W), where)
    anns = {}
    for i, ann in enumerate(_list_of_dicts(data, "annotations", path, required=False)):
        where = f"{path}: annotation id {labelled.shown(ann.get('id', f'? (#{i})'))}"
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1, True, False):
            raise _err(where, f"`iscrowd` {labelled.shown(crowd)} must be 0 or 1.")
        if crowd:
            continue
        image_id = _id(ann.get("image_id"), where, "image_id")
        if image_id not in by_image:
            raise _err(where, f"image_id {labelled.shown(image_id)} is not in `images`.")
        cat = ann.get("category_id")
        if isinstance(cat, bool) or not isinstance(cat, (int, str)) or cat not in categories:
            raise _err(where, f"category_id {labelled.shown(cat)} is not in `categories`.")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise _err(where, f"`bbox` {labelled.shown(bbox)} must be a list [x, y, width, height] of 4 numbers.")
        x, y, w, h = (_number(v, where, "bbox") for v in bbox)
        _, W, H = by_image[image_id]
        box = check(where, categories[cat], y / H, x / W, (y + h) / H, (x + w) / W)
        anns.setdefault(image_id, []).append((box, categories[cat]))
    records = []
    for img_id, (file_name, _, _) in sorted(by_image.items(), key=lambda kv: (isinstance(kv[0], str), kv[0])):
        objs = anns.get(img_id, [])
        boxes = np.array([b for b, _ in objs], np.float32).reshape(-1, 4)
        classes = np.array([c for _, c in objs], np.int32)
        records.append(labelled.Record(file_name, boxes, classes, np.zeros(len(classes), bool)))
    return records, declared


def open_coco(root, *, val_split=0.1, strict=False, channels=None, task=None, follow_symlinks=False, **_):
    confine = paths.Confine(root, follow_symlinks)
    files = sorted(glob.glob(os.path.join(root, "annotations", "instances_*.json")))
    loaded = {path: read_json(confine.listed(path)) for path in files}
    cats = {}
    for path, data in loaded.items():
        cats.update(load_categories(path, data))
    ids = sorted(cats, key=lambda c: (isinstance(c, str), c))
    categories = {cid: i for i, cid in enumerate(ids)}
    names = [cats[cid] for cid in ids]
    check = labelled.BoxChecker(len(names))
    parts, declared = {}, {}
    for path in files:
        split_name = os.path.basename(path)[len("instances_"):-len(".json")]
        split = labelled.canonical_split(split_name)
        if split is None:
            raise ValueError(f"{path}: cannot tell the split from {split_name!r}; name it instances_train/val/test.json.")
        parts[split], sizes = load_annotations(path, _image_dir(root, split_name), categories, check, confine,
                                               loaded[path])
        declared.update(sizes)
    if "train" not in parts:
        raise ValueError(f"COCO dataset {root!r} has no annotations/instances_train*.json.")
    for recs in parts.values():
        missing = [r.image for r in recs if not os.path.isfile(r.image)]
        if missing:
            raise ValueError(f"COCO dataset {root!r}: image file {missing[0]!r} listed in the annotations does not "
                             f"exist ({len(missing)} missing).")
    check.warn(root)
    return labelled.detection_source("coco", root, names, parts, val_split=val_split, strict=strict,
                                     channels=channels, task=task, declared_sizes=declared)


labelled.register_layout("COCO JSON", _matches, open_coco, TREE)
