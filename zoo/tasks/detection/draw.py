"""Drawing predicted and true boxes on images, saved as a PNG."""

from __future__ import annotations

import numpy as np


def draw_detections(path, images, predictions, ground_truth=None, *, class_names=None, columns=4):
    """Writes a grid of images with true boxes (green, dashed) and predictions (red, with class and score).

    Args:
        path: Output PNG path.
        images: `[N, H, W, C]` images in [0, 1].
        predictions: list over images of `(boxes [D, 4], scores [D], classes [D])`, normalised corners.
        ground_truth: Optional list over images of `(boxes [G, 4], classes [G])`.
        class_names: Names of the class ids.
        columns: Images per row.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.clip(np.asarray(images, np.float32), 0, 1)
    n = len(images)
    cols = max(1, min(columns, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    name = (lambda c: class_names[int(c)]) if class_names else (lambda c: str(int(c)))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        h, w = img.shape[:2]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        if ground_truth is not None:
            for (y0, x0, y1, x1), c in zip(*ground_truth[i]):
                ax.add_patch(plt.Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                                           edgecolor="lime", linestyle="--", linewidth=1.2))
        for (y0, x0, y1, x1), s, c in zip(*predictions[i]):
            ax.add_patch(plt.Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                                       edgecolor="red", linewidth=1.2))
            ax.text(x0 * w, y0 * h, f"{name(c)} {s:.2f}", color="white", fontsize=6, va="bottom",
                    bbox={"facecolor": "red", "alpha": 0.6, "pad": 0.5, "linewidth": 0})
    fig.suptitle("true (green, dashed) vs predicted (red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
