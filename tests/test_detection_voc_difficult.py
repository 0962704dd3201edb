"""Pascal VOC `difficult` objects: kept in the data, left out of mAP as the VOC devkit does."""

import numpy as np
import pytest
from test_labelled_formats import expected, make_voc

import pipelines
import zoo
import zoo.tasks.detection as det
from zoo.models.yolo import YOLO_RECIPE
from zoo.tasks.detection import task as dt


def _box(y0, x0, size=0.2):
    return [y0, x0, y0 + size, x0 + size]


def test_difficult_truths_are_neither_positives_nor_false_positives():
    # One class. Image 0: a normal truth and a difficult one; image 1: a normal truth.
    normal, hard, other = _box(0.0, 0.0), _box(0.5, 0.5), _box(0.1, 0.6)
    gt = [(np.array([normal, hard]), np.array([0, 0]), np.array([False, True])),
          (np.array([other]), np.array([0]), np.array([False]))]
    preds = [
        (np.array([hard, normal, _box(0.7, 0.0), hard]), np.array([0.9, 0.8, 0.7, 0.5]), np.zeros(4, int)),
        (np.array([other]), np.array([0.6]), np.zeros(1, int)),
    ]
    # By score: hard (ignored), normal (TP), miss (FP), other (TP), hard again (ignored, not a duplicate FP).
    # 2 positives -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: AP = 1/2 * 1 + 1/2 * 2/3.
    out = det.mean_average_precision(preds, gt, 1)
    assert out["map50"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Without the flags the difficult box is a positive (3 of them) and its second detection a duplicate FP:
    # TP, TP, FP, TP, FP -> recall 1/3, 2/3, 2/3, 1, 1 at precision 1, 1, 2/3, 3/4, 3/5: AP = 2/3 + 1/3 * 3/4.
    plain = det.mean_average_precision(preds, [g[:2] for g in gt], 1)
    assert plain["map50"] == pytest.approx(2 / 3 + 1 / 3 * 3 / 4)


def test_a_class_with_only_difficult_truths_is_not_averaged():
    gt = [(np.array([_box(0.0, 0.0), _box(0.5, 0.5)]), np.array([0, 1]), np.array([False, True]))]
    preds = [(np.array([_box(0.0, 0.0), _box(0.5, 0.5), _box(0.0, 0.5)]), np.array([0.9, 0.8, 0.7]),
              np.array([0, 1, 1]))]
    out = det.mean_average_precision(preds, gt, 2, class_names=["cat", "dog"])
    assert out["ap50_cat"] == pytest.approx(1.0) and "ap50_dog" not in out
    assert out["map50"] == pytest.approx(1.0)
    # A detection whose best match is a difficult truth but below the IoU threshold is still a false positive.
    near_hard = _box(0.5, 0.6)  # IoU 1/3 with the difficult box
    ap = det.class_ap([(np.array([near_hard, _box(0.0, 0.0)]), np.array([0.9, 0.8]))],
                      [np.array([_box(0.0, 0.0), _box(0.5, 0.5)])], 0.5, [np.array([False, True])])
    assert ap == pytest.approx(0.5)  # FP then TP: precision 1/2 at recall 1


def test_evaluate_hook_scores_against_voc_targets_with_difficult(tmp_path, monkeypatch):
    # VOC folder: train images a (cat + dog), b (a difficult dog), c (background).
    root = make_voc(tmp_path / "voc", difficult=("b",))
    spec = pipelines.inspect(str(root), val_split=0.0)
    model = zoo.yolo(input_shape=(32, 32, 3), grid_size=4, anchors=((0.3, 0.3),), classes=2, width=4)
    recipe = YOLO_RECIPE.override(batch_size=4, val_split=0.0)
    ds = dt.make_dataset(str(root), "train", recipe, spec, False, model=model, deterministic=True)
    assert ds.element_spec[1].shape[1:] == (4, 4, 1, 7)  # Keras sees grid targets

    # A detector that finds exactly the objects of image a (and nothing in b, c): stands in for a
    # trained model so the expected mAP is known; the ground truth still comes from the VOC reader.
    found = (expected("a"), np.array([0.9, 0.8]), np.array([0, 1]))
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
    monkeypatch.setattr(dt, "_detections", lambda model, raw, extra=None: [found, empty, empty][: raw.shape[0]])
    out = dt.evaluate(model, ds, spec, recipe)
    assert out["ap50_cat"] == pytest.approx(1.0)
    assert out["ap50_dog"] == pytest.approx(1.0)  # b's missed dog is difficult: not a positive
    assert out["map50_95"] == pytest.approx(1.0) and out["loss"] > 0

    plain = make_voc(tmp_path / "voc_plain", difficult=())
    ds = dt.make_dataset(str(plain), "train", recipe, pipelines.inspect(str(plain), val_split=0.0), False,
                         model=model, deterministic=True)
    assert dt.evaluate(model, ds, spec, recipe)["ap50_dog"] == pytest.approx(0.5)  # recall 1/2 at precision 1
