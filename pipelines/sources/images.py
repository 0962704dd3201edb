"""Image-file helpers shared by every file-based reader: listing, validation and decoding.

Files are checked before training: each one is opened and fully decoded once with
Pillow, so a corrupt file never crashes an epoch. Unreadable ones are skipped with
a warning naming each file and a final count, or refused with `strict=True`. So is
an image with more pixels than `max_pixels()` (a decompression bomb: a small file that
decodes to gigabytes); it is refused from its header, before anything is decoded, and
since TensorFlow only ever decodes files that passed this check, it never sees one.
"""

from __future__ import annotations

import collections
import os
import warnings

import tensorflow as tf

from pipelines.sources.paths import one_line

# Extensions treated as images; anything else in a folder is ignored silently.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
# Formats tf.io.decode_image reads (Pillow format names).
DECODABLE = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "MPO")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def max_pixels() -> int:
    """The most pixels an image may have: Pillow's `Image.MAX_IMAGE_PIXELS` (about 89.5 M; set it to change)."""
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 0) or 2**62


class CorruptImageError(ValueError):
    """A file with an image extension that cannot be decoded."""


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def list_images(folder: str) -> list[str]:
    """Image files directly in `folder` (sorted, non-image extensions ignored)."""
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if is_image_file(f))


def _too_big(path, width, height, limit):
    return CorruptImageError(f"{path}: {width}x{height} = {width * height} pixels exceeds the limit of {limit} "
                             "(a decompression bomb?; raise PIL.Image.MAX_IMAGE_PIXELS to allow it)")


def probe(path: str):
    """Decodes `path` fully; returns `((height, width), is_gray)` or raises CorruptImageError.

    An image over `max_pixels()` is refused from its header, before it is decoded.
    """
    import warnings as _warnings

    from PIL import Image, UnidentifiedImageError

    limit = max_pixels()
    try:
        if os.path.getsize(path) == 0:
            raise CorruptImageError(f"{path}: empty file (0 bytes)")
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below instead
            with Image.open(path) as img:
                fmt = img.format
                if fmt not in DECODABLE:
                    raise CorruptImageError(f"{path}: unsupported format {fmt} (readable: {', '.join(DECODABLE)})")
                if img.width * img.height > limit:
                    raise _too_big(path, img.width, img.height, limit)
                img.load()
                return (img.height, img.width), img.mode in GRAY_MODES
    except CorruptImageError:
        raise
    except UnidentifiedImageError:
        raise CorruptImageError(f"{path}: not an image") from None
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: refused inside Image.open
        raise CorruptImageError(f"{path}: more pixels than the limit of {limit} (a decompression bomb?; "
                                f"Pillow: {one_line(str(e))})") from None
    except MemoryError:
        raise CorruptImageError(f"{path}: unreadable (out of memory decoding it)") from None
    except Exception as e:  # noqa: BLE001  Pillow's decoders raise many types on malformed files
        raise CorruptImageError(f"{path}: unreadable ({type(e).__name__}: {one_line(str(e))})") from None


_PROBE_CACHE: dict = {}


def _probe_cached(path):
    """`probe(path)`'s result or its CorruptImageError, cached by path, size, mtime and pixel limit."""
    try:
        st = os.stat(path)
    except OSError as exc:  # vanished, or a dangling symlink
        return CorruptImageError(f"{path}: cannot be read ({exc.strerror or exc})")
    key = (path, st.st_size, st.st_mtime_ns, max_pixels())
    if key not in _PROBE_CACHE:
        try:
            _PROBE_CACHE[key] = probe(path)
        except CorruptImageError as e:
            _PROBE_CACHE[key] = e
    return _PROBE_CACHE[key]


def check_images(paths, *, strict=False):
    """Probes every file (cached by path, size and mtime).

    Returns:
        `(good_paths, sizes, all_gray)`: the readable files in order, their
        `(H, W)`, and whether every one is grayscale.

    Raises:
        CorruptImageError: with `strict=True`, naming the first bad file.
    """
    return tally(paths, (_probe_cached(p) for p in paths), strict=strict)


def tally(paths, results, *, strict=False):
    """`(good_paths, sizes, all_gray)` from per-file probe results (`((H, W), is_gray)` or a
    `CorruptImageError`): one warning per unreadable file and a final count, or the first error with `strict`."""
    good, sizes, gray, bad = [], [], True, []
    for p, result in zip(paths, results):
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
            warnings.warn(f"Skipping {msg}", stacklevel=4)
        warnings.warn(f"Skipped {len(bad)} corrupt or unreadable image file(s) of {len(bad) + len(good)}.", stacklevel=4)
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
