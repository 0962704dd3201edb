"""COCO JSON layout.

    root/annotations/instances_<split>.json     (e.g. instances_train2017.json, instances_val.json)
    root/<split>/*.jpg  or  root/images/<split>/*.jpg  or  root/images/*.jpg

Boxes are `[x, y, w, h]` in pixels; `category_id`s map to contiguous ids in sorted id
order; `iscrowd` objects are skipped.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from pipelines.sources import labelled

TREE = "annotations/instances_<split>.json + images"


def _matches(root):
    return bool(glob.glob(os.path.join(root, "annotations", "instances_*.json")))


def _image_dir(root, split_name):
    for cand in (os.path.join(root, split_name), os.path.join(root, "images", split_name), os.path.join(root, "images")):
        if os.path.isdir(cand):
            return cand
    raise ValueError(f"COCO dataset {root!r}: no image folder for split {split_name!r} "
                     f"(looked for {split_name}/, images/{split_name}/, images/).")


def _load(path, root, split_name, categories, check):
    with open(path) as f:
        data = json.load(f)
    image_dir = _image_dir(root, split_name)
    by_image = {img["id"]: img for img in data.get("images", [])}
    anns = {}
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        where = f"{path}: annotation id {ann.get('id')}"
        img = by_image.get(ann["image_id"])
        if img is None:
            raise labelled.LabelError(f"{where}: image_id {ann['image_id']} is not in `images`.")
        if ann["category_id"] not in categories:
            raise labelled.LabelError(f"{where}: category_id {ann['category_id']} is not in `categories`.")
        x, y, w, h = (float(v) for v in ann["bbox"])
        W, H = float(img["width"]), float(img["height"])
        box = check(where, categories[ann["category_id"]], y / H, x / W, (y + h) / H, (x + w) / W)
        anns.setdefault(img["id"], []).append((box, categories[ann["category_id"]]))
    records = []
    for img_id, img in sorted(by_image.items()):
        objs = anns.get(img_id, [])
        boxes = np.array([b for b, _ in objs], np.float32).reshape(-1, 4)
        classes = np.array([c for _, c in objs], np.int32)
        records.append(labelled.Record(os.path.join(image_dir, img["file_name"]), boxes, classes,
                                       np.zeros(len(classes), bool)))
    return records


def open_coco(root, *, val_split=0.1, strict=False, channels=None, task=None, **_):
    files = sorted(glob.glob(os.path.join(root, "annotations", "instances_*.json")))
    cats = {}
    for path in files:
        with open(path) as f:
            for c in json.load(f).get("categories", []):
                cats[c["id"]] = c["name"]
    ids = sorted(cats)
    categories = {cid: i for i, cid in enumerate(ids)}
    names = [cats[cid] for cid in ids]
    check = labelled.BoxChecker(len(names))
    parts = {}
    for path in files:
        split_name = os.path.basename(path)[len("instances_"):-len(".json")]
        split = labelled.canonical_split(split_name)
        if split is None:
            raise ValueError(f"{path}: cannot tell the split from {split_name!r}; name it instances_train/val/test.json.")
        parts[split] = _load(path, root, split_name, categories, check)
    if "train" not in parts:
        raise ValueError(f"COCO dataset {root!r} has no annotations/instances_train*.json.")
    for recs in parts.values():
        missing = [r.image for r in recs if not os.path.isfile(r.image)]
        if missing:
            raise ValueError(f"COCO dataset {root!r}: image file {missing[0]!r} listed in the annotations does not "
                             f"exist ({len(missing)} missing).")
    check.warn(root)
    return labelled.detection_source("coco", root, names, parts, val_split=val_split, strict=strict,
                                     channels=channels, task=task)


labelled.register_layout("COCO JSON", _matches, open_coco, TREE)
