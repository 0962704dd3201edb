"""PNG report: test images beside their true and predicted masks."""

from __future__ import annotations

import os

import numpy as np

IGNORE_COLOR = (1.0, 1.0, 1.0)


def palette(num_classes):
    """An RGB colour per class in [0, 1]: black background, then distinct hues."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    colors = [(0.0, 0.0, 0.0)] + [tuple(cmap(i % 20)[:3]) for i in range(max(num_classes - 1, 0))]
    return np.asarray(colors[:num_classes], np.float32)


def colorize(mask, num_classes, ignore_index=255):
    """`[H, W]` class ids -> `[H, W, 3]` colours; `ignore_index` (and unknown ids) white."""
    mask = np.asarray(mask).astype(np.int64)
    colors = palette(num_classes)
    out = np.empty(mask.shape + (3,), np.float32)
    out[:] = IGNORE_COLOR
    known = (mask >= 0) & (mask < num_classes) & (mask != ignore_index)
    out[known] = colors[mask[known]]
    return out


def displayable(image, normalization=None):
    """Undoes the pipeline's normalisation so the image shows as it was ([0, 1] RGB)."""
    image = np.asarray(image, np.float32)
    norm = normalization or {}
    if norm.get("kind") == "standardize" and norm.get("mean") is not None:
        image = image * np.asarray(norm["std"], np.float32) + np.asarray(norm["mean"], np.float32)
        if image.max() > 1.5:
            image = image / 255.0
    elif norm.get("kind") == "none" or image.max() > 1.5:
        image = image / 255.0
    image = np.clip(image, 0.0, 1.0)
    return image[..., 0] if image.shape[-1] == 1 else image


def mask_report(images, true_masks, pred_masks, path, *, num_classes, class_names=None, normalization=None,
                ignore_index=255):
    """Writes a PNG with one row per image: the image, the true mask and the predicted mask.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n + 0.6), squeeze=False)
    for row, (img, true, pred) in enumerate(zip(images, true_masks, pred_masks)):
        panels = (displayable(img, normalization), colorize(true, num_classes, ignore_index),
                  colorize(pred, num_classes, ignore_index))
        for col, (panel, title) in enumerate(zip(panels, ("image", "true mask", "predicted mask"))):
            ax = axes[row, col]
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
    names = list(class_names or [str(i) for i in range(num_classes)])
    handles = [Patch(color=c, label=name) for c, name in zip(palette(num_classes), names)]
    handles.append(Patch(facecolor=IGNORE_COLOR, edgecolor="0.5", label="ignored"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (2.5 * n + 0.6), 1, 1))
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return os.fspath(path)


def model_mask_report(model, dataset, path, *, num_classes, class_names=None, normalization=None, count=6):
    """Predicts the first `count` images of a `(images, masks)` dataset and writes `mask_report`."""
    images, trues = [], []
    for x, y in dataset:
        images.extend(np.asarray(x))
        trues.extend(np.asarray(y))
        if len(images) >= count:
            break
    if not images:
        raise ValueError("The dataset has no examples to report on.")
    images, trues = np.stack(images[:count]), np.stack(trues[:count])
    preds = np.argmax(np.asarray(model.predict_on_batch(images)), axis=-1)
    return mask_report(images, trues.reshape(preds.shape), preds, path, num_classes=num_classes,
                       class_names=class_names, normalization=normalization)
