"""YOLO txt layout (what Ultralytics and most labelling tools export).

    root/data.yaml                 names: [cat, dog]  (list or {0: cat, 1: dog}); or root/classes.txt
    root/images/{train,val,test}/*.jpg
    root/labels/{train,val,test}/*.txt   one "class cx cy w h" line per object, normalised 0-1

An image without a label file is a background image (no objects). When no image has a
label file the layout is wrong (e.g. `labels/Train/` beside `images/train/`): refused,
listing what was looked for; when more than half have none, a warning says how many.
"""

from __future__ import annotations

import os

import numpy as np

from pipelines.sources import labelled, paths

TREE = "images/{train,val,test}/ + labels/{train,val,test}/*.txt + data.yaml or classes.txt"
LOOKED_SHOWN = 4  # label paths listed in the "no label file matches" error


def _yaml_error(path, exc):
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    at = f" at line {mark.line + 1}" if mark is not None else ""
    what = getattr(exc, "problem", None) or type(exc).__name__
    if "python/" in str(exc) or "could not determine a constructor" in str(exc):
        what = f"{what} (tags such as !!python/... are not allowed)"
    return labelled.LabelError(f"{path}: not valid YAML{at}: {what}.")


def _name(value, where):
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        hint = " (YAML reads unquoted yes/no/on/off as booleans: quote it)" if isinstance(value, bool) else ""
        raise labelled.LabelError(f"{where}: class name {labelled.shown(value)} is not a string{hint}.")
    return str(value)


def load_names(yaml_path):
    """Class names from a data.yaml (`names:` list, or mapping of ids 0..N-1); LabelError naming the file."""
    import yaml

    text = "\n".join(labelled.read_text_lines(yaml_path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(yaml_path, exc) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp or number YAML cannot build
        raise labelled.LabelError(f"{yaml_path}: not valid YAML ({type(exc).__name__}: {exc}).") from None
    if not isinstance(data, dict):
        raise labelled.LabelError(f"{yaml_path}: expected a mapping with a `names:` key; the file holds "
                                  f"a {type(data).__name__}.")
    names = data.get("names")
    if isinstance(names, dict) and names:
        ids = {}
        for k, v in names.items():
            try:
                if isinstance(k, bool) or isinstance(k, float):
                    raise ValueError
                ids[int(k)] = v
            except (ValueError, TypeError):
                raise labelled.LabelError(f"{yaml_path}: `names` key {labelled.shown(k)} is not a class id; "
                                          "ids must be the integers 0..N-1.") from None
        if sorted(ids) != list(range(len(ids))):
            raise labelled.LabelError(f"{yaml_path}: `names` ids must be 0..N-1; found {sorted(ids)[:20]}.")
        return [_name(ids[k], f"{yaml_path}: names[{k}]") for k in range(len(ids))]
    if isinstance(names, list) and names:
        return [_name(n, f"{yaml_path}: names[{i}]") for i, n in enumerate(names)]
    raise labelled.LabelError(f"{yaml_path}: expected a `names:` list or mapping of class names; "
                              f"found {labelled.shown(names)}.")


def _names(root, confine):
    yaml_path = os.path.join(root, "data.yaml")
    if os.path.isfile(yaml_path):
        return load_names(confine.listed(yaml_path))
    txt = os.path.join(root, "classes.txt")
    if os.path.isfile(txt):
        return labelled.read_names_file(confine.listed(txt))
    raise labelled.LabelError(f"YOLO dataset {root!r} has no class names: add data.yaml (`names:`) or classes.txt.")


def parse_label_file(label_path, check):
    """Boxes and classes of one YOLO label file.

    Args:
        label_path: The `.txt` file.
        check: A `labelled.BoxChecker` (validates class ids and boxes).

    Returns:
        `(boxes [N, 4] float32 normalised ymin, xmin, ymax, xmax, classes [N] int32)`.

    Raises:
        LabelError: one line naming the file and line.
    """
    boxes, classes = [], []
    for lineno, line in enumerate(labelled.read_text_lines(label_path), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_path}:{lineno}"
        if len(fields) != 5:
            raise labelled.LabelError(f"{where}: expected 'class cx cy w h', got {labelled.shown(line.strip())}.")
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise labelled.LabelError(f"{where}: expected 'class cx cy w h' numbers, "
                                      f"got {labelled.shown(line.strip())}.") from None
        if not all(np.isfinite(v) for v in (cx, cy, w, h)):
            raise labelled.LabelError(f"{where}: box values cx={cx}, cy={cy}, w={w}, h={h} must be finite numbers "
                                      "(normalised 0-1).")
        boxes.append(check(where, cls, cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2))
        classes.append(cls)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32)


_parse = parse_label_file  # the name older code used


def _matches(root):
    return os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "labels"))


def open_yolo(root, *, val_split=0.1, strict=False, channels=None, task=None, follow_symlinks=False, **_):
    confine = paths.Confine(root, follow_symlinks)
    names = _names(root, confine)
    check = labelled.BoxChecker(len(names))
    parts = {}
    image_root = os.path.join(root, "images")
    looked, unlabelled, total = {}, {}, {}
    for entry in sorted(os.listdir(image_root)):
        split = labelled.canonical_split(entry)
        if split is None or not os.path.isdir(os.path.join(image_root, entry)):
            continue
        records = []
        for stem, path in sorted(labelled.images_by_stem(os.path.join(image_root, entry), confine).items()):
            label = os.path.join(root, "labels", entry, stem + ".txt")
            total[split] = total.get(split, 0) + 1
            if os.path.isfile(label):
                boxes, classes = parse_label_file(confine.listed(label), check)
            else:
                unlabelled[split] = unlabelled.get(split, 0) + 1
                looked.setdefault(split, []).append(os.path.join("labels", entry, stem + ".txt"))
                boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int32)
            records.append(labelled.Record(path, boxes, classes, np.zeros(len(classes), bool)))
        parts[split] = records
    if "train" not in parts:
        raise ValueError(f"YOLO dataset {root!r} has no images/train/ folder (found: {labelled._found(image_root)}).")
    if total.get("train") and unlabelled.get("train") == total["train"]:  # training on zero boxes: a wrong layout
        miss = looked["train"]
        shown = ", ".join(miss[:LOOKED_SHOWN]) + (f", ... ({len(miss)} in all)" if len(miss) > LOOKED_SHOWN else "")
        raise labelled.LabelError(
            f"YOLO dataset {root!r}: no label file matches any of its {total['train']} train image(s); looked for "
            f"{shown} (labels/ holds: {labelled._found(os.path.join(root, 'labels'))}). Label folders must mirror "
            "images/<split>/ exactly, case included.")
    n_total, n_missing = sum(total.values()), sum(unlabelled.values())
    if n_missing * 2 > n_total:
        import warnings

        first = next(m[0] for m in looked.values())
        warnings.warn(f"YOLO dataset {root!r}: {n_missing} of {n_total} images have no label file and are treated "
                      f"as background (no objects), e.g. {first} is missing.", stacklevel=2)
    check.warn(root)
    return labelled.detection_source("yolo", root, names, parts, val_split=val_split, strict=strict,
                                     channels=channels, task=task)


labelled.register_layout("YOLO txt", _matches, open_yolo, TREE)
