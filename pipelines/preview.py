"""`preview`: a PNG grid of (augmented) samples with their boxes, masks or labels drawn."""

from __future__ import annotations

import math
import os

import numpy as np


def preview(source, out="preview.png", *, split="train", n=16, cols=None, augment=(), seed=0, **build_kw) -> str:
    """Writes a grid of `n` samples as the pipeline yields them, so a person can check data and labels.

    Args:
        source: Any source `pipelines.build` accepts.
        out: PNG path to write.
        split: Split to draw from.
        n: Number of samples.
        cols: Grid columns. Defaults to about sqrt(n).
        augment: Augmentations to apply (as in `build`), so their effect can be seen.
        seed: Seed for shuffling and augmentation.
        **build_kw: Other `pipelines.build` arguments (image_size, backend, task, ...).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patches

    from pipelines.core import build, inspect

    if n < 1:
        raise ValueError(f"n must be a positive int; received: {n!r}.")
    build_kw.update(normalization="scale", batch_size=None, deterministic=True)
    spec = inspect(source, **{k: v for k, v in build_kw.items() if k != "batch_size"})
    ds = build(source, split=split, augment=augment, seed=seed, shuffle=True, **build_kw)
    samples = list(ds.take(n).as_numpy_iterator())
    cols = cols or int(math.ceil(math.sqrt(len(samples))))
    rows = int(math.ceil(len(samples) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    names = spec.class_names
    cmap = plt.get_cmap("tab10")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (x, t) in zip(axes.flat, samples):
        img = np.clip(x, 0, 1)
        h, w = img.shape[:2]
        ax.imshow(img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        if spec.task == "detection":
            hard = t.get("difficult", np.zeros(len(t["classes"]), bool))  # VOC: drawn dashed
            for box, c, d in zip(t["boxes"], t["classes"], hard):
                if c < 0:
                    continue
                y0, x0, y1, x1 = box * [h, w, h, w]
                ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                               edgecolor=cmap(int(c) % 10), linewidth=1.5,
                                               linestyle="--" if d else "-"))
                label = names[c] if c < len(names) else str(c)
                ax.text(x0, y0 - 1, f"{label} (difficult)" if d else label, color=cmap(int(c) % 10), fontsize=6)
        elif spec.task == "segmentation":
            for c in np.unique(t):
                if c in (0, 255):
                    continue
                ax.contour((t == c).astype(np.float32), levels=[0.5], colors=[cmap(int(c) % 10)], linewidths=1.2)
            if (t == 255).any():
                ax.contour((t == 255).astype(np.float32), levels=[0.5], colors=["white"], linewidths=0.8,
                           linestyles="dashed")
            ax.set_title(", ".join(sorted({names[c] if c < len(names) else str(c) for c in np.unique(t) if c not in (0, 255)})),
                         fontsize=6)
        else:
            t = int(t)
            ax.set_title(names[t] if t < len(names) else str(t), fontsize=7)
    fig.suptitle(f"{spec.source} [{split}] augment={list(augment) if not hasattr(augment, 'names') else list(augment.names)}",
                 fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
