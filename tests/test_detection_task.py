"""YOLO builder, the detection Task hooks (datasets, evaluation, report, serving NMS) and TFDS mapping."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo.models.yolo import YOLO_RECIPE, head_of
from zoo.tasks import detection as det
from zoo.tasks import get_task
from zoo.tasks.detection import task as dt

TINY = dict(input_shape=(32, 32, 3), grid_size=4, anchors=((0.25, 0.25), (0.4, 0.4)), classes=2, width=8)


@pytest.mark.parametrize("anchors, classes, flat", [([(0.3, 0.3)], 3, 8), ([(0.3, 0.3), (0.5, 0.2)], 3, 16)])
def test_output_matches_curriculum_volume(anchors, classes, flat):
    model = zoo.yolo(input_shape=(96, 96, 3), grid_size=3, anchors=anchors, classes=classes, width=4)
    assert model.output_shape == (None, 3, 3, len(anchors), 5 + classes)
    out = model(np.zeros((1, 96, 96, 3), "float32"))
    assert keras.ops.reshape(out, (1, 3, 3, -1)).shape == (1, 3, 3, flat)
    assert head_of(model).anchors == [list(a) for a in anchors]


def test_named_backbone():
    model = zoo.yolo(backbone="mobilenet_v2", input_shape=(64, 64, 3), grid_size=2, classes=2)
    assert model.output_shape == (None, 2, 2, 3, 7)
    assert any(l.name.startswith("block_") for l in model.layers)  # mobilenet_v2 layers, inlined


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backbone": "mobilenetv2"}, "Did you mean 'mobilenet_v2'"),
        ({"grid_size": 5}, "closest valid: 4"),
        ({"grid_size": 0}, "grid_size=0"),
        ({"anchors": [(0.2,)]}, "anchors="),
        ({"anchors": [(1.5, 0.2)]}, "(0, 1]"),
        ({"classifier_activation": "softmax"}, "classifier_activation='softmax'"),
        ({"input_shape": (64, 32, 3)}, "square"),
        ({"width": 0}, "width=0"),
        ({"classes": 0}, "classes=0"),
    ],
)
def test_builder_errors_name_the_value(kwargs, message):
    with pytest.raises(ValueError) as err:
        zoo.yolo(**kwargs)
    assert message in str(err.value)


def test_task_hooks_registered_and_loss_from_recipe():
    task = get_task("detection")
    assert task.make_dataset is dt.make_dataset and task.serving_outputs is dt.serving_outputs
    model = zoo.yolo(**TINY)
    loss = task.loss(model, YOLO_RECIPE.override(extra={"lambda_noobj": 0.1}), None)
    assert isinstance(loss, det.YoloLoss)
    assert loss.anchors == head_of(model).anchors and loss.lambda_noobj == 0.1 and loss.lambda_coord == 5.0


def _voc_like(builder, *args, **kwargs):
    """Mock VOC records with valid boxes (TFDS' random mock draws box and label counts independently)."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(8):
        n = i % 3 + 1
        corner, size = rng.uniform(0, 0.5, (n, 2)), rng.uniform(0.1, 0.5, (n, 2))
        labels = rng.integers(0, 20, n)
        records.append({
            "image": rng.integers(0, 255, (48 + i, 40, 3), np.uint8), "image/filename": f"{i}.jpg",
            "labels": labels, "labels_no_difficult": labels,
            "objects": {"bbox": np.concatenate([corner, corner + size], 1).astype("float32"), "label": labels,
                        "pose": np.zeros(n, np.int64), "is_truncated": np.zeros(n, bool),
                        "is_difficult": np.zeros(n, bool)},
        })
    return tf.data.Dataset.from_generator(lambda: iter(records), output_types=builder.info.features.dtype,
                                          output_shapes=builder.info.features.shape)


@pytest.mark.slow
def test_tfds_detection_source_maps_to_pipeline_format_and_encodes():
    # The TFDS -> {"boxes", "classes"} mapping lives in pipelines/sources/tfds_source.py; this checks it
    # against the TFDS records, then runs the recipe's box-aware augmentation and the grid encoding on it.
    import pipelines

    model = zoo.yolo(input_shape=(64, 64, 3), grid_size=4, anchors=((0.3, 0.3),), classes=20, width=4)
    recipe = YOLO_RECIPE.override(batch_size=4)
    with tfds.testing.mock_data(as_dataset_fn=_voc_like, policy=tfds.testing.MockPolicy.USE_CODE):
        records = list(tfds.load("voc/2007", split="test").take(4))
        images, targets = next(iter(pipelines.build("tfds:voc/2007", split="test", batch_size=4, image_size=64,
                                                    max_boxes=6, cache=False, deterministic=True, seed=0)))
        x, grid = next(iter(dt.make_dataset("tfds:voc/2007", "train", recipe, None, True, model=model, seed=0,
                                            max_boxes=6, cache=False)))
    assert images.shape == (4, 64, 64, 3) and images.dtype == tf.float32
    assert targets["boxes"].shape == (4, 6, 4) and targets["classes"].dtype == tf.int32
    for i, record in enumerate(records):
        n = len(record["objects"]["label"])
        np.testing.assert_allclose(targets["boxes"][i, :n], record["objects"]["bbox"], atol=1e-6)
        np.testing.assert_array_equal(targets["classes"][i, :n], record["objects"]["label"])
        assert np.all(targets["classes"][i, n:] == -1)
    assert recipe.augment == ("flip", "crop", "color")
    assert x.shape == (4, 64, 64, 3) and grid.shape == (4, 4, 4, 1, 25)
    grid = grid.numpy()
    assert set(np.unique(grid[..., 0])) <= {0.0, 1.0} and grid[..., 0].sum() >= 1
    assigned = grid[grid[..., 0] == 1]
    assert np.all((assigned[:, 1:3] >= 0) & (assigned[:, 1:3] < 1)) and np.all(assigned[:, 3:5] > 0)
    np.testing.assert_allclose(assigned[:, 5:].sum(-1), 1.0)


def _synthetic(n=32, size=32, seed=0):
    """Images with 1-2 coloured squares (class 0 red, class 1 blue) and their boxes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), "float32")
    boxes = np.zeros((n, 2, 4), "float32")
    classes = -np.ones((n, 2), "int32")
    for i in range(n):
        for j in range(rng.integers(1, 3)):
            side = int(rng.integers(7, 13))
            y, x = (int(v) for v in rng.integers(0, size - side, 2))
            if j and classes[i, 0] >= 0 and det.iou(boxes[i, 0], [[y / size, x / size, (y + side) / size,
                                                                   (x + side) / size]])[0, 0] > 0:
                continue
            c = int(rng.integers(0, 2))
            images[i, y:y + side, x:x + side, 0 if c == 0 else 2] = 1.0
            boxes[i, j] = np.array([y, x, y + side, x + side]) / size
            classes[i, j] = c
    return images, {"boxes": boxes, "classes": classes}


def test_evaluate_reads_grids_or_dicts_alike():
    model = zoo.yolo(**TINY)
    images, targets = _synthetic(8)
    raw = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)
    a = dt.evaluate(model, raw, None, YOLO_RECIPE)
    b = dt.evaluate(model, dt.encode_dataset(raw, model), None, YOLO_RECIPE)
    assert set(a) >= {"map50", "map50_95", "ap50_0", "ap50_1"}
    assert "loss" not in a and b.pop("loss") > 0  # the loss needs grid targets
    assert a == pytest.approx(b)


@pytest.mark.slow
def test_tiny_yolo_learns_boxes_and_exports_with_nms(tmp_path):
    keras.utils.set_random_seed(0)
    model = zoo.yolo(**TINY)
    images, targets = _synthetic(48)
    raw = tf.data.Dataset.from_tensor_slices((images, targets)).batch(16)
    data = dt.encode_dataset(raw, model).cache()
    model.compile(keras.optimizers.Adam(3e-3), loss=dt.loss(model, YOLO_RECIPE))
    before = dt.evaluate(model, raw, None, YOLO_RECIPE)["map50"]
    model.fit(data, epochs=120, verbose=0)
    after = dt.evaluate(model, raw, None, YOLO_RECIPE)
    assert before < 0.2 and after["map50"] > 0.9, (before, after)

    class Spec:
        class_names = ["red", "blue"]
        normalization = {"kind": "scale"}

    paths = dt.report(model, raw, Spec, str(tmp_path))
    assert paths[0].endswith(".png") and open(paths[0], "rb").read(4) == b"\x89PNG"

    from zoo.export import export

    version = export(model, str(tmp_path / "served"), task="detection", preprocessing="scale", verbose=False)
    served = tf.saved_model.load(version).signatures["serving_default"]
    out = served(images=tf.constant(np.round(images[:4] * 255).astype("uint8")))
    assert set(out) == {"boxes", "scores", "classes", "valid_detections"}
    expected = dt.predict(model, images[:4], {"score_threshold": dt.DEFAULTS["serving_score_threshold"]})
    for i, (boxes, scores, classes) in enumerate(expected):
        n = int(out["valid_detections"][i])
        assert n == len(scores) > 0
        np.testing.assert_allclose(out["scores"][i, :n], scores, atol=1e-4)
        np.testing.assert_allclose(out["boxes"][i, :n], boxes, atol=1e-4)
