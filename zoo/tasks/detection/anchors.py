"""Anchor sizes by k-means on box shapes with the distance `1 - IoU` (Redmon & Farhadi 2017)."""

from __future__ import annotations

import numpy as np

from zoo.tasks.detection.boxes import shape_iou


def kmeans_anchors(sizes, k, *, iterations=100, seed=0):
    """Clusters box sizes into `k` anchors, using `1 - IoU` as the distance.

    Args:
        sizes: `[N, 2]` box `(h, w)` sizes (normalised), or `[N, 4]` corner boxes.
        k: Number of anchors.
        iterations: Maximum Lloyd iterations.
        seed: Seed of the initial centroids (k distinct boxes).

    Returns:
        `[k, 2]` float32 `(h, w)` anchors sorted by area.

    Raises:
        ValueError: if `k` is not a positive integer or there are fewer than `k` boxes.
    """
    sizes = np.asarray(sizes, np.float64)
    if sizes.ndim == 2 and sizes.shape[1] == 4:
        sizes = np.stack([sizes[:, 2] - sizes[:, 0], sizes[:, 3] - sizes[:, 1]], axis=1)
    if sizes.ndim != 2 or sizes.shape[1] != 2:
        raise ValueError(f"`sizes` must be [N, 2] (h, w) or [N, 4] boxes. Received shape {sizes.shape}.")
    sizes = sizes[(sizes[:, 0] > 0) & (sizes[:, 1] > 0)]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be an integer >= 1. Received: k={k!r}")
    if len(sizes) < k:
        raise ValueError(f"Need at least k={k} non-empty boxes for k-means; got {len(sizes)}.")
    rng = np.random.default_rng(seed)
    centroids = sizes[rng.choice(len(sizes), k, replace=False)]
    assign = None
    for _ in range(iterations):
        new = np.argmax(shape_iou(sizes, centroids), axis=1)  # nearest = smallest 1 - IoU
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            if np.any(assign == j):
                centroids[j] = np.median(sizes[assign == j], axis=0)
    order = np.argsort(centroids[:, 0] * centroids[:, 1])
    return centroids[order].astype("float32")


def mean_best_iou(sizes, anchors):
    """Average over boxes of the best IoU with any anchor (how well anchors fit the data)."""
    sizes = np.asarray(sizes, np.float64)
    if sizes.shape[-1] == 4:
        sizes = np.stack([sizes[:, 2] - sizes[:, 0], sizes[:, 3] - sizes[:, 1]], axis=1)
    return float(np.mean(np.max(shape_iou(sizes, anchors), axis=1)))
