"""`build` and `inspect`: one tf.data pipeline from any source to `(inputs, targets)` batches.

Order of operations: read -> channels / uniform size -> cache -> shuffle ->
[albumentations per example] -> pad boxes -> batch -> [tf augmentation per batch]
-> resize -> normalise -> prefetch. Caching, shuffle buffers, parallel maps and
prefetching are set here, never by callers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipelines import augment as augment_lib
from pipelines import normalize as normalize_lib
from pipelines import sharding
from pipelines import sources as sources_lib
from pipelines import splits as splits_lib
from pipelines.spec import DataSpec

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_MAX_BOXES = 100
SHUFFLE_BYTES = 256 * 2**20  # shuffle buffer budget for decoded examples
TASKS = ("classification", "detection", "segmentation", "embedding", "sequence")
_LABEL_TASKS = ("classification", "embedding", "sequence")

_SOURCES: dict = {}
_NORMS: dict = {}


def open_data(source, *, task=None, val_split=0.1, strict=False, channels=None, data_dir=None,
              follow_symlinks=False) -> sources_lib.Source:
    """Opens `source` once; `build` and `inspect` accept the result in place of the source.

    The keywords mean what they mean to `build`; later calls on the opened source must use the same
    `val_split`, `strict`, `channels` and `data_dir` (they are fixed at opening).
    """
    return _open(source, task=task, val_split=val_split, strict=strict, channels=channels, data_dir=data_dir,
                 follow_symlinks=follow_symlinks)


def _open(source, *, task, val_split, strict, channels, data_dir, follow_symlinks=False):
    if task is not None and task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; allowed: {', '.join(TASKS)}.")
    if isinstance(source, sources_lib.Source):  # opened once by the caller (`open_data`)
        src = source
    else:
        src = sources_lib.open_source(source, val_split=val_split, strict=strict, channels=channels,
                                      data_dir=data_dir, task=task, follow_symlinks=bool(follow_symlinks))
    if task is not None and task != src.task:
        if not (task in _LABEL_TASKS and src.task in _LABEL_TASKS):
            raise ValueError(f"Source {src.name!r} holds {src.task} data; it cannot feed task {task!r}.")
        src.task = task
    return src


def _size(image_size, src):
    if image_size is None:
        if not src.is_image:
            return None
        h, w = src.image_shape[:2]
        if h is None:
            common = src.extra.get("common_size")
            if not common:
                raise ValueError(f"Images in {src.name!r} differ in size; pass image_size=(H, W).")
            h, w = common
        return int(h), int(w)
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if len(image_size) == 3:
        image_size = image_size[:2]
    if len(image_size) != 2 or any(int(d) < 1 for d in image_size):
        raise ValueError(f"image_size must be an int or (height, width) of positive ints; received: {image_size!r}.")
    if not src.is_image:
        raise ValueError(f"image_size={image_size!r} given but {src.name!r} holds non-image inputs of shape {src.image_shape}.")
    return int(image_size[0]), int(image_size[1])


def _channels(channels, src):
    if channels is None or not src.is_image:
        return src.image_shape[-1] if src.is_image else None
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; received: {channels!r}.")
    return channels


def _prepare_fn(src, channels, size):
    """Per example: channel conversion, and resizing when source sizes differ."""
    native = src.image_shape[-1] if src.is_image else None
    resize = src.is_image and src.image_shape[0] is None

    def fn(ex):
        ex = dict(ex)
        img = ex["image"]
        if native == 1 and channels == 3:
            img = tf.image.grayscale_to_rgb(img)
        elif native == 3 and channels == 1:
            img = tf.cast(tf.image.rgb_to_grayscale(img), img.dtype)
        if resize:
            img = tf.cast(tf.image.resize(img, size, antialias=True), img.dtype)
            if "mask" in ex:
                ex["mask"] = tf.image.resize(ex["mask"][..., None], size, method="nearest")[..., 0]
        ex["image"] = img
        return ex

    return fn


def _pad_boxes(max_boxes):
    def fn(ex):
        boxes, classes = ex["boxes"][:max_boxes], ex["classes"][:max_boxes]
        n = tf.shape(classes)[0]
        ex = dict(ex)
        ex["boxes"] = tf.ensure_shape(tf.pad(boxes, [[0, max_boxes - n], [0, 0]]), [max_boxes, 4])
        ex["classes"] = tf.ensure_shape(tf.pad(classes, [[0, max_boxes - n]], constant_values=-1), [max_boxes])
        if "difficult" in ex:  # Pascal VOC: padded with False
            ex["difficult"] = tf.ensure_shape(tf.pad(ex["difficult"][:max_boxes], [[0, max_boxes - n]]), [max_boxes])
        return ex

    return fn


def _finalize_fn(task, norm, size, batched, is_image):
    def fn(ex):
        img = ex["image"]
        mask = ex.get("mask")
        if size is not None and is_image:
            if tuple(img.shape[-3:-1]) != tuple(size):
                img = tf.image.resize(tf.cast(img, tf.float32), size)
                if mask is not None:
                    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
        x = normalize_lib.apply(img, norm)
        if task == "sequence" and is_image and x.shape[-1] == 1:
            x = x[..., 0]
        if task == "detection":
            targets = {"boxes": tf.cast(ex["boxes"], tf.float32), "classes": tf.cast(ex["classes"], tf.int32)}
            if "difficult" in ex:
                targets["difficult"] = ex["difficult"]
            return x, targets
        if task == "segmentation":
            return x, tf.cast(mask, tf.int32)
        return x, tf.cast(ex["label"], tf.int32)

    return fn


@tf.autograph.experimental.do_not_convert  # graph code as written, as `build`'s maps (below): ~0.4 s of AutoGraph
def _normalization(src, kind, channels, size, train_dev=0.0):
    kind = normalize_lib.check_kind(kind)
    key = (src.cache_key, kind, channels, train_dev) if src.cache_key is not None else None
    if key is not None and key in _NORMS:
        return _NORMS[key]
    chans = channels if src.is_image else (src.image_shape[-1] if src.image_shape else 1)
    examples = None
    if kind == "standardize":
        prep = _prepare_fn(src, channels, size)
        ds = _read(src, "train", train_dev).take(normalize_lib.MAX_STATS_EXAMPLES)  # never train-dev examples
        ds = ds.map(lambda e: prep(e)["image"])
        if ds.element_spec.shape.is_fully_defined():  # batches: one numpy step per 256 examples, not per example
            ds = ds.batch(256)
        examples = ds.as_numpy_iterator()
    norm = normalize_lib.make(kind, scale=src.scale, channels=chans, train_examples=examples)
    if key is not None:
        _NORMS[key] = norm
    return norm


def _read(src, split, train_dev):
    """`src.read(split)`; with a `train_dev` fraction, "train" loses (and "train_dev" is) a seeded share of it."""
    name = splits_lib._ALIASES.get(split, split)
    if name == splits_lib.TRAIN_DEV and not train_dev:
        raise ValueError(f"Split {split!r} needs a train_dev fraction > 0 (zoo train --train-dev FRACTION).")
    if not train_dev or name not in ("train", splits_lib.TRAIN_DEV):
        return src.read(split)
    keep = tf.constant(splits_lib.train_dev_mask(int(src.splits["train"]), train_dev) == (name != "train"))

    def kept(i, _):
        return keep[i]

    def example(_, ex):
        return ex

    count = int(keep.numpy().sum())
    return src.read("train").enumerate().filter(kept).map(example).apply(tf.data.experimental.assert_cardinality(count))


def _split_sizes(src, train_dev):
    sizes = dict(src.splits)
    if train_dev and sizes.get("train"):
        carved = int(splits_lib.train_dev_mask(int(sizes["train"]), train_dev).sum())
        sizes["train"], sizes[splits_lib.TRAIN_DEV] = sizes["train"] - carved, carved
    return sizes


def _spec(src, size, channels, norm, max_boxes, split_seed=splits_lib.SPLIT_SEED, train_dev=0.0):
    if src.is_image:
        shape = (*size, channels)
        if src.task == "sequence" and channels == 1:
            shape = tuple(size)
    else:
        shape = tuple(src.image_shape)
    num = len(src.class_names)
    extra = dict(src.extra)
    if src.task == "segmentation":
        extra["ignore_index"] = 255
    return DataSpec(
        task=src.task, num_classes=num, class_names=list(src.class_names), image_shape=tuple(shape),
        splits=_split_sizes(src, train_dev), normalization=norm, source=src.name,
        max_boxes=max_boxes if src.task == "detection" else None, split_seed=split_seed, extra=extra,
    )


def inspect(source, *, task=None, image_size=None, normalization="scale", val_split=0.1, strict=False,
            channels=None, max_boxes=None, data_dir=None, follow_symlinks=False, train_dev=0.0,
            **_ignored) -> DataSpec:
    """Describes what `build` yields for `source` without building the dataset.

    Takes the same keyword arguments as `build` (those that do not change the
    description are accepted and ignored).

    Returns:
        A `DataSpec` (task, classes, input shape, split sizes, normalisation).
    """
    src = _open(source, task=task, val_split=val_split, strict=strict, channels=channels, data_dir=data_dir,
                follow_symlinks=follow_symlinks)
    size, chans = _size(image_size, src), _channels(channels, src)
    norm = _normalization(src, normalization, chans, size, train_dev)
    return _spec(src, size, chans, norm, max_boxes or src.max_boxes or DEFAULT_MAX_BOXES, train_dev=train_dev)


# The map functions below (and the augmentation ops) are graph code as written, with no Python control flow
# on tensors, so tf.data's AutoGraph conversion of them changes nothing; it cost ~1.2 CPU-s per run (train and
# test splits, flip + crop, 2-core CPU). Maps a caller adds to the returned dataset are converted as usual.
@tf.autograph.experimental.do_not_convert
def build(source, *, split="train", task=None, image_size=None, batch_size=32, augment=(), backend="auto",
          shuffle=None, seed=None, cache=True, normalization="scale", val_split=0.1, strict=False, channels=None,
          deterministic=False, max_boxes=None, data_dir=None, follow_symlinks=False,
          train_dev=0.0, autotune=False) -> tf.data.Dataset:
    """Builds the input pipeline for one split of a source.

    Args:
        source: `"tfds:NAME"` (TFDS, optionally `NAME/CONFIG:VERSION`), `"shapes/<config>"`,
            an image folder, a `.npz` (keras.datasets layout) or an `(x, y)` array pair.
        split: "train", "val" or "test" (aliases "validation", "dev"); for TFDS
            sources also any TFDS split expression such as `"train[:98%]"`.
        task: Task the targets must fit; defaults to the source's own.
        image_size: Output `(H, W)` or int. Defaults to the source's size.
        batch_size: Batch size; None yields unbatched examples.
        augment: Names from `pipelines.augment.NAMES` or a `pipelines.augment.Policy`.
            Applied to the "train" split only.
        backend: "auto", "tf" or "albumentations".
        shuffle: Shuffle examples; defaults to True for "train" only.
        seed: Seed for shuffling and augmentation. Defaults to a random seed.
        cache: Cache decoded examples in memory (True), in a file (a path), or not (False).
        normalization: "scale", "standardize" or "none" (see `pipelines.normalize`).
        val_split: Fraction held out for val (and test) where the source has none.
        strict: Refuse corrupt image files instead of skipping them.
        channels: 1 or 3 to convert images; defaults to the source's channels.
        deterministic: With a seed, make every run yield identical batches. Unshuffled pipelines always
            keep the source order (predictions line up with labels).
        max_boxes: Boxes per image after padding (detection). Defaults to the source's maximum.
        data_dir: TFDS data directory. Defaults to $TFDS_DATA_DIR or TFDS' default.
        follow_symlinks: Read images, masks, label files and split folders behind symlinks that
            lead outside the dataset folder (refused by default). Paths that label files name
            must stay inside it either way.
        train_dev: Fraction of the training split carved out (seeded, fixed between runs) as split
            "train_dev": the training distribution, never trained on (Ng's train-dev set). Defaults to 0.
        autotune: Run tf.data's autotuning thread (`tf.data.Options().autotune.enabled`). Off by default:
            with it, deleting an iterator that ran for a while (the end of `fit`, a finished evaluation) can
            block for up to 10 s with the CPU idle (TF 2.21); without it, parallel maps use one call per core
            and prefetch buffers grow as needed (BENCHMARKS.md, issue 24).

    Returns:
        A `tf.data.Dataset` of `(inputs, targets)`; see the README for target formats.
    """
    src = _open(source, task=task, val_split=val_split, strict=strict, channels=channels, data_dir=data_dir,
                follow_symlinks=follow_symlinks)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None; received: {batch_size!r}.")
    size, chans = _size(image_size, src), _channels(channels, src)
    norm = _normalization(src, normalization, chans, size, train_dev)
    training = split in ("train", "training") or str(split).startswith("train[")  # TFDS slices of train too
    policy, backend = augment_lib.resolve(augment, backend, src.task, src.is_image)
    if not training:
        policy = None
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    shuffle = training if shuffle is None else bool(shuffle)
    n_boxes = max_boxes or src.max_boxes or DEFAULT_MAX_BOXES

    ds = _read(src, split, train_dev)
    if src.is_image and (chans != src.image_shape[-1] or src.image_shape[0] is None):
        ds = ds.map(_prepare_fn(src, chans, size), num_parallel_calls=AUTOTUNE)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if shuffle:
        n = _split_sizes(src, train_dev).get(splits_lib._ALIASES.get(split, split)) or 10_000
        per_example = int(np.prod([d or 256 for d in (size or ()) ])) * (chans or 1) or 1024
        ds = ds.shuffle(max(1, min(n, SHUFFLE_BYTES // per_example)), seed=seed, reshuffle_each_iteration=True)
    if policy is not None and backend == "albumentations":
        ds = augment_lib.albu.apply(ds, policy, size, src.task, seed)
    if src.task == "detection":
        ds = ds.map(_pad_boxes(n_boxes), num_parallel_calls=AUTOTUNE)
    if batch_size is not None:
        ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    if policy is not None and backend == "tf":
        ds = augment_lib.tf_ops.apply(ds, policy, size, src.task, seed, batched=batch_size is not None)
    ds = ds.map(_finalize_fn(src.task, norm, size, batch_size is not None, src.is_image), num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = bool(autotune)
    # unshuffled splits keep the source order; so does a train-dev carve (its mask is by read position)
    options.deterministic = bool(deterministic) or not shuffle or bool(train_dev)
    name = splits_lib._ALIASES.get(split, split)
    # FILE needs a file per worker, and no zip with a Range or Random dataset (train-dev carve, augmentation
    # seeds): tf.data cannot FILE-shard those ("Did not find a shardable source"); DATA then.
    zipped = policy is not None or (bool(train_dev) and name in ("train", splits_lib.TRAIN_DEV))
    options.experimental_distribute.auto_shard_policy = sharding.policy(
        None if zipped else src.extra.get("files", {}).get(name))
    return ds.with_options(options)
