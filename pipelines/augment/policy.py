"""`Policy`: which augmentations run and how strongly, as plain data."""

from __future__ import annotations

import dataclasses
import difflib

NAMES = ("flip", "crop", "affine", "color", "distort")
DISTORT_KINDS = ("perspective", "elastic", "grid")


@dataclasses.dataclass(frozen=True)
class Policy:
    """Augmentation strengths. A transform runs when its name is in `names`.

    Attributes:
        names: Enabled transforms, a subset of `NAMES`.
        flip_prob: Probability of a horizontal flip.
        crop_scale: Range of the crop's area as a fraction of the image (random resized crop).
        crop_ratio: Range of the crop's aspect ratio (width / height).
        rotate: Max rotation of "affine", in degrees either way.
        scale: Range of the "affine" zoom factor (above 1 enlarges the content).
        shift: Max "affine" translation, as a fraction of each side, either way.
        shear: Max horizontal shear of "affine", in degrees either way.
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
    rotate: float = 10.0
    scale: tuple = (0.9, 1.1)
    shift: float = 0.07
    shear: float = 0.0
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
        for key in ("crop_scale", "crop_ratio", "scale"):  # tuples: a Policy is hashable (albu pools by it)
            value = getattr(self, key)
            object.__setattr__(self, key, tuple(value) if isinstance(value, list) else value)
        _check_range("crop_scale", self.crop_scale, 0, 1)
        _check_range("crop_ratio", self.crop_ratio, 0, float("inf"))
        _check_range("scale", self.scale, 0, float("inf"))
        for key, hi in (("rotate", 180), ("shear", 60), ("shift", 1), ("flip_prob", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= hi:
                raise ValueError(f"Augmentation strength {key}={value!r} must be a number in [0, {hi}].")

    def __contains__(self, name):
        return name in self.names

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_range(key, value, lo, hi):
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not (ok and lo < value[0] <= value[1] <= hi):
        bound = "" if hi == float("inf") else f" <= {hi}"
        raise ValueError(f"Augmentation strength {key}={value!r} must be (low, high) with {lo} < low <= high{bound}.")


def check_name(name):
    if name not in NAMES:
        close = difflib.get_close_matches(str(name), NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown augmentation {name!r}; allowed: {', '.join(NAMES)}.{hint}")
    return name


STRENGTHS = tuple(f.name for f in dataclasses.fields(Policy) if f.name != "names")


def from_args(names, args: dict | None = None) -> Policy:
    """`Policy(names, **args)`; an unknown strength raises ValueError naming it and the allowed ones."""
    args = dict(args or {})
    for key in args:
        if key not in STRENGTHS:
            close = difflib.get_close_matches(str(key), STRENGTHS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown augmentation strength {key!r}; allowed: {', '.join(STRENGTHS)}.{hint}")
    return Policy(names=tuple(names), **args)


def as_policy(augment) -> Policy | None:
    """`augment` (None, a name, names, or a Policy) as a Policy, or None when empty."""
    if augment is None:
        return None
    if isinstance(augment, Policy):
        return augment if augment.names else None
    if isinstance(augment, str):
        augment = [a for a in augment.replace(",", "+").split("+") if a]
    if isinstance(augment, dict):
        augment = dict(augment)
        return as_policy(from_args(augment.pop("names", ()), augment))
    names = tuple(augment)
    return Policy(names=names) if names else None
