"""YOLO txt layout (what Ultralytics and most labelling tools export).

    root/data.yaml                 names: [cat, dog]  (list or {0: cat, 1: dog}); or root/classes.txt
    root/images/{train,val,test}/*.jpg
    root/labels/{train,val,test}/*.txt   one "class cx cy w h" line per object, normalised 0-1

An image without a label file is a background image (no objects).
"""

from __future__ import annotations

import os

import numpy as np

from pipelines.sources import labelled

TREE = "images/{train,val,test}/ + labels/{train,val,test}/*.txt + data.yaml or classes.txt"


def _names(root):
    yaml_path = os.path.join(root, "data.yaml")
    if os.path.isfile(yaml_path):
        import yaml

        with open(yaml_path) as f:
            data = yaml.safe_load(f) or {}
        names = data.get("names")
        if isinstance(names, dict):
            ids = sorted(int(k) for k in names)
            if ids != list(range(len(ids))):
                raise labelled.LabelError(f"{yaml_path}: `names` ids must be 0..N-1; found {ids}.")
            return [str(names[k] if k in names else names[str(k)]) for k in ids]
        if isinstance(names, list) and names:
            return [str(n) for n in names]
        raise labelled.LabelError(f"{yaml_path}: expected a `names:` list or mapping of class names.")
    txt = os.path.join(root, "classes.txt")
    if os.path.isfile(txt):
        return labelled.read_names_file(txt)
    raise labelled.LabelError(f"YOLO dataset {root!r} has no class names: add data.yaml (`names:`) or classes.txt.")


def _parse(label_path, check):
    boxes, classes = [], []
    with open(label_path) as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{label_path}:{lineno}"
            if len(fields) != 5:
                raise labelled.LabelError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}.")
            try:
                cls = int(fields[0])
                cx, cy, w, h = (float(v) for v in fields[1:])
            except ValueError:
                raise labelled.LabelError(f"{where}: expected 'class cx cy w h' numbers, got {line.strip()!r}.") from None
            boxes.append(check(where, cls, cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2))
            classes.append(cls)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32)


def _matches(root):
    return os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "labels"))


def open_yolo(root, *, val_split=0.1, strict=False, channels=None, task=None, **_):
    names = _names(root)
    check = labelled.BoxChecker(len(names))
    parts = {}
    image_root = os.path.join(root, "images")
    for entry in sorted(os.listdir(image_root)):
        split = labelled.canonical_split(entry)
        if split is None or not os.path.isdir(os.path.join(image_root, entry)):
            continue
        records = []
        for stem, path in sorted(labelled.images_by_stem(os.path.join(image_root, entry)).items()):
            label = os.path.join(root, "labels", entry, stem + ".txt")
            boxes, classes = _parse(label, check) if os.path.isfile(label) else (
                np.zeros((0, 4), np.float32), np.zeros(0, np.int32))
            records.append(labelled.Record(path, boxes, classes, np.zeros(len(classes), bool)))
        parts[split] = records
    if "train" not in parts:
        raise ValueError(f"YOLO dataset {root!r} has no images/train/ folder (found: {labelled._found(image_root)}).")
    check.warn(root)
    return labelled.detection_source("yolo", root, names, parts, val_split=val_split, strict=strict,
                                     channels=channels, task=task)


labelled.register_layout("YOLO txt", _matches, open_yolo, TREE)
