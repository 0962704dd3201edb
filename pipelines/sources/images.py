"""Image-file helpers shared by every file-based reader: listing, validation and decoding.

Files are checked before training: each one is opened and fully decoded once with
Pillow, so a corrupt file never crashes an epoch. Unreadable ones are skipped with
a warning naming each file and a final count, or refused with `strict=True`.
"""

from __future__ import annotations

import collections
import os
import warnings

import tensorflow as tf

# Extensions treated as images; anything else in a folder is ignored silently.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
# Formats tf.io.decode_image reads (Pillow format names).
DECODABLE = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "MPO")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class CorruptImageError(ValueError):
    """A file with an image extension that cannot be decoded."""


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def list_images(folder: str) -> list[str]:
    """Image files directly in `folder` (sorted, non-image extensions ignored)."""
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if is_image_file(f))


def probe(path: str):
    """Decodes `path` fully; returns `((height, width), is_gray)` or raises CorruptImageError."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            raise CorruptImageError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as img:
            fmt = img.format
            if fmt not in DECODABLE:
                raise CorruptImageError(f"{path}: unsupported format {fmt} (readable: {', '.join(DECODABLE)})")
            img.load()
            return (img.height, img.width), img.mode in GRAY_MODES
    except CorruptImageError:
        raise
    except UnidentifiedImageError:
        raise CorruptImageError(f"{path}: not an image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImageError(f"{path}: unreadable ({e})") from None


_PROBE_CACHE: dict = {}


def check_images(paths, *, strict=False):
    """Probes every file (cached by path, size and mtime).

    Returns:
        `(good_paths, sizes, all_gray)`: the readable files in order, their
        `(H, W)`, and whether every one is grayscale.

    Raises:
        CorruptImageError: with `strict=True`, naming the first bad file.
    """
    good, sizes, gray, bad = [], [], True, []
    for p in paths:
        st = os.stat(p)
        key = (p, st.st_size, st.st_mtime_ns)
        if key not in _PROBE_CACHE:
            try:
                _PROBE_CACHE[key] = probe(p)
            except CorruptImageError as e:
                _PROBE_CACHE[key] = e
        result = _PROBE_CACHE[key]
        if isinstance(result, CorruptImageError):
            if strict:
                raise CorruptImageError(f"Corrupt or unreadable image (strict=True): {result}")
            bad.append(str(result))
            continue
        good.append(p)
        sizes.append(result[0])
        gray = gray and result[1]
    if bad:
        for msg in bad:
            warnings.warn(f"Skipping {msg}", stacklevel=3)
        warnings.warn(f"Skipped {len(bad)} corrupt or unreadable image file(s) of {len(bad) + len(good)}.", stacklevel=3)
    return good, sizes, gray


def common_size(sizes):
    """`(H, W)` if all sizes agree, else `(None, None)`; also the most common size."""
    counts = collections.Counter(sizes)
    top = counts.most_common(1)[0][0] if counts else (None, None)
    return (top if len(counts) == 1 else (None, None)), top


def decode(path, channels: int):
    """tf: reads and decodes one image file to uint8 [H, W, channels]."""
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    if channels == 1:
        img = tf.image.rgb_to_grayscale(img)
    img.set_shape([None, None, channels])
    return img
