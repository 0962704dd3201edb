"""A run's data: the source opened and described once (`open_data`), and one `make_dataset` for every task."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pipelines.augment import recipe as aug

# The train split's final metrics come from a spread sample of at least this many examples (or as many as the
# largest dev / test split): they are compared with the dev error, and 1/4 of 4,096 training images costs 1/4.
TRAIN_EVAL_EXAMPLES = 1024


@dataclasses.dataclass
class RunData:
    """A source opened once for a run; every dataset of the run is built from `opened`.

    Attributes:
        source: The source as the user gave it (a path, a name, arrays).
        opened: The opened `pipelines` source (`pipelines.build` reads it without opening it again).
        spec: Its `pipelines.DataSpec`, as the pipeline delivers it to the model input.
        build_kw: `pipelines.build` keywords fixed for the run (`strict`, `image_size`, `channels`,
            `train_dev`).
    """

    source: Any
    opened: Any
    spec: Any
    build_kw: dict

    def dataset(self, task, split, recipe, training, *, model=None, seed=0):
        """`make_dataset` for one split of this source."""
        return make_dataset(task, self.opened, split, recipe, self.spec, training, model=model, seed=seed,
                            **self.build_kw)


def spread_sample(ds, n_examples, limit, batch_size):
    """Every k-th batch of an unshuffled, batched `ds` so that about `limit` of its `n_examples` remain.

    Sources listed class by class keep every class. A `raw_targets` dataset (detection) is thinned the same way.
    """
    k = math.ceil(n_examples / max(int(limit), int(batch_size), 1))
    if k <= 1:
        return ds
    sampled = ds.shard(k, 0)
    raw = getattr(ds, "raw_targets", None)
    if raw is not None:
        sampled.raw_targets = raw.shard(k, 0)
    return sampled


def _describe(source, task, recipe, strict, image_size, channels, follow_symlinks=False):
    from pipelines import core

    opened = core.open_data(source, task=task.name, val_split=recipe.val_split, strict=strict, channels=channels,
                            follow_symlinks=follow_symlinks)
    spec = core.inspect(opened, task=task.name, image_size=image_size, channels=channels,
                        normalization=recipe.normalization, train_dev=recipe.train_dev)
    return opened, spec


def open_data(source, task, input_shape, recipe, *, strict=False, follow_symlinks=False) -> RunData:
    """Opens and describes `source` once, as the pipeline must deliver it to a model input of `input_shape`.

    Images are resized to an `(H, W, C)` input's size and converted to its channels (1 or 3). A task with an
    `input_shape` hook (sequence: `(H, W*C)`) given an explicit 2-D input other than that reads images as
    T rows of F gray pixels. No input shape: the source's own size and channels.

    Args:
        source: Anything `pipelines.build` reads.
        task: The `zoo.tasks.Task`.
        input_shape: The model's input shape without the batch axis, or None.
        recipe: Gives `val_split`, `normalization` and `train_dev`.
        strict: Refuse corrupt data instead of skipping it.
        follow_symlinks: Read files behind symlinks that leave the dataset folder.
    """
    shape = tuple(input_shape) if input_shape is not None else ()
    image_size = channels = None
    if len(shape) == 3:
        image_size = tuple(int(d) for d in shape[:2]) if None not in shape[:2] else None
        channels = int(shape[2]) if shape[2] in (1, 3) else None
    opened, spec = _describe(source, task, recipe, strict, image_size, channels, follow_symlinks)
    if (task.input_shape is not None and len(shape) == 2 and None not in shape
            and tuple(task.input_shape(spec.image_shape)) != shape):
        image_size, channels = tuple(int(d) for d in shape), 1
        opened, spec = _describe(source, task, recipe, strict, image_size, channels, follow_symlinks)
    build_kw = {"strict": strict}
    if recipe.train_dev:
        build_kw["train_dev"] = recipe.train_dev
    if image_size is not None:
        build_kw["image_size"] = image_size
    if channels is not None:
        build_kw["channels"] = channels
    return RunData(source=source, opened=opened, spec=spec, build_kw=build_kw)


def make_dataset(task, source, split, recipe, data_spec, training, **kw):
    """One split as `task`'s model takes it: the task's `make_dataset` hook, else `pipelines.build`.

    Both get the recipe's batch size, augmentation (training only), normalisation and dev split; a
    training split then gets the recipe's batch-level `pad_crop`.

    Args:
        task: The `zoo.tasks.Task`.
        source: Anything `pipelines.build` reads (a run passes its opened source).
        split: "train", "train_dev", "val" or "test".
        recipe: The run's `Recipe`.
        data_spec: The source's `DataSpec`.
        training: Shuffle and augment.
        **kw: `model=` (hooks that need it) and `pipelines.build` keywords (`seed`, `image_size`...).
    """
    import tensorflow as tf

    # every task's hook and pipelines.build map graph code written as such: AutoGraph would only cost time
    return tf.autograph.experimental.do_not_convert(_make_dataset)(task, source, split, recipe, data_spec, training,
                                                                  **kw)


def _make_dataset(task, source, split, recipe, data_spec, training, **kw):
    pipe_aug, local_aug = aug.from_recipe(recipe)
    if task.make_dataset is not None:
        ds = task.make_dataset(source, split, recipe, data_spec, training, **kw)
    else:
        import pipelines

        kw.pop("model", None)
        ds = pipelines.build(source, split=split, task=task.name, batch_size=recipe.batch_size,
                             augment=pipe_aug if training else (), shuffle=training,
                             normalization=recipe.normalization, val_split=recipe.val_split, **kw)
    if training and "pad_crop" in local_aug:
        ds = aug.pad_crop(ds, **local_aug["pad_crop"], seed=kw.get("seed"))
    return ds
