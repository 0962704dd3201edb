"""The `shapes` TFDS dataset: generated locally, deterministic, no download.

Configs: `classification` (one shape per image, 6 classes), `detection` (1-5
shapes with boxes), `segmentation` (per-pixel class masks, 0 = background) and
`glyphs` (procedural glyph identities for one-shot learning; train, validation
and test use disjoint identities). Images are 64x64 RGB.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds

from pipelines.shapes import render

SIZE = 64
MAX_OBJECTS = 5


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    """One variant of `shapes`.

    Attributes:
        task: The task the config is for.
        split_sizes: `{split: examples}` (glyphs: `{split: (identities, images per identity)}`).
        seed: Base seed; every example's rng derives from (seed, split, index).
    """

    task: str = "classification"
    split_sizes: dict = dataclasses.field(default_factory=dict)
    seed: int = 2024


def _png(array):
    """PNG bytes via Pillow (fast); TFDS stores them without re-encoding."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buf, format="PNG", compress_level=1)
    buf.seek(0)
    return buf


_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
_GLYPH_SPLITS = {"train": (600, 5), "validation": (100, 5), "test": (150, 5)}


class Shapes(tfds.core.GeneratorBasedBuilder):
    """Synthetic 64x64 shapes for classification, detection, segmentation and one-shot learning."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="classification", description="One shape per image; label = shape.",
                     task="classification", split_sizes={"train": 4000, "validation": 500, "test": 500}),
        ShapesConfig(name="detection", description="1-5 shapes per image with boxes and classes.",
                     task="detection", split_sizes={"train": 4000, "validation": 500, "test": 500}),
        ShapesConfig(name="segmentation", description="Per-pixel class masks, 0 = background.",
                     task="segmentation", split_sizes={"train": 3000, "validation": 500, "test": 500}),
        ShapesConfig(name="glyphs", description="Glyph identities, disjoint per split, for one-shot learning.",
                     task="embedding", split_sizes=_GLYPH_SPLITS),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        image = tfds.features.Image(shape=(SIZE, SIZE, 3), encoding_format="png")
        meta = {"task": cfg.task, "max_boxes": MAX_OBJECTS, "class_names": list(render.SHAPES)}
        if cfg.task == "detection":
            feats = {"image": image, "objects": tfds.features.Sequence({
                "bbox": tfds.features.BBoxFeature(), "label": tfds.features.ClassLabel(names=render.SHAPES)})}
        elif cfg.task == "segmentation":
            feats = {"image": image, "segmentation_mask": tfds.features.Image(shape=(SIZE, SIZE, 1), encoding_format="png")}
            meta["class_names"] = ["background"] + list(render.SHAPES)
        elif cfg.task == "embedding":
            total = sum(n for n, _ in cfg.split_sizes.values())
            names = [f"glyph{i:04d}" for i in range(total)]
            feats = {"image": image, "label": tfds.features.ClassLabel(names=names)}
            meta["class_names"] = names
        else:
            feats = {"image": image, "label": tfds.features.ClassLabel(names=render.SHAPES)}
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(feats),
            supervised_keys=None,
            metadata=tfds.core.MetadataDict(meta),
            homepage="https://github.com/tf-model-zoo",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated locally, nothing to download
        return {split: self._generate_examples(split) for split in self.builder_config.split_sizes}

    def _rng(self, split, index):
        return np.random.default_rng([self.builder_config.seed, _SPLIT_IDS[split], index])

    def _generate_examples(self, split):
        cfg = self.builder_config
        if cfg.task == "embedding":
            yield from self._glyphs(split)
            return
        for i in range(cfg.split_sizes[split]):
            rng = self._rng(split, i)
            if cfg.task == "classification":
                image, objects = render.compose_objects(rng, SIZE, 1, (9, 24))
                if not objects:
                    continue
                yield i, {"image": _png(image), "label": objects[0][0]}
            elif cfg.task == "detection":
                image, objects = render.compose_objects(rng, SIZE, int(rng.integers(1, MAX_OBJECTS + 1)), (6, 16))
                boxes = [(c, render.box_of(a, SIZE)) for c, a in objects]
                boxes = [(c, b) for c, b in boxes if b is not None]
                yield i, {"image": _png(image), "objects": {
                    "bbox": np.array([b for _, b in boxes], np.float32).reshape(-1, 4),
                    "label": np.array([c for c, _ in boxes], np.int64)}}
            else:
                image, objects = render.compose_objects(rng, SIZE, int(rng.integers(1, 5)), (7, 18))
                mask = np.zeros((SIZE, SIZE, 1), np.uint8)
                for c, a in objects:
                    mask[a > 0.5] = c + 1
                yield i, {"image": _png(image), "segmentation_mask": _png(mask)}

    def _glyphs(self, split):
        cfg = self.builder_config
        first = 0
        for s in _SPLIT_IDS:  # identities are numbered train, then validation, then test
            if s == split:
                break
            first += cfg.split_sizes[s][0]
        n_ids, per_id = cfg.split_sizes[split]
        for j in range(n_ids):
            ident = first + j
            strokes = render.glyph_strokes(np.random.default_rng([cfg.seed, 99, ident]))
            for k in range(per_id):
                rng = np.random.default_rng([cfg.seed, 100, ident, k])
                yield f"{ident}_{k}", {"image": _png(render.glyph_image(rng, strokes, SIZE)), "label": ident}
