"""`Policy`: which augmentations run and how strongly, as plain data."""

from __future__ import annotations

import dataclasses
import difflib

NAMES = ("flip", "crop", "color", "distort")
DISTORT_KINDS = ("perspective", "elastic", "grid")


@dataclasses.dataclass(frozen=True)
class Policy:
    """Augmentation strengths. A transform runs when its name is in `names`.

    Attributes:
        names: Enabled transforms, a subset of `NAMES`.
        flip_prob: Probability of a horizontal flip.
        crop_scale: Range of the crop's area as a fraction of the image (random resized crop).
        crop_ratio: Range of the crop's aspect ratio (width / height).
        brightness: Max brightness shift as a fraction of the value range.
        contrast: Max relative contrast change.
        saturation: Max relative saturation change.
        hue: Max hue rotation as a fraction of a full turn.
        distort: Strength of the distortion (perspective: max corner shift as a
            fraction of the side; elastic/grid: albumentations' scale).
        distort_kind: "perspective" (both backends), "elastic" or "grid" (albumentations).
        min_visibility: Boxes keeping less than this fraction of their area are dropped.
    """

    names: tuple = ()
    flip_prob: float = 0.5
    crop_scale: tuple = (0.5, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05
    distort: float = 0.1
    distort_kind: str = "perspective"
    min_visibility: float = 0.3

    def __post_init__(self):
        names = tuple(self.names)
        for n in names:
            check_name(n)
        object.__setattr__(self, "names", tuple(n for n in NAMES if n in names))
        if self.distort_kind not in DISTORT_KINDS:
            raise ValueError(f"Unknown distort_kind {self.distort_kind!r}; allowed: {', '.join(DISTORT_KINDS)}.")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1; received: {self.crop_scale!r}.")

    def __contains__(self, name):
        return name in self.names

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_name(name):
    if name not in NAMES:
        close = difflib.get_close_matches(str(name), NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown augmentation {name!r}; allowed: {', '.join(NAMES)}.{hint}")
    return name


def as_policy(augment) -> Policy | None:
    """`augment` (None, a name, names, or a Policy) as a Policy, or None when empty."""
    if augment is None:
        return None
    if isinstance(augment, Policy):
        return augment if augment.names else None
    if isinstance(augment, str):
        augment = [a for a in augment.replace(",", "+").split("+") if a]
    if isinstance(augment, dict):
        return as_policy(Policy(**augment))
    names = tuple(augment)
    return Policy(names=names) if names else None
