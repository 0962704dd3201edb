"""The albumentations backend: its catalogue, per example through `tf.numpy_function`.

Boxes and masks go through albumentations' own `bboxes` / `mask` parameters
(nearest-neighbour for masks). Each example gets its own seed from the pipeline
seed, so a seeded pipeline is reproducible with this backend too.

Composed pipelines are reused from a pool (one per concurrent call), not a
`threading.local`: tf.data runs `numpy_function` on its own threads, whose Python
thread state (and so any thread-local) is discarded after every call, which
rebuilt the `A.Compose` for every image (~0.5 ms, more than the augmentation).
"""

from __future__ import annotations

import collections
import queue
import random

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
_POOLS: dict = collections.defaultdict(queue.SimpleQueue)  # (policy, out_hw, with_boxes) -> idle A.Compose


def compose(policy, out_hw, with_boxes=False):
    """The `A.Compose` equivalent of `policy` producing `out_hw` images."""
    import albumentations as A
    import cv2

    h, w = out_hw
    exact = cv2.INTER_NEAREST_EXACT  # plain INTER_NEAREST resizes masks half a pixel off the image
    ops = []
    if "flip" in policy:
        ops.append(A.HorizontalFlip(p=policy.flip_prob))
    if "crop" in policy:
        ops.append(A.RandomResizedCrop(size=(h, w), scale=policy.crop_scale, ratio=policy.crop_ratio,
                                       mask_interpolation=exact, p=1.0))
    else:
        ops.append(A.Resize(h, w, mask_interpolation=exact))
    if "affine" in policy:
        ops.append(A.Affine(scale=policy.scale, translate_percent=(-policy.shift, policy.shift),
                            rotate=(-policy.rotate, policy.rotate), shear={"x": (-policy.shear, policy.shear), "y": 0},
                            fill=0, fill_mask=255, mask_interpolation=cv2.INTER_NEAREST, p=1.0))
    if "color" in policy:
        ops.append(A.ColorJitter(brightness=policy.brightness, contrast=policy.contrast,
                                 saturation=policy.saturation, hue=policy.hue, p=1.0))
    if "distort" in policy:
        if policy.distort_kind == "perspective":
            ops.append(A.Perspective(scale=(0.0, policy.distort), fill=0, fill_mask=255, p=1.0))
        elif policy.distort_kind == "elastic":
            ops.append(A.ElasticTransform(alpha=policy.distort * 300, sigma=8, fill_mask=255, p=1.0))
        else:
            ops.append(A.GridDistortion(distort_limit=policy.distort * 3, fill_mask=255, p=1.0))
    bbox = (A.BboxParams(format="albumentations", label_fields=["classes"], min_visibility=policy.min_visibility,
                         clip=True, filter_invalid_bboxes=True) if with_boxes else None)
    return A.Compose(ops, bbox_params=bbox)


def _call(policy, out_hw, with_boxes, seed, **data):
    """Runs a pooled `A.Compose` on `data`, seeded with `seed` (thread-safe)."""
    pool = _POOLS[(policy, tuple(out_hw), with_boxes)]
    try:
        aug = pool.get_nowait()
    except queue.Empty:
        aug = compose(policy, out_hw, with_boxes)
    try:
        # One generator pair for every transform: 5x cheaper than Compose.set_random_seed.
        aug.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return aug(**data)
    finally:
        pool.put(aug)


GROUP = 8  # fixed-shape examples per numpy_function call: amortises tf.data's per-call cost


def _run_one(policy, out_hw, boxes, seed, image, *targets):
    """albumentations on one example (numpy in, numpy out); boxes `[ymin, xmin, ymax, xmax]`."""
    squeeze = image.ndim == 3 and image.shape[-1] == 1
    kw = {"image": image[..., 0] if squeeze else image}
    if boxes:
        b, c = targets
        keep = c >= 0
        kw["bboxes"] = np.clip(b[keep][:, [1, 0, 3, 2]], 0.0, 1.0).reshape(-1, 4)
        kw["classes"] = c[keep]
    elif targets:
        kw["mask"] = targets[0]
    out = _call(policy, out_hw, boxes, int(seed) % (2**32), **kw)
    img = out["image"][..., None] if squeeze else out["image"]
    if boxes:
        bb = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]]
        return img, bb, np.asarray(out["classes"], np.int32).reshape(-1)
    if targets:
        return img, out["mask"].astype(targets[0].dtype)
    return (img,)


def _map_fn(policy, out_hw, boxes, grouped):
    """The tf.data map function over `(example, seed)` (or a group of GROUP of them)."""

    def run(seeds, *arrays):
        if not grouped:
            return _run_one(policy, out_hw, boxes, seeds, *arrays)
        outs = [_run_one(policy, out_hw, boxes, s, *one) for s, *one in zip(seeds, *arrays)]
        return tuple(np.stack(parts) for parts in zip(*outs))

    def fn(ex, s):
        ex = dict(ex)
        image = ex["image"]
        keys = ["boxes", "classes"] if boxes else (["mask"] if "mask" in ex else [])
        dtypes = [image.dtype] + [ex[k].dtype for k in keys]
        outs = tf.numpy_function(run, [s, image] + [ex[k] for k in keys], dtypes, stateful=False)
        lead = [None] if grouped else []
        ex["image"] = tf.ensure_shape(outs[0], [*lead, *out_hw, image.shape[-1]])
        if boxes:
            ex["boxes"], ex["classes"] = tf.ensure_shape(outs[1], [None, 4]), tf.ensure_shape(outs[2], [None])
        elif keys:
            ex["mask"] = tf.ensure_shape(outs[1], [*lead, *out_hw])
        return ex

    return fn


def apply(ds, policy, out_hw, task, seed):
    """Maps the albumentations pipeline over unbatched examples (parallel, seeded).

    Fixed-shape examples (no boxes) go GROUP to a call; examples with boxes one at a time.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    boxes = task == "detection"
    ds = tf.data.Dataset.zip(ds, seeds)
    fixed = all(spec.shape.is_fully_defined() for spec in ds.element_spec[0].values())
    if boxes or not fixed:
        return ds.map(_map_fn(policy, out_hw, boxes, False), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(GROUP).map(_map_fn(policy, out_hw, boxes, True), num_parallel_calls=AUTOTUNE)
    return ds.unbatch()
