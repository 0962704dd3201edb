"""Segmentation mask folders.

    root/images/{train,val,test}/NAME.jpg
    root/masks/{train,val,test}/NAME.png    class-index PNG (grayscale or palette), 255 = ignore
    root/classes.txt                        class names, one per line (index = class id)

Every mask is checked when the source opens: a missing mask, a size that differs from
its image, or a class id beyond classes.txt is an error naming the file.
"""

from __future__ import annotations

import os

import numpy as np

from pipelines.sources import labelled

TREE = "images/{train,val,test}/ + masks/{train,val,test}/*.png + classes.txt"
IGNORE = 255


def _matches(root):
    return os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "masks"))


def _check_mask(mask_path, image_path, num_classes):
    from PIL import Image, UnidentifiedImageError

    try:
        m = Image.open(mask_path)
        m.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise labelled.LabelError(f"{mask_path}: unreadable mask ({exc}).") from None
    with m:
        if m.mode not in ("L", "P", "1", "I", "I;16"):
            raise labelled.LabelError(f"{mask_path}: mask must be a grayscale or palette class-index PNG; got mode {m.mode}.")
        arr = np.asarray(m)
    try:
        with Image.open(image_path) as img:
            size = (img.height, img.width)
    except (OSError, UnidentifiedImageError):
        return  # a corrupt image: the pipeline's skip-and-count / strict rule handles it
    if arr.shape[:2] != size:
        raise labelled.LabelError(f"{mask_path}: mask is {arr.shape[1]}x{arr.shape[0]} but its image "
                                  f"{os.path.basename(image_path)} is {size[1]}x{size[0]}.")
    ids = np.unique(arr)
    bad = [int(i) for i in ids if i != IGNORE and i >= num_classes]
    if bad:
        raise labelled.LabelError(f"{mask_path}: class id(s) {bad} beyond classes.txt (0..{num_classes - 1}, "
                                  f"{IGNORE} = ignore).")


def open_masks(root, *, val_split=0.1, strict=False, channels=None, task=None, **_):
    names_file = os.path.join(root, "classes.txt")
    if not os.path.isfile(names_file):
        raise ValueError(f"Mask-folder dataset {root!r} needs classes.txt (one class name per line).")
    names = labelled.read_names_file(names_file)
    parts = {}
    for entry in sorted(os.listdir(os.path.join(root, "images"))):
        split = labelled.canonical_split(entry)
        if split is None or not os.path.isdir(os.path.join(root, "images", entry)):
            continue
        masks = {os.path.splitext(f)[0]: os.path.join(root, "masks", entry, f)
                 for f in (os.listdir(os.path.join(root, "masks", entry))
                           if os.path.isdir(os.path.join(root, "masks", entry)) else [])
                 if f.lower().endswith(".png")}
        pairs = []
        for stem, image in sorted(labelled.images_by_stem(os.path.join(root, "images", entry)).items()):
            if stem not in masks:
                raise labelled.LabelError(f"{image}: no mask masks/{entry}/{stem}.png for this image.")
            _check_mask(masks[stem], image, len(names))
            pairs.append((image, masks[stem]))
        parts[split] = pairs
    if "train" not in parts:
        raise ValueError(f"Mask-folder dataset {root!r} has no images/train/ folder.")
    return labelled.mask_source("masks", root, names, parts, val_split=val_split, strict=strict,
                                channels=channels, task=task)


labelled.register_layout("image/mask folders", _matches, open_masks, TREE)
