"""Pascal VOC XML layout.

    root/JPEGImages/*.jpg
    root/Annotations/*.xml             <object><name>, <difficult>, <bndbox> xmin ymin xmax ymax (pixels, 1-based)
    root/ImageSets/Main/<split>.txt    image ids per split (train, val, test, trainval)
    root/classes.txt                   optional; otherwise the sorted names found in the annotations

`difficult` objects are kept (flagged) and excluded from mAP as VOC does.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from pipelines.sources import labelled

TREE = "JPEGImages/ + Annotations/*.xml + ImageSets/Main/<split>.txt"


def _matches(root):
    return os.path.isdir(os.path.join(root, "Annotations")) and os.path.isdir(os.path.join(root, "JPEGImages"))


def _parse(path):
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise labelled.LabelError(f"{path}: not valid XML ({exc}).") from None
    size = tree.find("size")
    try:
        W, H = float(size.find("width").text), float(size.find("height").text)
    except (AttributeError, TypeError, ValueError):
        raise labelled.LabelError(f"{path}: missing or bad <size><width>/<height>.") from None
    objects = []
    for i, obj in enumerate(tree.findall("object"), start=1):
        try:
            name = obj.find("name").text.strip()
            bb = obj.find("bndbox")
            xmin, ymin, xmax, ymax = (float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise labelled.LabelError(f"{path}: object {i} lacks <name> or a numeric <bndbox>.") from None
        difficult = obj.find("difficult")
        objects.append((f"{path}: object {i}", name, (ymin - 1) / H, (xmin - 1) / W, ymax / H, xmax / W,
                        difficult is not None and difficult.text.strip() == "1"))
    return objects


def open_voc(root, *, val_split=0.1, strict=False, channels=None, task=None, **_):
    ann_dir = os.path.join(root, "Annotations")
    parsed = {os.path.splitext(f)[0]: _parse(os.path.join(ann_dir, f))
              for f in sorted(os.listdir(ann_dir)) if f.endswith(".xml")}
    names_file = os.path.join(root, "classes.txt")
    names = (labelled.read_names_file(names_file) if os.path.isfile(names_file)
             else sorted({o[1] for objs in parsed.values() for o in objs}))
    index = {n: i for i, n in enumerate(names)}
    check = labelled.BoxChecker(len(names))
    images = labelled.images_by_stem(os.path.join(root, "JPEGImages"))

    def record(stem):
        if stem not in images:
            raise ValueError(f"VOC dataset {root!r}: no image for id {stem!r} in JPEGImages/.")
        objs = parsed.get(stem, [])
        for where, name, *_ in objs:
            if name not in index:
                raise labelled.LabelError(f"{where}: class {name!r} is not in classes.txt ({', '.join(names)}).")
        boxes = [check(w, index[n], *box) for w, n, *box, _ in objs]
        return labelled.Record(images[stem], np.array(boxes, np.float32).reshape(-1, 4),
                               np.array([index[o[1]] for o in objs], np.int32), np.array([o[-1] for o in objs], bool))

    sets = os.path.join(root, "ImageSets", "Main")
    parts = {}
    if os.path.isdir(sets):
        for f in sorted(os.listdir(sets)):
            split = labelled.canonical_split(os.path.splitext(f)[0])
            if split and f.endswith(".txt"):
                ids = [line.split()[0] for line in open(os.path.join(sets, f)) if line.strip()]
                parts[split] = [record(i) for i in ids]
        if "train" not in parts and os.path.isfile(os.path.join(sets, "trainval.txt")):
            ids = [line.split()[0] for line in open(os.path.join(sets, "trainval.txt")) if line.strip()]
            parts["train"] = [record(i) for i in ids]
    if "train" not in parts:
        parts = {"train": [record(s) for s in sorted(parsed)]}
    check.warn(root)
    return labelled.detection_source("voc", root, names, parts, val_split=val_split, strict=strict,
                                     channels=channels, task=task)


labelled.register_layout("Pascal VOC", _matches, open_voc, TREE)
