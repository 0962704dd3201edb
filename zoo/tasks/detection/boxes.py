"""Box formats and intersection over union.

Boxes are normalised corners `[ymin, xmin, ymax, xmax]` (the pipeline's and TFDS'
format) unless a function says otherwise; sizes are `(h, w)` pairs.
"""

from __future__ import annotations

import numpy as np


def iou(boxes1, boxes2):
    """Pairwise intersection over union.

    Args:
        boxes1: `[N, 4]` corner boxes.
        boxes2: `[M, 4]` corner boxes.

    Returns:
        `[N, M]` float64 array; 0 where a union is empty.
    """
    a = np.asarray(boxes1, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(boxes2, np.float64).reshape(-1, 4)[None, :, :]
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_h * inter_w
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def shape_iou(sizes1, sizes2):
    """IoU of `(h, w)` sizes placed on a common centre (anchor matching, k-means).

    Args:
        sizes1: `[N, 2]` sizes.
        sizes2: `[M, 2]` sizes.

    Returns:
        `[N, M]` float64 array.
    """
    a = np.asarray(sizes1, np.float64).reshape(-1, 2)[:, None, :]
    b = np.asarray(sizes2, np.float64).reshape(-1, 2)[None, :, :]
    inter = np.minimum(a[..., 0], b[..., 0]) * np.minimum(a[..., 1], b[..., 1])
    union = a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def corners_to_center(boxes):
    """`[..., 4]` corners -> `[..., 4]` `(cy, cx, h, w)`."""
    b = np.asarray(boxes, np.float64)
    return np.stack(
        [(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2, b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]],
        axis=-1,
    )


def center_to_corners(boxes):
    """`[..., 4]` `(cy, cx, h, w)` -> `[..., 4]` corners."""
    b = np.asarray(boxes, np.float64)
    return np.stack(
        [b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2, b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2],
        axis=-1,
    )
