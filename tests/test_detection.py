"""zoo.tasks.detection: IoU, anchors, target encoding/decoding, loss, NMS and mAP on hand-made cases."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.tasks import detection as det

ANCHORS_TALL_WIDE = [(0.4, 0.1), (0.1, 0.4)]


def logit(p):
    return np.log(p / (1 - p))


# ----------------------------------------------------------------------------- boxes


def test_iou_hand_cases():
    a = [[0, 0, 1, 1]]
    b = [[0, 0, 1, 1], [0, 0.5, 1, 1.5], [2, 2, 3, 3], [0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 0.5, 0.9]]
    np.testing.assert_allclose(det.iou(a, b), [[1.0, 1 / 3, 0.0, 0.25, 0.0]])
    assert det.iou(b, a).shape == (5, 1)


def test_shape_iou_and_center_corner_roundtrip():
    np.testing.assert_allclose(det.shape_iou([[0.2, 0.2]], [[0.2, 0.2], [0.4, 0.2], [0.1, 0.4]]),
                               [[1.0, 0.5, 0.02 / (0.04 + 0.04 - 0.02)]])
    boxes = np.array([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(det.corners_to_center(boxes), [[0.3, 0.3, 0.4, 0.2], [0.5, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(det.center_to_corners(det.corners_to_center(boxes)), boxes)


# ----------------------------------------------------------------------------- anchors


def test_kmeans_anchors_finds_the_clusters():
    rng = np.random.default_rng(0)
    small = np.array([0.1, 0.1]) * rng.uniform(0.9, 1.1, (60, 2))
    tall = np.array([0.5, 0.2]) * rng.uniform(0.9, 1.1, (40, 2))
    anchors = det.kmeans_anchors(np.concatenate([small, tall]), 2, seed=3)
    np.testing.assert_allclose(anchors, [[0.1, 0.1], [0.5, 0.2]], rtol=0.06)
    assert det.mean_best_iou(np.concatenate([small, tall]), anchors) > 0.85
    corners = np.concatenate([np.zeros((100, 2)), np.concatenate([small, tall])], axis=1)
    np.testing.assert_allclose(det.kmeans_anchors(corners, 2, seed=3), anchors)


@pytest.mark.parametrize("k, message", [(0, "k=0"), (2.5, "k=2.5"), (500, "at least k=500")])
def test_kmeans_bad_k(k, message):
    with pytest.raises(ValueError, match=message):
        det.kmeans_anchors(np.full((10, 2), 0.2), k)


# ----------------------------------------------------------------------------- encoding


def test_encode_curriculum_3x3x8_case():
    # One square-ish object centred in the middle cell, class 2 of 3, one anchor.
    grid = det.encode([[0.4, 0.35, 0.6, 0.65]], [2], grid_size=3, anchors=[(0.3, 0.3)], num_classes=3).numpy()
    assert grid.shape == (3, 3, 1, 8)
    flat = grid.reshape(3, 3, 8)  # the curriculum's 3x3x8 volume
    expected = np.zeros((3, 3, 8), "float32")
    expected[1, 1] = [1, 0.5, 0.5, 0.2 * 3, 0.3 * 3, 0, 0, 1]  # p_c, b_x, b_y, b_h, b_w (cell units), c1..c3
    np.testing.assert_allclose(flat, expected, atol=1e-6)


def test_encode_two_objects_in_one_cell_use_two_anchors():
    wide = [0.40, 0.30, 0.50, 0.70]  # centre (0.45, 0.5), h 0.1, w 0.4 -> anchor 1
    tall = [0.30, 0.45, 0.70, 0.55]  # centre (0.5, 0.5), h 0.4, w 0.1 -> anchor 0
    grid = det.encode([wide, tall], [0, 1], grid_size=3, anchors=ANCHORS_TALL_WIDE, num_classes=2).numpy()
    assert grid.shape == (3, 3, 2, 7)
    assert grid.reshape(3, 3, 14).shape == (3, 3, 14)  # two anchors: the curriculum's 3x3x16 with 3 classes
    np.testing.assert_allclose(grid[1, 1, 1], [1, 0.5, 0.35, 0.3, 1.2, 1, 0], atol=1e-6)
    np.testing.assert_allclose(grid[1, 1, 0], [1, 0.5, 0.5, 1.2, 0.3, 0, 1], atol=1e-6)
    assert grid[..., 0].sum() == 2


def test_encode_conflict_falls_back_then_drops():
    tall = [0.3, 0.45, 0.7, 0.55]
    grid = det.encode([tall, tall, tall], [0, 1, 1], grid_size=3, anchors=ANCHORS_TALL_WIDE, num_classes=2).numpy()
    # First tall object takes the tall anchor, the second the next best free one, the third is dropped.
    np.testing.assert_allclose(grid[1, 1, :, 5:], [[1, 0], [0, 1]])
    assert grid[..., 0].sum() == 2


def test_encode_ignores_padding_and_batches():
    boxes = np.array([[[0.0, 0.0, 0.2, 0.2], [0, 0, 0, 0]], [[0.6, 0.6, 0.9, 0.8], [0.1, 0.7, 0.3, 0.9]]], "float32")
    classes = np.array([[1, -1], [0, 2]])
    batch = det.encode(boxes, classes, grid_size=4, anchors=[(0.2, 0.2)], num_classes=3).numpy()
    assert batch.shape == (2, 4, 4, 1, 8)
    for i in range(2):
        one = det.encode(boxes[i], classes[i], grid_size=4, anchors=[(0.2, 0.2)], num_classes=3).numpy()
        np.testing.assert_array_equal(batch[i], one)
    assert batch[0, ..., 0].sum() == 1 and batch[1, ..., 0].sum() == 2
    assert batch[1, 0, 3, 0, 7] == 1  # centre (0.2, 0.8) -> row 0, column 3, class 2


def test_encode_runs_inside_tf_data():
    ds = tf.data.Dataset.from_tensor_slices(
        (np.zeros((3, 8, 8, 1), "float32"),
         {"boxes": np.tile([[[0.1, 0.1, 0.4, 0.3]]], (3, 1, 1)).astype("float32"), "classes": np.zeros((3, 1), "int32")})
    ).batch(2).map(lambda x, t: (x, det.encode(t["boxes"], t["classes"], grid_size=2, anchors=[(0.3, 0.2)],
                                                num_classes=1)))
    grids = [g.numpy() for _, g in ds]
    assert [g.shape for g in grids] == [(2, 2, 2, 1, 6), (1, 2, 2, 1, 6)]
    assert all(g[:, 0, 0, 0, 0].all() for g in grids)


def test_grid_to_boxes_decodes_encoded_boxes():
    boxes = np.array([[0.40, 0.30, 0.50, 0.70], [0.30, 0.45, 0.70, 0.55], [0.05, 0.6, 0.25, 0.95]], "float32")
    classes = np.array([0, 1, 1])
    grid = det.encode(boxes, classes, grid_size=3, anchors=ANCHORS_TALL_WIDE, num_classes=2)
    got, obj, probs = (np.asarray(t) for t in det.grid_to_boxes(grid))
    assert got.shape == (18, 4) and obj.shape == (18,) and probs.shape == (18, 2)
    # row-major (row, column, anchor): cell (1, 1) anchors 0/1 are 8/9; the third box (h 0.2, w 0.35)
    # is in cell (0, 2) and fits the wide anchor 1 best: index 5.
    np.testing.assert_allclose(got[[9, 8, 5]], boxes, atol=1e-6)
    np.testing.assert_array_equal(np.nonzero(obj)[0], [5, 8, 9])
    np.testing.assert_array_equal(np.argmax(probs[[9, 8, 5]], -1), classes)


def test_decode_inverts_the_output_parametrisation():
    s, anchors = 3, [(0.2, 0.4)]
    raw = np.zeros((s, s, 1, 7), "float32")
    raw[2, 0, 0] = [logit(0.9), logit(0.25), logit(0.75), np.log(0.3 / 0.2), np.log(0.1 / 0.4), 2.0, 0.0]
    out = det.decode(raw, anchors).numpy()[2, 0, 0]
    e = np.exp(2.0)
    np.testing.assert_allclose(out, [0.9, 0.25, 0.75, 0.3 * s, 0.1 * s, e / (e + 1), 1 / (e + 1)], rtol=1e-5)
    box = np.asarray(det.grid_to_boxes(det.decode(raw, anchors))[0])[6]
    cy, cx = (2 + 0.75) / 3, (0 + 0.25) / 3
    np.testing.assert_allclose(box, [cy - 0.15, cx - 0.05, cy + 0.15, cx + 0.05], rtol=1e-5)


# ----------------------------------------------------------------------------- loss


def _loss_case(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    boxes = np.array([[[0.40, 0.30, 0.50, 0.70], [0.30, 0.45, 0.70, 0.55]], [[0.05, 0.6, 0.25, 0.95], [0, 0, 0, 0]]])
    y_true = det.encode(boxes, [[0, 1], [1, -1]], grid_size=3, anchors=ANCHORS_TALL_WIDE, num_classes=2)
    y_pred = rng.normal(0, 1, (2, 3, 3, 2, 7)).astype(dtype)
    return np.asarray(y_true, dtype), y_pred


def test_loss_gradient_matches_finite_differences():
    y_true, y_pred = _loss_case()
    loss = det.YoloLoss(ANCHORS_TALL_WIDE, dtype="float64")
    x = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(y_true, x)
    analytic = tape.gradient(value, x).numpy()
    # Central differences, every perturbed copy in one batch: [+eps copies, -eps copies] x 2 images.
    eps = 1e-6
    n = y_pred.size
    deltas = eps * np.eye(n).reshape((n,) + y_pred.shape)
    batch = np.concatenate([y_pred + deltas, y_pred - deltas]).reshape((-1,) + y_pred.shape[1:])
    truth = np.tile(y_true, (2 * n, 1, 1, 1, 1))
    per_image = det.YoloLoss(ANCHORS_TALL_WIDE, dtype="float64", reduction=None)(truth, batch)
    values = np.asarray(per_image).reshape(2, n, -1).mean(-1)  # the default reduction: mean over 2 images
    numeric = ((values[0] - values[1]) / (2 * eps)).reshape(y_pred.shape)
    rel = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert rel < 1e-7, rel
    assert np.abs(analytic[1, 0, 2, 1, 1:]).sum() > 0  # an assigned anchor gets box and class gradients
    assert np.abs(analytic[0, 0, 0, 0, 1:]).sum() == 0  # an empty one only an objectness gradient


def test_loss_terms_and_weights():
    y_true, y_pred = _loss_case()
    obj = y_true[..., 0]
    base = det.YoloLoss(ANCHORS_TALL_WIDE, dtype="float64")
    # Box and class outputs of empty anchors do not matter.
    shifted = y_pred + (1 - obj)[..., None] * np.concatenate([np.zeros((1,)), np.ones(6)]) * 3.0
    np.testing.assert_allclose(float(base(y_true, y_pred)), float(base(y_true, shifted)))
    # lambda_coord scales only the box terms: perfect boxes make it irrelevant.
    perfect = y_pred.copy()
    perfect[..., 1:3] = np.where(obj[..., None] > 0, logit(np.clip(y_true[..., 1:3], 1e-6, 1 - 1e-6)), y_pred[..., 1:3])
    anchors = np.array(ANCHORS_TALL_WIDE) * 3
    perfect[..., 3:5] = np.where(obj[..., None] > 0, np.log(np.maximum(y_true[..., 3:5], 1e-9) / anchors), y_pred[..., 3:5])
    a = float(det.YoloLoss(ANCHORS_TALL_WIDE, lambda_coord=1, dtype="float64")(y_true, perfect))
    b = float(det.YoloLoss(ANCHORS_TALL_WIDE, lambda_coord=100, dtype="float64")(y_true, perfect))
    assert abs(a - b) < 1e-6
    assert float(det.YoloLoss(ANCHORS_TALL_WIDE, lambda_coord=100)(y_true, y_pred)) > float(base(y_true, y_pred))
    # Confident correct objectness/class beats confident wrong.
    good, bad = perfect.copy(), perfect.copy()
    good[..., 0] = np.where(obj > 0, 8.0, -8.0)
    bad[..., 0] = -good[..., 0]
    assert float(base(y_true, good)) < float(base(y_true, bad))


def test_loss_serializes():
    loss = det.YoloLoss(ANCHORS_TALL_WIDE, lambda_noobj=0.25)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(again, det.YoloLoss) and again.lambda_noobj == 0.25 and again.anchors == loss.anchors
    y_true, y_pred = _loss_case("float32")
    np.testing.assert_allclose(float(loss(y_true, y_pred)), float(again(y_true, y_pred)), rtol=1e-6)


# ----------------------------------------------------------------------------- NMS


def test_filter_and_nms_hand_case():
    boxes = np.array([[0, 0, 1, 1], [0, 0.05, 1, 1.05], [0, 0.5, 1, 1.5], [0, 0, 1, 1], [2, 2, 3, 3]], "float32")
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.0, 0.6], [0.1, 0.0]])
    b, s, c = det.filter_scores(boxes, scores, 0.2)
    np.testing.assert_allclose(s, [0.9, 0.8, 0.7, 0.6])
    keep = det.non_max_suppression(b, s, c, iou_threshold=0.5)
    # Box 1 overlaps box 0 (IoU 0.9) and goes; box 2 (IoU 1/3) stays; class 1's copy of box 0 stays.
    np.testing.assert_array_equal(keep, [0, 2, 3])
    np.testing.assert_array_equal(det.non_max_suppression(b, s, c, iou_threshold=0.2), [0, 3])
    np.testing.assert_array_equal(det.non_max_suppression(b, s, c, iou_threshold=0.5, max_boxes=2), [0, 2])


def test_graph_nms_matches_numpy_nms():
    rng = np.random.default_rng(1)
    anchors = [(0.2, 0.2), (0.4, 0.3)]
    raw = rng.normal(0, 1.5, (3, 4, 4, 2, 8)).astype("float32")
    out = tf.function(lambda r: det.batched_nms(r, anchors, score_threshold=0.1, iou_threshold=0.45, max_boxes=10))(raw)
    for i in range(3):
        n = int(out["valid_detections"][i])
        boxes, scores, classes = det.detect(raw[i], anchors, score_threshold=0.1, iou_threshold=0.45, max_boxes=10)
        assert n == len(scores) and n > 0
        np.testing.assert_allclose(out["scores"][i, :n], scores, rtol=1e-5)
        np.testing.assert_allclose(out["boxes"][i, :n], boxes, atol=1e-5)
        np.testing.assert_array_equal(out["classes"][i, :n], classes)


# ----------------------------------------------------------------------------- mAP


def test_average_precision_all_point():
    # Recall 0.5 at precision 1, then a false positive, then recall 1 at precision 2/3.
    assert det.average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert det.average_precision([0.0, 0.5], [0.0, 0.5]) == pytest.approx(0.25)
    assert det.average_precision([], []) == 0.0


def test_map_hand_computed():
    gt = [(np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0.5, 0.4, 0.9]]), np.array([0, 0, 1]))]
    shifted = [0, 0.5, 0.4, 0.9 + 0.4 * 0.1]  # IoU with class 1's truth 0.4*0.4/(0.16+0.016*... ) ~ 0.909
    preds = [(
        np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.2, 0.2, 0.3, 0.3], [0.5, 0.5, 1, 1], shifted]),
        np.array([0.9, 0.8, 0.7, 0.6, 0.95]),
        np.array([0, 0, 0, 0, 1]),
    )]
    out = det.mean_average_precision(preds, gt, 3, class_names=["a", "b", "c"])
    # class a: TP, duplicate (FP), miss (FP), TP -> precision 1, .5, 1/3, .5 at recall .5, .5, .5, 1
    ap_a = 0.5 * 1 + 0.5 * 0.5
    assert out["ap50_a"] == pytest.approx(ap_a)
    assert out["ap50_b"] == pytest.approx(1.0)
    assert "ap50_c" not in out  # no ground truth: not averaged
    assert out["map50"] == pytest.approx((ap_a + 1.0) / 2)
    iou_b = det.iou([shifted], gt[0][0][2:])[0, 0]
    passed = sum(t <= iou_b for t in det.metrics.IOU_THRESHOLDS)
    assert 0 < passed < 10
    assert out["ap50_95_b"] == pytest.approx(passed / 10)
    assert out["ap50_95_a"] == pytest.approx(ap_a)  # exact boxes pass every threshold
    assert out["map50_95"] == pytest.approx((ap_a + passed / 10) / 2)


def test_map_perfect_and_empty_predictions():
    gt = [(np.array([[0.1, 0.1, 0.4, 0.4]]), np.array([0])), (np.zeros((0, 4)), np.zeros(0, int))]
    perfect = [(gt[0][0], np.array([0.5]), np.array([0])), (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
    assert det.mean_average_precision(perfect, gt, 1)["map50_95"] == pytest.approx(1.0)
    nothing = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))] * 2
    assert det.mean_average_precision(nothing, gt, 1)["map50"] == 0.0
