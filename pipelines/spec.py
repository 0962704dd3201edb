"""`DataSpec`: what a model and its export need to know about the data, as plain data."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class DataSpec:
    """Description of a data source as the pipeline delivers it.

    Attributes:
        task: "classification", "detection", "segmentation", "embedding" or "sequence".
        num_classes: Number of classes (identities for embedding; mask classes
            including background for segmentation).
        class_names: Names of the classes, index = class id.
        image_shape: `(H, W, C)` of the inputs the pipeline yields (`(D,)` for
            feature vectors, `(T, F)` for sequences).
        splits: `{split: number of examples}` for "train", "val" and "test".
        normalization: `{"kind": "scale"|"standardize"|"none", "scale": s,
            "mean": [...], "std": [...]}`; inputs are `(x * scale - mean) / std`
            where `x` is the raw pixel value (0-255 for images).
        source: The source as given (a string; "<arrays>" for in-memory arrays).
        max_boxes: Padded number of boxes per image (detection only).
        split_seed: The seed the train/val/test split was drawn with.
        extra: Source-specific facts (e.g. `{"ignore_index": 255}`).
    """

    task: str
    num_classes: int
    class_names: list
    image_shape: tuple
    splits: dict
    normalization: dict
    source: str
    max_boxes: Optional[int] = None
    split_seed: int = 0
    extra: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown DataSpec fields {unknown}; allowed: {', '.join(sorted(names))}.")
        d = dict(d)
        d["image_shape"] = tuple(d["image_shape"])
        d["class_names"] = list(d["class_names"])
        return cls(**d)
