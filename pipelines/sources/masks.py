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

from pipelines.sources import images, labelled, paths

TREE = "images/{train,val,test}/ + masks/{train,val,test}/*.png + classes.txt"
IGNORE = 255


def _matches(root):
    return os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "masks"))


def _load_mask(mask_path):
    """The mask's class-index array, or LabelError naming the file (corrupt, a bomb, a colour image)."""
    import warnings

    from PIL import Image

    try:
        if os.path.getsize(mask_path) == 0:
            raise labelled.LabelError(f"{mask_path}: unreadable mask (empty file).")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(mask_path) as m:
                limit = images.max_pixels()
                if m.width * m.height > limit:
                    raise labelled.LabelError(f"{mask_path}: mask is {m.width}x{m.height} pixels, over the limit of "
                                              f"{limit} (a decompression bomb?).")
                if m.mode not in MODES:
                    raise labelled.LabelError(f"{mask_path}: mask must be a grayscale or palette class-index PNG; "
                                              f"got mode {m.mode}.")
                m.load()
                return np.asarray(m)
    except labelled.LabelError:
        raise
    except MemoryError:
        raise labelled.LabelError(f"{mask_path}: unreadable mask (out of memory decoding it).") from None
    except Exception as exc:  # noqa: BLE001  Pillow raises many types on malformed files
        raise labelled.LabelError(f"{mask_path}: unreadable mask ({type(exc).__name__}: {exc}).") from None


MODES = ("L", "P", "1", "I", "I;16")


def check_mask(mask_path, image_path, num_classes):
    """Checks one mask against its image and the class list.

    Raises:
        LabelError: one line naming the mask: unreadable, not a class-index image, another size
            than its image, or a value that is neither a class id (0..N-1) nor 255 (ignore).
    """
    from PIL import Image

    arr = _load_mask(mask_path)
    try:
        with Image.open(image_path) as img:
            size = (img.height, img.width)
    except Exception:  # noqa: BLE001  a corrupt image: the pipeline's skip-and-count / strict rule handles it
        return
    if arr.shape[:2] != size:
        raise labelled.LabelError(f"{mask_path}: mask is {arr.shape[1]}x{arr.shape[0]} but its image "
                                  f"{os.path.basename(image_path)} is {size[1]}x{size[0]}.")
    ids = np.unique(arr).astype(np.int64)
    bad = [int(i) for i in ids if i != IGNORE and not 0 <= i < min(num_classes, IGNORE)]
    if bad:
        raise labelled.LabelError(f"{mask_path}: class id(s) {bad[:10]} beyond classes.txt (0..{num_classes - 1}, "
                                  f"{IGNORE} = ignore).")


_check_mask = check_mask  # the name older code used


def open_masks(root, *, val_split=0.1, strict=False, channels=None, task=None, follow_symlinks=False, **_):
    confine = paths.Confine(root, follow_symlinks)
    names_file = os.path.join(root, "classes.txt")
    if not os.path.isfile(names_file):
        raise ValueError(f"Mask-folder dataset {root!r} needs classes.txt (one class name per line).")
    names = labelled.read_names_file(confine.listed(names_file))
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
        for stem, image in sorted(labelled.images_by_stem(os.path.join(root, "images", entry), confine).items()):
            if stem not in masks:
                raise labelled.LabelError(f"{image}: no mask masks/{entry}/{stem}.png for this image.")
            check_mask(confine.listed(masks[stem]), image, len(names))
            pairs.append((image, masks[stem]))
        parts[split] = pairs
    if "train" not in parts:
        raise ValueError(f"Mask-folder dataset {root!r} has no images/train/ folder.")
    return labelled.mask_source("masks", root, names, parts, val_split=val_split, strict=strict,
                                channels=channels, task=task)


labelled.register_layout("image/mask folders", _matches, open_masks, TREE)
