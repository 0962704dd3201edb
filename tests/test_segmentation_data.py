"""TFDS segmentation sources mapped to int32 masks (under `tfds.testing.mock_data`), the shapes pipeline, and
the segmentation task hooks."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import pipelines
import zoo
from zoo.tasks import get_task
from zoo.tasks.segmentation import sources

# An 8x8 Oxford-IIIT Pet trimap (1 = pet, 2 = background, 3 = border) with two values that are not trimap labels.
TRIMAP = np.full((8, 8), 2, np.uint8)
TRIMAP[2:6, 2:6] = 1
TRIMAP[1, 1:7] = 3
TRIMAP[7, 0] = 0
TRIMAP[7, 1] = 9
EXPECTED = np.full((8, 8), 0, np.int32)
EXPECTED[2:6, 2:6] = 1
EXPECTED[1, 1:7] = 2
EXPECTED[7, 0:2] = 255


def _pets(self, *args, **kwargs):
    def examples():
        for i in range(4):
            yield {
                "image": np.full((8, 8, 3), 40 * i, np.uint8),
                "label": i,
                "species": i % 2,
                "file_name": f"pet{i}",
                "segmentation_mask": TRIMAP[..., None],
                "head_bbox": np.zeros(4, np.float32),
            }

    return tf.data.Dataset.from_generator(
        examples, output_types=self.info.features.dtype, output_shapes=self.info.features.shape
    )


def test_oxford_pet_trimap_maps_to_background_pet_border():
    with tfds.testing.mock_data(as_dataset_fn=_pets):
        examples = list(sources.load_tfds("tfds:oxford_iiit_pet", split="train", download=False))
    assert len(examples) == 4
    for ex in examples:
        assert ex["mask"].dtype == tf.int32 and ex["mask"].shape == (8, 8)
        np.testing.assert_array_equal(ex["mask"], EXPECTED)
    assert sources.tfds_source("tfds:oxford_iiit_pet:4.*.*").class_names == ("background", "pet", "border")


def test_random_mock_masks_are_resized_to_the_image_and_stay_in_range():
    with tfds.testing.mock_data(num_examples=3):
        examples = list(sources.load_tfds("oxford_iiit_pet", split="test", download=False))
    for ex in examples:
        assert ex["mask"].shape == ex["image"].shape[:2]
        assert set(np.unique(ex["mask"])) <= {0, 1, 2, 255}


def test_pipeline_reads_mapped_pet_masks():
    with tfds.testing.mock_data(as_dataset_fn=_pets):
        spec = pipelines.inspect("tfds:oxford_iiit_pet", task="segmentation", image_size=(8, 8))
        ds = pipelines.build("tfds:oxford_iiit_pet", split="train", task="segmentation", image_size=(8, 8),
                             batch_size=2, shuffle=False)
        images, masks = next(iter(ds))
    assert spec.num_classes == 3 and list(spec.class_names) == ["background", "pet", "border"]
    assert images.shape == (2, 8, 8, 3) and masks.dtype == tf.int32 and masks.shape == (2, 8, 8)
    np.testing.assert_array_equal(masks[0], EXPECTED)


def test_unknown_tfds_segmentation_source_is_named():
    with pytest.raises(ValueError, match="'oxford_pets'.*Did you mean 'oxford_iiit_pet'"):
        sources.tfds_source("tfds:oxford_pets")


# ---------------------------------------------------------------------------------------------- task hooks

TASK = get_task("segmentation")


def small_unet(**kw):
    return zoo.create_model("unet", **{"input_shape": (16, 16, 3), "depth": 2, "filters": 4, "classes": 3, **kw})


@pytest.fixture
def npz_source(tmp_path):
    """A .npz segmentation source whose every mask has 8 background, 4 class-1, 2 class-2 and 2 ignored pixels."""
    mask = np.array([0] * 8 + [1] * 4 + [2] * 2 + [255] * 2, np.uint8).reshape(4, 4)
    mask = np.kron(mask, np.ones((4, 4), np.uint8))  # 16x16
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    y = np.repeat(mask[None], 20, axis=0)
    path = tmp_path / "seg.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
    return str(path)


def test_loss_hook_follows_recipe_and_output_activation(npz_source):
    recipe = zoo.get_spec("unet").recipe
    spec = pipelines.inspect(npz_source)
    loss = TASK.loss(small_unet(), recipe, spec)
    assert type(loss).__name__ == "DiceCrossEntropy" and not loss.from_logits and loss.class_weights is None
    assert TASK.loss(small_unet(classifier_activation=None), recipe, spec).from_logits
    ce = TASK.loss(small_unet(), recipe.override(extra={"loss": "crossentropy", "class_weights": [1, 2, 3]}), spec)
    assert type(ce).__name__ == "MaskedCrossEntropy" and ce.class_weights == [1.0, 2.0, 3.0]
    # Median-frequency weights counted on the training split: frequencies 8/14, 4/14, 2/14 -> 0.5, 1, 2.
    weighted = TASK.loss(small_unet(), recipe.override(extra={"class_weights": "median_frequency"}), spec)
    np.testing.assert_allclose(weighted.class_weights, [0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="'balanced'"):
        TASK.loss(small_unet(), recipe.override(extra={"class_weights": "balanced"}), spec)


def test_metrics_evaluate_report_and_serving_hooks(npz_source, tmp_path):
    model = small_unet()
    recipe = zoo.get_spec("unet").recipe
    spec = pipelines.inspect(npz_source)
    assert [m.name for m in TASK.metrics(model, recipe, spec)] == ["mean_iou", "pixel_accuracy"]
    test = pipelines.build(npz_source, split="test", batch_size=4)
    result = TASK.evaluate(model, test, spec, recipe)
    assert set(result) == {"mean_iou", "pixel_accuracy", "iou_0", "iou_1", "iou_2"}
    assert 0.0 <= result["mean_iou"] <= 1.0
    paths = TASK.report(model, test, spec, tmp_path)
    assert paths == [str(tmp_path / "masks.png")] and (tmp_path / "masks.png").stat().st_size > 1000
    images = next(iter(test))[0]
    scores = model(images)
    out = TASK.serving_outputs(model, scores, None)
    assert out["mask"].dtype == tf.int32 and out["mask"].shape == images.shape[:3]
    np.testing.assert_array_equal(out["mask"], np.argmax(scores, axis=-1))


@pytest.mark.slow
def test_unet_learns_squares_with_the_task_loss():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.4, size=(96, 16, 16, 3)).astype("float32")
    y = np.zeros((96, 16, 16), np.int32)
    for i in range(96):
        r, c, s = rng.integers(0, 8), rng.integers(0, 8), rng.integers(4, 9)
        x[i, r:r + s, c:c + s, i % 3] += 0.6
        y[i, r:r + s, c:c + s] = 1 + (i % 3 == 0)
    model = small_unet(filters=8)
    recipe = zoo.get_spec("unet").recipe
    model.compile(keras_optimizer(), loss=TASK.loss(model, recipe, None), metrics=TASK.metrics(model, recipe, None),
                  jit_compile=False)
    before = TASK.evaluate(model, tf.data.Dataset.from_tensor_slices((x[64:], y[64:])).batch(32), None, recipe)
    model.fit(x[:64], y[:64], batch_size=16, epochs=25, verbose=0)
    after = TASK.evaluate(model, tf.data.Dataset.from_tensor_slices((x[64:], y[64:])).batch(32), None, recipe)
    assert after["mean_iou"] > 0.8 > before["mean_iou"]


def keras_optimizer():
    import keras

    return keras.optimizers.Adam(1e-2)


def test_export_serves_a_class_mask(tmp_path):
    model = small_unet()
    path = zoo.export(model, str(tmp_path / "unet"), preprocessing="scale", task="segmentation", verbose=False)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    served = tf.saved_model.load(path).signatures["serving_default"](tf.constant(images))
    assert served["mask"].dtype == tf.int32 and served["mask"].shape == (2, 16, 16)
    expected = np.argmax(model(images.astype("float32") / 255.0), axis=-1)
    np.testing.assert_array_equal(served["mask"], expected)
    np.testing.assert_allclose(served["probabilities"], model(images.astype("float32") / 255.0), atol=1e-5)
