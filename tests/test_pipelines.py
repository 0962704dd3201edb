"""pipelines.build / inspect over every source kind, splits, normalisation and bad input."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import pipelines
from pipelines import splits


def _pair(n=120, shape=(16, 16), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), (np.arange(n) % classes).astype(np.int64)


def _write_folder(root, classes=("cat", "dog"), per_class=6, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(root / c, exist_ok=True)
        for i in range(per_class):
            shape = (*size, 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_arrays_split_98_1_1_style_and_scale():
    x, y = _pair()
    spec = pipelines.inspect((x, y))
    assert spec.splits == {"train": 96, "val": 12, "test": 12}
    assert spec.image_shape == (16, 16, 1) and spec.num_classes == 4
    xs, ys = _all(pipelines.build((x, y), split="val", batch_size=5))
    assert xs.shape == (12, 16, 16, 1) and xs.dtype == np.float32
    assert xs.min() >= 0 and xs.max() <= 1
    idx = splits.split_indices(120, 0.1)["val"]
    np.testing.assert_allclose(xs[..., 0], x[idx] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(ys, y[idx])


def test_holdouts_are_capped_for_large_data():
    assert splits.holdout_count(1_000_000, 0.1) == 10_000  # 98/1/1
    assert splits.holdout_count(60_000, 0.1) == 6_000
    parts = splits.split_indices(1000, 0.1)
    assert sum(len(v) for v in parts.values()) == 1000
    assert not set(parts["val"]) & set(parts["test"]) and not set(parts["train"]) & set(parts["test"])


def test_standardize_uses_training_split_statistics():
    x, y = _pair(n=200)
    x[:, :, :] = (np.arange(200) % 7 * 30)[:, None, None]
    spec = pipelines.inspect((x, y), normalization="standardize")
    train = splits.split_indices(200, 0.1)["train"]
    pixels = x[train].astype(np.float64) / 255
    np.testing.assert_allclose(spec.normalization["mean"], [pixels.mean()], rtol=1e-4)
    np.testing.assert_allclose(spec.normalization["std"], [pixels.std()], rtol=1e-4)
    xs, _ = _all(pipelines.build((x, y), split="train", normalization="standardize", batch_size=50, shuffle=False))
    assert abs(xs.mean()) < 1e-3 and abs(xs.std() - 1) < 1e-3


def test_npz_keras_layout(tmp_path):
    x, y = _pair(n=50)
    xt, yt = _pair(n=10, seed=1)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y[:, None], x_test=xt, y_test=yt)
    spec = pipelines.inspect(str(tmp_path / "d.npz"))
    assert spec.splits == {"train": 45, "val": 5, "test": 10}
    xs, ys = _all(pipelines.build(str(tmp_path / "d.npz"), split="test", batch_size=4))
    np.testing.assert_array_equal(ys, yt)
    np.testing.assert_allclose(xs[..., 0], xt / 255.0, atol=1e-6)


def test_npz_missing_key(tmp_path):
    x, y = _pair(n=10)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['y_test'\]"):
        pipelines.build(str(tmp_path / "d.npz"))


def test_length_mismatch():
    x, y = _pair(n=10)
    with pytest.raises(ValueError, match="different lengths: 10 images, 9 labels"):
        pipelines.build((x, y[:9]))


def test_folder_classes_grayscale_and_holdout(tmp_path):
    root = _write_folder(tmp_path / "data", per_class=10, mode="L")
    (root / "notes.txt").write_text("ignored")
    (root / "cat" / "readme.md").write_text("ignored")
    spec = pipelines.inspect(str(root))
    assert spec.class_names == ["cat", "dog"] and spec.image_shape == (12, 10, 1)
    assert spec.splits == {"val": 2, "test": 2, "train": 16}
    xs, ys = _all(pipelines.build(str(root), split="train", image_size=8, channels=3, batch_size=4))
    assert xs.shape == (16, 8, 8, 3) and sorted(set(ys)) == [0, 1]


def test_folder_with_split_subfolders(tmp_path):
    _write_folder(tmp_path / "d" / "train", per_class=5)
    _write_folder(tmp_path / "d" / "test", per_class=2)
    spec = pipelines.inspect(str(tmp_path / "d"))
    assert spec.splits == {"train": 9, "val": 1, "test": 4}
    assert spec.image_shape == (12, 10, 3)


def test_one_table_of_split_names(tmp_path):
    from pipelines.sources import labelled

    assert splits.canonical("dev") == splits.canonical("validation") == "val" and splits.canonical("test") == "test"
    assert splits.split_name("Validation") == "val" and splits.split_name("images") is None
    assert labelled.canonical_split("val2017") == "val" and labelled.canonical_split("images") is None
    with pytest.raises(ValueError, match="Did you mean 'valid'"):
        splits.canonical("vaild")
    # Split folders in any case use the same table ("Training/" once raised KeyError here).
    _write_folder(tmp_path / "d" / "Training", per_class=5)
    _write_folder(tmp_path / "d" / "Dev", per_class=2)
    assert pipelines.inspect(str(tmp_path / "d")).splits == {"train": 9, "val": 4, "test": 1}  # test carved from train


def test_folder_corrupt_files_skipped_with_warning_or_refused(tmp_path):
    root = _write_folder(tmp_path / "d", per_class=4)
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "cat" / "text.jpg").write_text("not an image at all")
    good = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "cut.png").write_bytes(good[: len(good) // 2])
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(root / "dog" / "x.tiff")
    with pytest.warns(UserWarning) as record:
        spec = pipelines.inspect(str(root))
    messages = [str(w.message) for w in record]
    for name in ("empty.png", "text.jpg", "cut.png", "x.tiff"):
        assert any(name in m for m in messages), name
    assert any("Skipped 4 corrupt" in m for m in messages)
    assert sum(spec.splits.values()) == 8
    assert sum(len(y) for _, y in pipelines.build(str(root), split="train", batch_size=3)) == spec.splits["train"]
    with pytest.raises(ValueError, match=r"strict=True.*cat/empty\.png: empty file"):
        pipelines.build(str(root), strict=True)


def test_folder_empty_class_and_no_images(tmp_path):
    root = _write_folder(tmp_path / "d", per_class=2)
    os.makedirs(root / "bird")
    with pytest.raises(ValueError, match=r"Class folder '.*bird' is empty"):
        pipelines.build(str(root))
    os.makedirs(tmp_path / "none")
    (tmp_path / "none" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="has no images"):
        pipelines.build(str(tmp_path / "none"))


def test_tfds_source_with_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        spec = pipelines.inspect("tfds:mnist")
        assert spec.task == "classification" and spec.num_classes == 10 and spec.image_shape == (28, 28, 1)
        x, y = next(iter(pipelines.build("tfds:mnist", split="train[:50%]", batch_size=4, image_size=16)))
        assert x.shape == (4, 16, 16, 1) and y.dtype == tf.int32
        x, _ = next(iter(pipelines.build("tfds:mnist", split="val", batch_size=2)))
        assert x.shape == (2, 28, 28, 1)


def test_unknown_names():
    with pytest.raises(ValueError, match="Unknown TFDS dataset 'mnistt'.*Did you mean 'tfds:mnist'"):
        pipelines.build("tfds:mnistt")
    with pytest.raises(ValueError, match="Unknown shapes config 'detect'.*'shapes/detection'"):
        pipelines.build("shapes/detect")
    with pytest.raises(ValueError, match="Unknown data source 'nowhere/at/all'"):
        pipelines.build("nowhere/at/all")
    with pytest.raises(ValueError, match="Unknown split 'valid8'"):
        pipelines.build(_pair(), split="valid8")
    with pytest.raises(ValueError, match="Unknown normalization 'zscore'"):
        pipelines.build(_pair(), normalization="zscore")
    with pytest.raises(ValueError, match="Unknown augmentation 'flp'.*'flip'"):
        pipelines.build(_pair(), augment=("flp",))
    with pytest.raises(ValueError, match="Unknown augmentation backend 'cv2'"):
        pipelines.build(_pair(), backend="cv2")


def test_dataspec_round_trip():
    spec = pipelines.inspect(_pair(), task="embedding")
    assert spec.task == "embedding"
    assert pipelines.DataSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="Unknown DataSpec fields"):
        pipelines.DataSpec.from_dict({**spec.to_dict(), "colour": 1})


def test_sequence_task_drops_channel_axis():
    x, y = next(iter(pipelines.build(_pair(), task="sequence", batch_size=3)))
    assert x.shape == (3, 16, 16)


def test_feature_vectors_pass_through():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    spec = pipelines.inspect((x, y))
    assert spec.image_shape == (2,) and spec.normalization["scale"] == 1.0
    xb, _ = next(iter(pipelines.build((x, y), split="test", batch_size=None)))
    assert xb.shape == (2,)


def test_autotune_is_off_unless_asked():
    """tf.data's autotuning thread stays off by default (its iterator deletion stalled 8-10 s; issue 24)."""
    x, y = _pair(40)
    assert pipelines.build((x, y), batch_size=8).options().autotune.enabled is False
    ds = pipelines.build((x, y), batch_size=8, autotune=True)
    assert ds.options().autotune.enabled is True
    assert next(iter(ds))[0].shape[0] == 8
