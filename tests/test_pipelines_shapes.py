"""The built-in `shapes` TFDS dataset, and the pipeline end to end on it (incl. preview)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import pipelines
from pipelines.shapes import Shapes, render

TINY = {
    "classification": {"train": 24, "validation": 6, "test": 6},
    "detection": {"train": 24, "validation": 6, "test": 6},
    "segmentation": {"train": 24, "validation": 6, "test": 6},
    "glyphs": {"train": (8, 3), "validation": (3, 3), "test": (4, 3)},
}


def tiny(config, data_dir):
    """Prepares a small version of `shapes/<config>` under the real name in `data_dir`."""
    cfg = next(c for c in Shapes.BUILDER_CONFIGS if c.name == config)
    full = cfg.split_sizes
    cfg.split_sizes = TINY[config]
    try:
        builder = tfds.builder(f"shapes/{config}", data_dir=str(data_dir))
        builder.download_and_prepare()
    finally:
        cfg.split_sizes = full
    return builder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_shapes")
    for config in TINY:
        tiny(config, d)
    return str(d)


def _examples(builder, split):
    return list(builder.as_dataset(split=split).as_numpy_iterator())


def test_generation_is_deterministic(tiny_dir, tmp_path):
    a = _examples(tfds.builder("shapes/detection", data_dir=tiny_dir), "train")
    b = _examples(tiny("detection", tmp_path), "train")
    key = lambda e: e["image"].tobytes()  # noqa: E731
    assert sorted(map(key, a)) == sorted(map(key, b))


def test_detection_boxes_cover_their_shapes(tiny_dir):
    exs = _examples(tfds.builder("shapes/detection", data_dir=tiny_dir), "train")
    counts = [len(e["objects"]["label"]) for e in exs]
    assert min(counts) >= 1 and max(counts) <= 5 and len(set(counts)) > 1
    for e in exs:
        b = e["objects"]["bbox"]
        assert np.all((b >= 0) & (b <= 1)) and np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
        assert np.all(e["objects"]["label"] < len(render.SHAPES))


def test_segmentation_masks_and_glyph_identities(tiny_dir):
    exs = _examples(tfds.builder("shapes/segmentation", data_dir=tiny_dir), "train")
    values = np.unique(np.concatenate([e["segmentation_mask"].ravel() for e in exs]))
    assert values[0] == 0 and values.max() <= len(render.SHAPES) and len(values) > 3
    glyphs = tfds.builder("shapes/glyphs", data_dir=tiny_dir)
    ids = {s: {int(e["label"]) for e in _examples(glyphs, s)} for s in ("train", "validation", "test")}
    assert [len(v) for v in ids.values()] == [8, 3, 4]
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"]) and not (ids["validation"] & ids["test"])


@pytest.mark.parametrize("config", list(TINY))
def test_build_every_config(tiny_dir, config):
    spec = pipelines.inspect(f"shapes/{config}", data_dir=tiny_dir, image_size=48)
    x, t = next(iter(pipelines.build(f"shapes/{config}", data_dir=tiny_dir, batch_size=4, seed=0,
                                     augment=("flip", "crop", "color", "distort"), image_size=48)))
    assert x.shape == (4, 48, 48, 3) and spec.image_shape == (48, 48, 3)
    if config == "detection":
        assert spec.max_boxes == 5 and t["boxes"].shape == (4, 5, 4) and t["classes"].shape == (4, 5)
    elif config == "segmentation":
        assert spec.num_classes == 7 and spec.class_names[0] == "background" and t.shape == (4, 48, 48)
    elif config == "glyphs":
        assert spec.task == "embedding" and spec.splits == {"train": 24, "val": 9, "test": 12}
    else:
        assert spec.num_classes == len(render.SHAPES) and t.shape == (4,)


@pytest.mark.parametrize("config", ["detection", "segmentation", "classification"])
def test_preview_draws_a_grid(tiny_dir, tmp_path, config):
    out = pipelines.preview(f"shapes/{config}", str(tmp_path / "p.png"), n=6, data_dir=tiny_dir,
                            augment=("flip", "crop"))
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[0] > 200 and img.std() > 10


@pytest.mark.slow
def test_full_config_loads_through_tfds():
    # Uses the session's TFDS data dir (tests/conftest.py), so it is generated once per run.
    builder = pipelines.shapes.prepare("classification")
    ds = tfds.load("shapes/classification", split="test", data_dir=builder.data_dir.split("/shapes/")[0])
    labels = [int(e["label"]) for e in ds]
    assert len(labels) == 500 and set(labels) == set(range(len(render.SHAPES)))
    assert pipelines.inspect("shapes").splits == {"train": 4000, "val": 500, "test": 500}
