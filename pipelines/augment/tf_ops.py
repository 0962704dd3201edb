"""The native backend: vectorised, box- and mask-aware augmentation of whole batches.

Flip, random resized crop, affine (rotation, scale, shear, shift), perspective distortion and the final resize are one
homography per image, applied in a single `ImageProjectiveTransformV3` call per
batch (bilinear for images, nearest for masks so class ids never blend). Boxes
go through the inverse homography: their corners are mapped, enclosed, clipped,
and dropped when too little stays visible. Colour jitter (brightness, contrast,
saturation, hue) is one 3x3 matrix plus an offset per image. All randomness is
stateless, drawn from a per-batch seed, so a seeded pipeline is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# numpy, not tf.constant: no TF op may run at import (multi-worker collectives must be set up first).
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
_YIQ2RGB = np.linalg.inv(_RGB2YIQ).astype(np.float32)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _uniform(seed, shape, lo, hi):
    return tf.random.stateless_uniform(shape, seed, lo, hi)


def _square_to_quad(quad):
    """[B, 4, 2] corners (TL, TR, BR, BL) -> [B, 3, 3] homography from the unit square."""
    x0, x1, x2, x3 = (quad[:, i, 0] for i in range(4))
    y0, y1, y2, y3 = (quad[:, i, 1] for i in range(4))
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    den = dx1 * dy2 - dx2 * dy1
    g = (dx3 * dy2 - dx2 * dy3) / den
    h = (dx1 * dy3 - dx3 * dy1) / den
    rows = [x1 - x0 + g * x1, x3 - x0 + h * x3, x0, y1 - y0 + g * y1, y3 - y0 + h * y3, y0, g, h, tf.ones_like(g)]
    return tf.reshape(tf.stack(rows, axis=-1), [-1, 3, 3])


def _translate(b, t):
    m = tf.constant([[1.0, 0.0, t], [0.0, 1.0, t], [0.0, 0.0, 1.0]], tf.float32)
    return tf.broadcast_to(m, [b, 3, 3])


def _affine(seed, quad, size, policy):
    """Rotates, scales, shears and shifts the source quad [B, 4, 2] about its centre (LeCun et al. 1998's
    small planar distortions); `size` [B, 2] is the quad's width and height in input pixels."""
    b = tf.shape(quad)[0]
    s = tf.random.experimental.stateless_split(seed, 4)
    deg = math.pi / 180
    angle = _uniform(s[0], [b], -policy.rotate * deg, policy.rotate * deg)
    zoom = _uniform(s[1], [b], *policy.scale)
    shear = tf.tan(_uniform(s[2], [b], -policy.shear * deg, policy.shear * deg))
    move = _uniform(s[3], [b, 2], -policy.shift, policy.shift) * size
    c, sn = tf.cos(angle) / zoom, tf.sin(angle) / zoom  # source = A @ (output offset): inverse zoom
    a = tf.reshape(tf.stack([c, c * shear - sn, sn, sn * shear + c], -1), [-1, 2, 2])
    centre = tf.reduce_mean(quad, axis=1, keepdims=True)
    return tf.einsum("bij,bkj->bki", a, quad - centre) + centre - move[:, None, :]


def homography(seed, batch, in_hw, out_hw, policy):
    """Random output->input homographies in pixel-edge coordinates, [B, 3, 3]."""
    s = tf.random.experimental.stateless_split(seed, 5)
    hin, win = tf.cast(in_hw[0], tf.float32), tf.cast(in_hw[1], tf.float32)
    hout, wout = (float(d) for d in out_hw)
    if "crop" in policy:
        area = _uniform(s[0], [batch], *policy.crop_scale)
        log_r = _uniform(s[1], [batch], math.log(policy.crop_ratio[0]), math.log(policy.crop_ratio[1]))
        aspect = tf.exp(log_r) * (wout / hout) / (win / hin)  # keep the output's aspect on average
        w = tf.minimum(tf.sqrt(area * aspect), 1.0) * win
        h = tf.minimum(tf.sqrt(area / aspect), 1.0) * hin
        pos = _uniform(s[2], [batch, 2], 0.0, 1.0)
        x0, y0 = pos[:, 0] * (win - w), pos[:, 1] * (hin - h)
    else:
        w, h = tf.fill([batch], win), tf.fill([batch], hin)
        x0, y0 = tf.zeros([batch]), tf.zeros([batch])
    quad = tf.stack([tf.stack([x0, y0], -1), tf.stack([x0 + w, y0], -1),
                     tf.stack([x0 + w, y0 + h], -1), tf.stack([x0, y0 + h], -1)], axis=1)
    if "affine" in policy:
        quad = _affine(tf.random.experimental.stateless_fold_in(seed, 5), quad, tf.stack([w, h], -1), policy)
    if "distort" in policy and policy.distort_kind == "perspective":
        inward = tf.constant([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
        jitter = _uniform(s[3], [batch, 4, 2], 0.0, policy.distort)
        quad += inward * jitter * tf.stack([w, h], -1)[:, None, :]
    if "flip" in policy:
        flip = _uniform(s[4], [batch], 0.0, 1.0) < policy.flip_prob
        quad = tf.where(flip[:, None, None], tf.gather(quad, [1, 0, 3, 2], axis=1), quad)
    m = _square_to_quad(quad)
    return tf.matmul(m, tf.broadcast_to(tf.linalg.diag([1.0 / wout, 1.0 / hout, 1.0]), [batch, 3, 3]))


def _transform(images, m_edge, out_hw, interpolation, fill):
    b = tf.shape(images)[0]
    m = tf.matmul(tf.matmul(_translate(b, -0.5), m_edge), _translate(b, 0.5))  # pixel-centre indices
    m = m / m[:, 2:3, 2:3]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.reshape(m, [-1, 9])[:, :8], output_shape=tf.constant(out_hw, tf.int32),
        fill_value=tf.cast(fill, tf.float32), interpolation=interpolation, fill_mode="CONSTANT")


def _crop_resize(images, m_edge, in_hw, out_hw, method):
    """Same result as `_transform` for an axis-aligned `m_edge` (no perspective), via crop_and_resize."""
    hin, win = tf.cast(in_hw[0], tf.float32), tf.cast(in_hw[1], tf.float32)
    hout, wout = (float(d) for d in out_hw)
    a, c, e, f = m_edge[:, 0, 0], m_edge[:, 0, 2], m_edge[:, 1, 1], m_edge[:, 1, 2]
    x0, x1 = 0.5 * a + c - 0.5, a * (wout - 0.5) + c - 0.5  # input indices of the first/last output pixel
    y0, y1 = 0.5 * e + f - 0.5, e * (hout - 0.5) + f - 0.5
    boxes = tf.stack([y0 / (hin - 1), x0 / (win - 1), y1 / (hin - 1), x1 / (win - 1)], -1)
    return tf.image.crop_and_resize(images, boxes, tf.range(tf.shape(images)[0]), out_hw, method=method)


def transform_boxes(boxes, classes, m_edge, in_hw, out_hw, min_visibility):
    """Moves normalised boxes [B, N, 4] with the images; drops and compacts lost ones."""
    hin, win = tf.cast(in_hw[0], tf.float32), tf.cast(in_hw[1], tf.float32)
    hout, wout = (float(d) for d in out_hw)
    inv = tf.linalg.inv(m_edge)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    xs = tf.stack([xmin, xmax, xmax, xmin], -1) * win
    ys = tf.stack([ymin, ymin, ymax, ymax], -1) * hin
    pts = tf.stack([xs, ys, tf.ones_like(xs)], -1)  # [B, N, 4, 3]
    out = tf.einsum("bij,bnkj->bnki", inv, pts)
    ox, oy = out[..., 0] / out[..., 2] / wout, out[..., 1] / out[..., 2] / hout
    raw = tf.stack([tf.reduce_min(oy, -1), tf.reduce_min(ox, -1), tf.reduce_max(oy, -1), tf.reduce_max(ox, -1)], -1)
    clipped = tf.clip_by_value(raw, 0.0, 1.0)

    def area(b):
        return tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)

    keep = (classes >= 0) & (area(clipped) >= min_visibility * area(raw)) & (area(clipped) > 0)
    order = tf.argsort(tf.cast(keep, tf.int32), axis=-1, direction="DESCENDING", stable=True)
    keep = tf.gather(keep, order, batch_dims=1)
    boxes = tf.where(keep[..., None], tf.gather(clipped, order, batch_dims=1), 0.0)
    classes = tf.where(keep, tf.gather(classes, order, batch_dims=1), -1)
    return boxes, classes


def color(images, seed, policy, vmax):
    """Brightness, contrast, saturation and hue jitter on float images in [0, vmax]."""
    b = tf.shape(images)[0]
    s = tf.random.experimental.stateless_split(seed, 4)
    bright = _uniform(s[0], [b], -policy.brightness, policy.brightness) * vmax
    con = _uniform(s[1], [b], 1 - policy.contrast, 1 + policy.contrast)
    if images.shape[-1] == 3:
        sat = _uniform(s[2], [b], 1 - policy.saturation, 1 + policy.saturation)
        theta = _uniform(s[3], [b], -policy.hue, policy.hue) * 2 * math.pi
        c, sn, z, o = tf.cos(theta) * sat, tf.sin(theta) * sat, tf.zeros([b]), tf.ones([b])
        rot = tf.reshape(tf.stack([o, z, z, z, c, -sn, z, sn, c], -1), [-1, 3, 3])
        m = tf.matmul(tf.matmul(_YIQ2RGB[None], rot), _RGB2YIQ[None])  # acts on column vectors
        mean = tf.linalg.matvec(tf.reduce_mean(images, axis=[1, 2]), _LUMA)
        shape = tf.shape(images)
        flat = tf.reshape(images, [shape[0], -1, 3])  # contrast folded into the colour matrix
        out = tf.reshape(tf.matmul(flat, m * con[:, None, None], transpose_b=True), shape)
    else:
        mean = tf.reduce_mean(images, axis=[1, 2, 3])
        out = images * con[:, None, None, None]
    out += ((1 - con) * mean + bright)[:, None, None, None]
    return tf.clip_by_value(out, 0.0, vmax)


def augment_batch(ex, seed, policy, out_hw, vmax=255.0):
    """Augments one batch dict (`image` [B, H, W, C] plus `boxes`/`classes` or `mask`)."""
    ex = dict(ex)
    images = ex["image"]
    b, in_hw = tf.shape(images)[0], tf.shape(images)[1:3]
    s = tf.random.experimental.stateless_split(seed, 2)
    geometric = any(n in policy for n in ("flip", "crop", "affine", "distort"))
    if geometric or tuple(images.shape[1:3]) != tuple(out_hw):
        m = homography(s[0], b, in_hw, out_hw, policy)
        if "distort" in policy or "affine" in policy:
            ex["image"] = _transform(tf.cast(images, tf.float32), m, out_hw, "BILINEAR", 0.0)
            if "mask" in ex:
                mask = tf.cast(ex["mask"][..., None], tf.int32)
                ex["mask"] = _transform(mask, m, out_hw, "NEAREST", 255)[..., 0]
        else:  # axis-aligned: crop_and_resize is about 2x faster than the projective op
            ex["image"] = _crop_resize(images, m, in_hw, out_hw, "bilinear")
            if "mask" in ex:
                mask = _crop_resize(ex["mask"][..., None], m, in_hw, out_hw, "nearest")[..., 0]
                ex["mask"] = tf.cast(tf.round(mask), ex["mask"].dtype)
        if "boxes" in ex:
            ex["boxes"], ex["classes"] = transform_boxes(ex["boxes"], ex["classes"], m, in_hw, out_hw,
                                                         policy.min_visibility)
    else:
        ex["image"] = tf.cast(images, tf.float32)
    if "color" in policy:
        ex["image"] = color(ex["image"], s[1], policy, vmax)
    return ex


def apply(ds, policy, out_hw, task, seed, *, batched=True, vmax=255.0):
    """Maps `augment_batch` over `ds` with a fresh per-element seed each epoch."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def fn(ex, s):
        if batched:
            return augment_batch(ex, s, policy, out_hw, vmax)
        one = augment_batch({k: v[None] for k, v in ex.items()}, s, policy, out_hw, vmax)
        return {k: v[0] for k, v in one.items()}

    return tf.data.Dataset.zip(ds, seeds).map(fn, num_parallel_calls=AUTOTUNE)
