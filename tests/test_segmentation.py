"""U-Net builder, segmentation losses and metrics, checked against hand-computed cases."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.tasks import segmentation as seg


def small_unet(**kw):
    args = {"input_shape": (32, 32, 3), "depth": 2, "filters": 4, "classes": 3}
    args.update(kw)
    return zoo.create_model("unet", **args)


# ---------------------------------------------------------------------------------------------- model


def test_unet_is_an_encoder_decoder_with_transposed_conv_and_skips():
    model = small_unet(input_shape=(24, 40, 3), depth=3, classes=5)
    assert model.output_shape == (None, 24, 40, 5)
    ups = [l for l in model.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    pools = [l for l in model.layers if isinstance(l, keras.layers.MaxPooling2D)]
    concats = [l for l in model.layers if isinstance(l, keras.layers.Concatenate)]
    assert len(ups) == len(pools) == len(concats) == 3
    # Each skip joins the encoder map of the same resolution (the shallowest skip: full resolution, 4 filters).
    assert model.get_layer("dec1_concat").input[0].shape == (None, 24, 40, 4)
    assert model.get_layer("dec1_concat").input[0] is model.get_layer("enc1_relu2").output
    probs = model(np.random.default_rng(0).uniform(size=(2, 24, 40, 3)).astype("float32"))
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, atol=1e-5)


def test_unet_paper_size_and_options():
    paper = zoo.unet(input_shape=(None, None, 1), filters=64, depth=4, classes=2, batch_norm=False)
    # Ronneberger et al. 2015: 23 convolutional layers, about 31M parameters.
    convs = [l for l in paper.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    assert len(convs) == 23
    assert 31_000_000 < paper.count_params() < 31_100_000
    plain = small_unet(batch_norm=False, dropout=0.0)
    assert not any(isinstance(l, (keras.layers.BatchNormalization, keras.layers.Dropout)) for l in plain.layers)
    reg = small_unet(dropout=0.5)
    assert reg.get_layer("bottleneck_dropout").rate == 0.5
    logits = small_unet(classifier_activation=None)
    assert logits.get_layer("predictions").activation.__name__ == "linear"


def test_unet_without_top_gives_pixel_features_or_pooled_vector():
    assert small_unet(include_top=False).output_shape == (None, 32, 32, 4)
    assert small_unet(include_top=False, pooling="avg").output_shape == (None, 4)


def test_unet_accepts_any_multiple_at_run_time():
    model = small_unet(input_shape=(None, None, 3))
    assert model(np.zeros((1, 20, 12, 3), "float32")).shape == (1, 20, 12, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (33, 33, 3), "depth": 2}, "sizes that work: 32x32 or 36x36"),
        ({"input_shape": (64, 50, 3), "depth": 4}, "2**depth=16"),
        ({"input_shape": (8, 8, 3), "depth": 4}, "minimum is 16x16"),
        ({"depth": 0}, "depth=0"),
        ({"depth": 7}, "depth=7"),
        ({"filters": 0}, "filters=0"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"batch_norm": "yes"}, "batch_norm='yes'"),
        ({"encoder_weights": "imagenet"}, "encoder_weights='imagenet'"),
        ({"freeze_encoder": 1}, "freeze_encoder=1"),
        ({"classes": 0}, "classes=0"),
    ],
)
def test_unet_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        small_unet(**kwargs)
    assert message in str(err.value)


def test_freeze_encoder_keeps_decoder_trainable():
    model = small_unet(freeze_encoder=True)
    frozen = {l.name for l in model.layers if not l.trainable}
    assert "enc1_conv1" in frozen and "bottleneck_conv2" in frozen
    assert not any(n.startswith("dec") for n in frozen)
    trainable_paths = [v.path for v in model.trainable_variables]
    assert trainable_paths and all(p.startswith(("dec", "predictions")) for p in trainable_paths)


def test_backbone_encoder_skips_weights_and_freezing(tmp_path):
    from zoo.models.features import FEATURE_LAYERS

    backbone = zoo.create_model("mobilenet_v2", include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_v2_notop.weights.h5"
    backbone.save_weights(path)
    model = zoo.unet(input_shape=(32, 32, 3), encoder="mobilenet_v2", classes=4, filters=4,
                     encoder_weights=str(path), freeze_encoder=True)
    assert model.output_shape == (None, 32, 32, 4)
    levels = FEATURE_LAYERS["mobilenet_v2"]
    # The backbone is part of the U-Net's own graph: C1..C4 feed the skips, C5 is the bottleneck.
    for k in (1, 2, 3, 4):
        assert model.get_layer(f"dec{k + 1}_concat").input[0] is model.get_layer(levels[f"C{k}"]).output
    assert model.get_layer("dec5_up").input is model.get_layer(levels["C5"]).output
    for name in ("Conv1", "block_16_project", levels["C5"]):
        layer = model.get_layer(name)
        assert not layer.trainable
        for a, b in zip(layer.get_weights(), backbone.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert {v.path.split("/")[0] for v in model.trainable_variables} >= {"dec1_up", "predictions"}
    assert all(v.path.startswith(("dec", "predictions")) for v in model.trainable_variables)
    with pytest.raises(ValueError, match="Did you mean 'mobilenet_v2'"):
        zoo.unet(encoder="mobilenetv2")
    with pytest.raises(ValueError, match="multiples of 2\\*\\*depth=32"):
        zoo.unet(input_shape=(48, 48, 3), encoder="mobilenet_v2")


# ---------------------------------------------------------------------------------------------- losses


def _onehot_probs(ids, classes, p=1.0):
    ids = np.asarray(ids)
    off = (1.0 - p) / (classes - 1)
    out = np.full(ids.shape + (classes,), off, np.float32)
    np.put_along_axis(out, ids[..., None], p, axis=-1)
    return out


def test_cross_entropy_matches_hand_computation_with_ignore_and_weights():
    y = np.array([[[0, 1, 255]]])
    p = np.array([[[[0.8, 0.2], [0.4, 0.6], [0.9, 0.1]]]], np.float32)
    ce = seg.MaskedCrossEntropy()
    np.testing.assert_allclose(ce(y, p), (-np.log(0.8) - np.log(0.6)) / 2, rtol=1e-5)
    weighted = seg.MaskedCrossEntropy(class_weights=[1.0, 3.0])
    np.testing.assert_allclose(weighted(y, p), (-np.log(0.8) - 3 * np.log(0.6)) / 4, rtol=1e-5)
    logits = np.log(p)
    np.testing.assert_allclose(seg.MaskedCrossEntropy(from_logits=True)(y, logits), ce(y, p), rtol=1e-5)


def test_dice_matches_hand_computation():
    y = np.array([[[0, 1], [1, 255]]])
    perfect = _onehot_probs([[[0, 1], [1, 0]]], 2)
    assert float(seg.DiceLoss(smooth=0.0)(y, perfect)) == pytest.approx(0.0, abs=1e-6)
    half = np.full((1, 2, 2, 2), 0.5, np.float32)
    # class 0: 2*0.5 / (1.5 + 1) = 0.4; class 1: 2*1.0 / (1.5 + 2) = 4/7; the ignored pixel is not counted.
    expected = 1 - (0.4 + 4 / 7) / 2
    assert float(seg.DiceLoss(smooth=0.0)(y, half)) == pytest.approx(expected, rel=1e-5)
    weighted = 1 - (1 * 0.4 + 3 * 4 / 7) / 4
    assert float(seg.DiceLoss(smooth=0.0, class_weights=[1, 3])(y, half)) == pytest.approx(weighted, rel=1e-5)
    combo = seg.DiceCrossEntropy(smooth=0.0, ce_weight=0.5, dice_weight=2.0)(y, half)
    assert float(combo) == pytest.approx(0.5 * np.log(2) + 2 * expected, rel=1e-5)


def test_ignored_pixels_do_not_change_any_loss():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(2, 6, 6))
    y[:, 0, :] = 255
    p1 = tf.nn.softmax(rng.normal(size=(2, 6, 6, 3)).astype("float32")).numpy()
    p2 = p1.copy()
    p2[:, 0, :, :] = p2[:, 0, :, ::-1]
    for loss in (seg.MaskedCrossEntropy(), seg.DiceLoss(), seg.DiceCrossEntropy()):
        assert float(loss(y, p1)) == pytest.approx(float(loss(y, p2)), rel=1e-6)
        assert float(loss(y[..., None], p1)) == pytest.approx(float(loss(y, p1)), rel=1e-6)


def test_losses_serialize_and_load_with_a_model(tmp_path):
    model = small_unet()
    loss = seg.DiceCrossEntropy(class_weights=[0.5, 1.0, 2.0], ce_weight=0.7)
    model.compile(optimizer="adam", loss=loss, metrics=seg.metrics.keras_metrics(3))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.loss, seg.DiceCrossEntropy)
    assert loaded.loss.get_config() == loss.get_config()
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, size=(2, 32, 32))
    np.testing.assert_allclose(loaded.loss(y, loaded(x)), loss(y, model(x)), rtol=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(seg.DiceLoss(smooth=2.0)))
    assert isinstance(again, seg.DiceLoss) and again.smooth == 2.0


def test_get_loss_and_bad_values():
    assert isinstance(seg.get_loss("crossentropy"), seg.MaskedCrossEntropy)
    with pytest.raises(ValueError, match="'focal'.*crossentropy, dice, dice_ce"):
        seg.get_loss("focal")
    with pytest.raises(ValueError, match="class_weights"):
        seg.DiceLoss(class_weights=[-1.0, 1.0])
    with pytest.raises(ValueError, match="2 entries but the model predicts 3"):
        seg.DiceLoss(class_weights=[1.0, 1.0])(np.zeros((1, 2, 2)), np.full((1, 2, 2, 3), 1 / 3, np.float32))


def test_class_weights_from_pixel_counts():
    masks = [np.array([[0, 0, 0], [0, 0, 0]]), np.array([[1, 1, 1, 2, 255, 255]])]
    counts = seg.class_frequencies(masks, 3)
    assert counts.tolist() == [6, 3, 1]
    # frequencies 0.6, 0.3, 0.1; median 0.3.
    np.testing.assert_allclose(seg.class_weights(counts, "median_frequency"), [0.5, 1.0, 3.0])
    np.testing.assert_allclose(seg.class_weights(counts, "inverse_frequency"), [10 / 18, 10 / 9, 10 / 3])
    assert seg.class_weights([5, 0, 5], "median_frequency") == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="'balanced'"):
        seg.class_weights(counts, "balanced")


# ---------------------------------------------------------------------------------------------- metrics

Y_TRUE = np.array([[[0, 0, 1], [1, 2, 255]]])
Y_PRED = np.array([[[0, 1, 1], [1, 1, 0]]])


def test_confusion_iou_and_accuracy_by_hand():
    cm = seg.confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    # IoU: class 0 = 1 / (2 + 1 - 1), class 1 = 2 / (2 + 4 - 2), class 2 = 0 / 1.
    np.testing.assert_allclose(seg.per_class_iou(cm), [0.5, 0.5, 0.0])
    assert seg.mean_iou(cm) == pytest.approx(1 / 3)
    assert seg.pixel_accuracy(cm) == pytest.approx(3 / 5)


def test_one_confusion_matrix_for_labels_and_masks():
    from callbacks import reports

    # Segmentation's is the classification one with the void label skipped.
    np.testing.assert_array_equal(seg.confusion_matrix(Y_TRUE, Y_PRED, 3), reports.confusion_matrix(Y_TRUE, Y_PRED, 3, 255))
    assert reports.confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3).tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"\[0, 3\). Received: \[255\]"):
        reports.confusion_matrix(Y_TRUE, Y_PRED, 3)  # no ignore_index: an id out of range is an error
    with pytest.raises(ValueError, match="Shapes differ"):
        reports.confusion_matrix([0, 1], [0], 3)


def test_absent_class_has_no_iou_and_is_left_out_of_the_mean():
    cm = seg.confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 4)
    iou = seg.per_class_iou(cm)
    assert iou[:2].tolist() == [1.0, 1.0] and np.isnan(iou[2:]).all()
    assert seg.mean_iou(cm) == 1.0
    summary = seg.metrics.summarize(cm, ["bg", "a", "b", "c"])
    assert summary == {"mean_iou": 1.0, "pixel_accuracy": 1.0, "iou_bg": 1.0, "iou_a": 1.0, "iou_b": None,
                       "iou_c": None}


def test_keras_metrics_agree_with_hand_case():
    scores = _onehot_probs(Y_PRED, 3, p=0.6)
    miou, acc = seg.metrics.keras_metrics(3)
    miou.update_state(Y_TRUE, scores)
    acc.update_state(Y_TRUE, scores)
    assert float(miou.result()) == pytest.approx(1 / 3, rel=1e-5)
    assert float(acc.result()) == pytest.approx(3 / 5, rel=1e-6)
    again = seg.PixelAccuracy.from_config(acc.get_config())
    assert again.ignore_index == 255 and again.name == "pixel_accuracy"


def test_evaluate_dataset_scores_every_batch():
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=(6, 8, 8, 3)).astype("float32")
    masks = rng.integers(0, 3, size=(6, 8, 8)).astype("int32")
    masks[0, :2] = 255
    identity = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Identity()])
    ds = tf.data.Dataset.from_tensor_slices((scores, masks)).batch(4)
    got = seg.evaluate_dataset(identity, ds, 3, ["bg", "x", "y"])
    cm = seg.confusion_matrix(masks, scores.argmax(-1), 3)
    assert got["mean_iou"] == pytest.approx(seg.mean_iou(cm))
    assert got["pixel_accuracy"] == pytest.approx(seg.pixel_accuracy(cm))
    assert got["iou_y"] == pytest.approx(seg.per_class_iou(cm)[2])
    assert cm.sum() == 6 * 64 - 16


# ---------------------------------------------------------------------------------------------- report


def test_mask_report_png(tmp_path):
    import matplotlib.image

    from zoo.tasks.segmentation import report

    colored = report.colorize(np.array([[0, 1], [255, 9]]), 3)
    np.testing.assert_allclose(colored[0, 0], [0, 0, 0])
    np.testing.assert_allclose(colored[0, 1], report.palette(3)[1])
    np.testing.assert_allclose(colored[1], [[1, 1, 1], [1, 1, 1]])  # ignored and unknown ids: white
    images = np.random.default_rng(0).uniform(size=(3, 16, 16, 3)).astype("float32")
    masks = np.random.default_rng(1).integers(0, 3, size=(3, 16, 16))
    path = report.mask_report(images, masks, masks, tmp_path / "masks.png", num_classes=3,
                              class_names=["bg", "a", "b"])
    png = matplotlib.image.imread(path)
    assert png.ndim == 3 and png.shape[0] > png.shape[1]  # three rows of (image, true, predicted)
