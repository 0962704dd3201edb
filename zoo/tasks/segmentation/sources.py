"""TFDS segmentation datasets mapped to the zoo's format: uint8 image `[H, W, C]`, int32 mask `[H, W]`.

Each dataset stores its masks its own way (Oxford-IIIT Pet: a trimap 1 = pet, 2 = background, 3 = border).
A `TFDSSegmentation` entry says which features hold the image and mask and how raw mask values map to class ids
(0 = background first); values it does not list become 255 (ignored).

Importing this module registers a `pipelines` reader for the sources in `TFDS_SOURCES`, so
`pipelines.build("tfds:oxford_iiit_pet", task="segmentation", image_size=(128, 128))` (and `zoo train unet
--data tfds:oxford_iiit_pet --model-arg input_shape=128,128,3`) yields the mapped masks and class names.
"""

from __future__ import annotations

import dataclasses
import difflib

import numpy as np

IGNORE = 255


@dataclasses.dataclass(frozen=True)
class TFDSSegmentation:
    """How one TFDS dataset's examples become `(image, mask)`.

    Attributes:
        image_key: Feature holding the image.
        mask_key: Feature holding the mask (an Image feature `[H, W, 1]` or a tensor `[H, W]`).
        class_names: Names of the mapped class ids 0..N-1.
        label_map: Raw mask value -> class id (or 255 to ignore); unlisted values are ignored.
    """

    image_key: str
    mask_key: str
    class_names: tuple
    label_map: dict

    def lookup(self, size=256) -> np.ndarray:
        """A table `raw value -> class id` for raw values `0..size-1`."""
        table = np.full(size, IGNORE, np.int32)
        for raw, cls in self.label_map.items():
            table[int(raw)] = int(cls)
        return table


TFDS_SOURCES = {
    # Parkhi et al. 2012. Trimap: 1 = pet, 2 = background, 3 = not classified (the border around the pet).
    "oxford_iiit_pet": TFDSSegmentation(
        image_key="image", mask_key="segmentation_mask", class_names=("background", "pet", "border"),
        label_map={2: 0, 1: 1, 3: 2},
    ),
}


def register_tfds_source(name, spec: TFDSSegmentation):
    """Adds (or replaces) the mapping for TFDS dataset `name`."""
    TFDS_SOURCES[name] = spec
    return spec


def dataset_name(source: str) -> str:
    """`"tfds:oxford_iiit_pet:4.*.*"` or `"oxford_iiit_pet/config"` -> `"oxford_iiit_pet"`."""
    name = source[5:] if source.startswith("tfds:") else source
    return name.split(":")[0].split("/")[0]


def tfds_source(source: str) -> TFDSSegmentation:
    """The mapping for a TFDS source name; ValueError listing the known ones otherwise."""
    name = dataset_name(source)
    if name not in TFDS_SOURCES:
        close = difflib.get_close_matches(name, list(TFDS_SOURCES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"No segmentation mapping for TFDS dataset {name!r}.{hint} Known: {', '.join(sorted(TFDS_SOURCES))}; "
            "add one with zoo.tasks.segmentation.sources.register_tfds_source(name, TFDSSegmentation(...))."
        )
    return TFDS_SOURCES[name]


def remap_mask(raw, spec: TFDSSegmentation, size=None):
    """Raw mask values `[H, W]` or `[H, W, 1]` -> int32 class ids `[H, W]` (tf ops, for `Dataset.map`).

    Args:
        raw: The dataset's mask.
        spec: Its mapping.
        size: Optional `(H, W)` tensor; the mask is resized to it (nearest neighbour) when it differs.
    """
    import tensorflow as tf

    raw = tf.cast(raw, tf.int32)
    if raw.shape.rank == 3:
        raw = raw[..., 0]
    table = tf.constant(spec.lookup())
    in_range = tf.logical_and(raw >= 0, raw < table.shape[0])
    mask = tf.where(in_range, tf.gather(table, tf.clip_by_value(raw, 0, table.shape[0] - 1)), IGNORE)
    if size is None:
        return mask
    return tf.cond(
        tf.reduce_all(tf.equal(tf.shape(mask), size)),
        lambda: mask,
        lambda: tf.cast(tf.image.resize(mask[..., None], size, method="nearest")[..., 0], tf.int32),
    )


def map_example(example, spec: TFDSSegmentation):
    """One TFDS example dict -> `{"image": uint8 [H, W, C], "mask": int32 [H, W]}` (tf ops, for `Dataset.map`).

    The mask is resized (nearest neighbour) to the image when their sizes differ.
    """
    import tensorflow as tf

    image = example[spec.image_key]
    return {"image": image, "mask": remap_mask(example[spec.mask_key], spec, tf.shape(image)[:2])}


def _claims(source) -> bool:
    return isinstance(source, str) and source.startswith("tfds:") and dataset_name(source) in TFDS_SOURCES


def _open(source, *, task=None, **kw):
    """The pipeline's TFDS reader, with this module's mask mapping and class names on top."""
    import tensorflow as tf

    from pipelines.sources import tfds_source as tfds_reader

    src = tfds_reader.open_tfds(source, task=task, **kw)
    if task not in (None, "segmentation"):
        return src
    spec = tfds_source(source)
    read = src.read

    def mapped(split):
        return read(split).map(
            lambda ex: {**ex, "mask": remap_mask(ex["mask"], spec, tf.shape(ex["image"])[:2])},
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    src.read, src.task, src.class_names = mapped, "segmentation", list(spec.class_names)
    src.extra = {**src.extra, "mask_map": {str(k): int(v) for k, v in spec.label_map.items()}}
    return src


def install_reader() -> bool:
    """Registers the mapped TFDS segmentation reader with `pipelines` (False when pipelines is missing).

    Not under another Keras backend (KERAS_BACKEND=jax): `pipelines` is tf.data, and importing it there would
    import TensorFlow with the zoo.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    try:
        from pipelines.sources.base import register_reader
    except ImportError:
        return False
    register_reader(
        "tfds-segmentation", _claims, _open, priority=20,
        describe="a TFDS segmentation dataset with a mask mapping ('tfds:oxford_iiit_pet')",
    )
    return True


def load_tfds(source: str, split="train", *, data_dir=None, download=True, shuffle_files=False):
    """`tfds.load` of a segmentation dataset, mapped to `{"image", "mask"}` examples.

    Args:
        source: `"tfds:oxford_iiit_pet"` or `"oxford_iiit_pet"` (optionally with a config / version).
        split: A TFDS split expression (`"train"`, `"test[:50%]"`, ...).
        data_dir: TFDS data directory. Defaults to TFDS' own.
        download: Let TFDS download and prepare the dataset when it is not there yet.
        shuffle_files: Passed to `tfds.load`.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    spec = tfds_source(source)
    name = source[5:] if source.startswith("tfds:") else source
    ds = tfds.load(name, split=split, data_dir=data_dir, download=download, shuffle_files=shuffle_files)
    return ds.map(lambda ex: map_example(ex, spec), num_parallel_calls=tf.data.AUTOTUNE)


install_reader()
