"""Pascal VOC XML layout.

    root/JPEGImages/*.jpg
    root/Annotations/*.xml             <object><name>, <difficult>, <bndbox> xmin ymin xmax ymax (pixels, 1-based)
    root/ImageSets/Main/<split>.txt    image ids per split (train, val, test, trainval)
    root/classes.txt                   optional; otherwise the sorted names found in the annotations

`difficult` objects are kept (flagged) and excluded from mAP as VOC does. Every value is
checked: an error names the file (and object), the bad value and what is allowed, on one line.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET

import numpy as np

from pipelines.sources import labelled, paths

TREE = "JPEGImages/ + Annotations/*.xml + ImageSets/Main/<split>.txt"


def _matches(root):
    return os.path.isdir(os.path.join(root, "Annotations")) and os.path.isdir(os.path.join(root, "JPEGImages"))


def _text(node):
    return (node.text or "").strip() if node is not None else None


def _number(node, where, tag, *, positive=False):
    text = _text(node)
    if text is None:
        raise labelled.LabelError(f"{where}: missing <{tag}>; expected a number.")
    try:
        value = float(text)
    except ValueError:
        raise labelled.LabelError(f"{where}: <{tag}> {labelled.shown(text)} is not a number.") from None
    if not math.isfinite(value):
        raise labelled.LabelError(f"{where}: <{tag}> {labelled.shown(text)} must be a finite number.")
    if positive and value <= 0:
        raise labelled.LabelError(f"{where}: <{tag}> {labelled.shown(text)} must be a positive number of pixels.")
    return value


DIFFICULT = {"0": False, "1": True}


def parse_annotation(path):
    """The objects of one VOC XML file: `[(where, name, ymin, xmin, ymax, xmax, difficult)]` (see `parse_sized`)."""
    return parse_sized(path)[0]


def parse_sized(path):
    """The objects of one VOC XML file and the image size it declares.

    Returns:
        `(objects, (H, W))`: `[(where, name, ymin, xmin, ymax, xmax, difficult)]`, coordinates normalised by
        `<size>`, and that size (checked against the decoded image later, as COCO's).

    Raises:
        LabelError: one line naming the file (and object), the bad value and what is allowed.
    """
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise labelled.LabelError(f"{path}: not valid XML ({exc}).") from None
    except (ValueError, OSError) as exc:  # e.g. an entity expansion refused, an unreadable file
        raise labelled.LabelError(f"{path}: not usable XML ({type(exc).__name__}: {exc}).") from None
    size = tree.find("size")
    if size is None:
        raise labelled.LabelError(f"{path}: missing <size> with <width> and <height>.")
    W = _number(size.find("width"), path, "size><width", positive=True)
    H = _number(size.find("height"), path, "size><height", positive=True)
    objects = []
    for i, obj in enumerate(tree.findall("object"), start=1):
        where = f"{path}: object {i}"
        name = _text(obj.find("name"))
        if not name:
            raise labelled.LabelError(f"{where}: missing or empty <name>; expected the class name.")
        bb = obj.find("bndbox")
        if bb is None:
            raise labelled.LabelError(f"{where}: missing <bndbox> with xmin, ymin, xmax, ymax.")
        xmin, ymin, xmax, ymax = (_number(bb.find(k), where, f"bndbox><{k}") for k in ("xmin", "ymin", "xmax", "ymax"))
        difficult = _text(obj.find("difficult"))
        if difficult is not None and difficult not in DIFFICULT:
            raise labelled.LabelError(f"{where}: <difficult> {labelled.shown(difficult)} must be 0 or 1.")
        objects.append((where, name, (ymin - 1) / H, (xmin - 1) / W, ymax / H, xmax / W,
                        DIFFICULT.get(difficult, False)))
    return objects, (H, W)


_parse = parse_annotation  # the name older code used


def _ids(path):
    """Image ids listed in an ImageSets/Main/<split>.txt (first field of each line)."""
    return [line.split()[0] for line in labelled.read_text_lines(path) if line.strip()]


def open_voc(root, *, val_split=0.1, strict=False, channels=None, task=None, follow_symlinks=False, **_):
    confine = paths.Confine(root, follow_symlinks)
    ann_dir = os.path.join(root, "Annotations")
    sized = {os.path.splitext(f)[0]: (os.path.join(ann_dir, f), parse_sized(confine.listed(os.path.join(ann_dir, f))))
             for f in sorted(os.listdir(ann_dir)) if f.endswith(".xml")}
    parsed = {stem: objs for stem, (_, (objs, _)) in sized.items()}
    names_file = os.path.join(root, "classes.txt")
    names = (labelled.read_names_file(confine.listed(names_file)) if os.path.isfile(names_file)
             else sorted({o[1] for objs in parsed.values() for o in objs}))
    index = {n: i for i, n in enumerate(names)}
    check = labelled.BoxChecker(len(names))
    images = labelled.images_by_stem(os.path.join(root, "JPEGImages"), confine)

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
                parts[split] = [record(i) for i in _ids(confine.listed(os.path.join(sets, f)))]
        if "train" not in parts and os.path.isfile(os.path.join(sets, "trainval.txt")):
            parts["train"] = [record(i) for i in _ids(confine.listed(os.path.join(sets, "trainval.txt")))]
    if "train" not in parts:
        parts = {"train": [record(s) for s in sorted(parsed)]}
    check.warn(root)
    declared = {images[stem]: (hw, f"{xml}: <size>") for stem, (xml, (_, hw)) in sized.items() if stem in images}
    return labelled.detection_source("voc", root, names, parts, val_split=val_split, strict=strict,
                                     channels=channels, task=task, declared_sizes=declared)


labelled.register_layout("Pascal VOC", _matches, open_voc, TREE)
