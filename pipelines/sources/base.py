"""The reader registry: each source kind is one module that registers a detector and an opener.

A reader turns a user's `source` argument into a `Source`: facts about the data
plus `read(split) -> tf.data.Dataset` of unbatched example dicts:

- classification / embedding / sequence: `{"image": uint8|float [H, W, C] (or [D]), "label": int32}`
- detection: `{"image", "boxes": float32 [N, 4] normalised [ymin, xmin, ymax, xmax], "classes": int32 [N]}`
- segmentation: `{"image", "mask": uint8|int32 [H, W]}` (255 = ignore)

Adding a format (YOLO txt, COCO JSON, ...) is one module calling `register_reader`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import tensorflow as tf


@dataclasses.dataclass
class Source:
    """An opened data source.

    Attributes:
        kind: Reader name ("arrays", "npz", "folder", "tfds", ...).
        name: The source as the user gave it (printable).
        task: The task the targets fit.
        class_names: Class names, index = class id.
        splits: `{"train": n, "val": n, "test": n}` (canonical names only).
        read: `(split) -> tf.data.Dataset` of example dicts; `split` is a canonical
            name, or a reader-specific expression (TFDS slicing) where supported.
            Folder, .npz and array readers attach `read.labels(split)`: the split's labels in read
            order, without decoding an image (image-file readers also `read.paths(split)`).
        image_shape: Native `(H, W, C)` when every image has it, else `(None, None, C)`.
        scale: Factor that maps raw values to [0, 1] (1/255 for 8-bit images).
        max_boxes: Most boxes in one image (detection), if known.
        cache_key: Hashable identity for in-process caches (None: do not cache).
        extra: Reader-specific facts recorded in the DataSpec.
    """

    kind: str
    name: str
    task: str
    class_names: list
    splits: dict
    read: Callable[[str], tf.data.Dataset]
    image_shape: tuple
    scale: float = 1.0 / 255.0
    max_boxes: Optional[int] = None
    cache_key: Any = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return len(self.image_shape) == 3


@dataclasses.dataclass(frozen=True)
class Reader:
    name: str
    detect: Callable[[Any], bool]
    open: Callable[..., Source]
    priority: int = 0
    describe: str = ""


_READERS: list[Reader] = []


def register_reader(name, detect, open, *, priority=0, describe=""):
    """Registers a source kind. Readers with a higher `priority` are tried first.

    Args:
        name: The kind's name.
        detect: `(source) -> bool`, cheap: does this reader claim `source`?
        open: `(source, *, val_split, strict, channels, data_dir, task, follow_symlinks) -> Source`
            (accept `**_` for the ones it does not use).
        priority: Order among readers that could claim the same folder.
        describe: One phrase for the "unknown source" error.
    """
    global _READERS
    _READERS = [r for r in _READERS if r.name != name]
    _READERS.append(Reader(name, detect, open, priority, describe or name))
    _READERS.sort(key=lambda r: -r.priority)


MIN_CLASSIFICATION_CLASSES = 2


def open_source(source, **kw) -> Source:
    """Opens `source` with the first registered reader that claims it, and checks its class names.

    Keyword arguments go to the reader (`val_split`, `strict`, `channels`, `data_dir`, `task`,
    `follow_symlinks`: read files behind symlinks that leave a dataset folder; default False).
    """
    for reader in _READERS:
        if reader.detect(source):
            return check_source(reader.open(source, **kw))
    shown = source if isinstance(source, str) else type(source).__name__
    kinds = "; ".join(r.describe for r in _READERS)
    raise ValueError(f"Unknown data source {shown!r}; expected one of: {kinds}.")


def check_source(src: Source) -> Source:
    """Checks what every reader must deliver: printable class names, and >= 2 classes to classify.

    Raises:
        ValueError: one line naming the source and the bad name or count.
    """
    from pipelines.sources import paths

    for i, name in enumerate(src.class_names):
        paths.check_name(name, where=f"{src.name} (class {i})")
    # (0 names: a reader that cannot tell its classes, e.g. TFDS without a ClassLabel; the model decides.)
    if src.task == "classification" and 0 < len(src.class_names) < MIN_CLASSIFICATION_CLASSES:
        found = ", ".join(repr(n) for n in src.class_names) or "none"
        raise ValueError(f"{src.name}: classification needs >= {MIN_CLASSIFICATION_CLASSES} classes; "
                         f"found {len(src.class_names)} ({found}). Add a folder (or labels) for another class.")
    return src
