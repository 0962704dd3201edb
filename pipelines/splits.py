"""Train / val / test splitting: one seeded shuffle, small holdouts for large data.

Following the curriculum's train/dev/test advice, data without its own dev or
test split is shuffled once with `SPLIT_SEED` (independent of the training seed,
so the dev and test sets never change between runs) and cut into pieces from
the same distribution. Each holdout is `fraction` of the data, capped at
`max(10_000, 1%)` examples, so a million images split 98/1/1.
"""

from __future__ import annotations

import difflib

import numpy as np

SPLITS = ("train", "val", "test")
TRAIN_DEV = "train_dev"  # carved from "train" by `build(train_dev=...)`: the training distribution, never trained on
SPLIT_SEED = 0
# The one table of split names: every name a user, a folder or a file may give a split -> its canonical name.
SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
_ALIASES = {name: split for name, split in SPLIT_NAMES.items() if name != split}


def split_name(text: str) -> str | None:
    """The canonical split a name stands for ("Validation", "dev" -> "val"), or None (case-insensitive)."""
    return SPLIT_NAMES.get(str(text).lower())


def canonical(split: str) -> str:
    """Maps a split name or alias ("validation", "dev") to "train", "val" or "test"."""
    name = SPLIT_NAMES.get(split)
    if name is None:
        close = difflib.get_close_matches(str(split), list(SPLIT_NAMES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown split {split!r}; allowed: {', '.join(SPLITS)}.{hint}")
    return name


def holdout_count(n: int, fraction: float) -> int:
    """Examples held out for one of dev/test from `n`: `fraction` capped at max(10k, 1%)."""
    if not 0.0 <= fraction < 0.5:
        raise ValueError(f"val_split must be in [0, 0.5); received: {fraction!r}.")
    if fraction == 0 or n < 3:
        return 0
    k = max(1, int(round(n * fraction)))
    return min(k, max(10_000, int(round(0.01 * n))))


def split_indices(n: int, fraction: float, holdouts=("val", "test"), seed: int = SPLIT_SEED) -> dict:
    """Seeded permutation of `range(n)` cut into "train" plus each name in `holdouts`.

    Returns:
        `{name: sorted int64 index array}`; "train" gets what the holdouts leave.
    """
    perm = np.random.default_rng(seed).permutation(n)
    k = holdout_count(n, fraction)
    out, start = {}, 0
    for name in holdouts:
        out[name] = np.sort(perm[start:start + k])
        start += k
    out["train"] = np.sort(perm[start:])
    return out


def train_dev_mask(n: int, fraction: float, seed: int = SPLIT_SEED + 1) -> np.ndarray:
    """Boolean mask over the `n` training examples (in read order): True for the train-dev split.

    Args:
        n: Examples in the training split.
        fraction: Share carved out (capped like every holdout, see `holdout_count`).
        seed: Seed of the draw, independent of the dev/test split's.
    """
    if not 0.0 <= fraction < 0.5:
        raise ValueError(f"train_dev must be in [0, 0.5); received: {fraction!r}.")
    mask = np.zeros(n, bool)
    mask[split_indices(n, fraction, (TRAIN_DEV,), seed)[TRAIN_DEV]] = True
    return mask
