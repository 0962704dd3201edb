"""Zoo models train from every source kind through `pipelines.build` (one short epoch each)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import pipelines
import zoo


def _digits(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(y):  # a learnable bright bar per class
        x[i, 2 * label:2 * label + 3, 4:24] = 250
    return x, y


def _folder(root):
    x, y = _digits(40)
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / f"class{label}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([img] * 3, -1)).resize((20, 20)).save(d / f"{i}.jpg")
    return str(root)


def _fit(model, source, **kw):
    train = pipelines.build(source, split="train", batch_size=16, seed=0, **kw)
    val = pipelines.build(source, split="val", batch_size=16, **kw)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(train, validation_data=val, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][-1]) and np.isfinite(hist.history["val_loss"][-1])


@pytest.mark.parametrize("kind", ["arrays", "npz", "folder", "tfds"])
def test_lenet5_trains_from_each_source(kind, tmp_path):
    model = zoo.create_model("lenet5", classes=10)
    size = dict(image_size=(28, 28), channels=1)
    if kind == "arrays":
        _fit(model, _digits(), augment=("crop", "color"), **size)
    elif kind == "npz":
        x, y = _digits()
        np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
        _fit(model, str(tmp_path / "d.npz"), **size)
    elif kind == "folder":
        _fit(model, _folder(tmp_path / "f"), augment=("flip",), **size)
    else:
        with tfds.testing.mock_data(num_examples=32):
            _fit(model, "tfds:mnist", normalization="standardize", **size)


def test_rnn_trains_on_rows_as_a_sequence():
    model = zoo.create_model("rnn", classes=10)
    x, y = _digits()
    _fit(model, (x, y), task="sequence")
