"""zoo.transfer: layer selection, freezing, BatchNorm in inference mode, layer-wise rates, new heads, sources."""

import json
import re
import urllib.error

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import transfer


def small_mobilenet(**kw):
    kw = {"input_shape": (32, 32, 3), "include_top": False, "weights": None, "alpha": 0.35, **kw}
    return keras.applications.MobileNetV2(**kw)


def bn_state(model):
    return {
        layer.name: [w.numpy().copy() for w in (layer.moving_mean, layer.moving_variance)]
        for layer in transfer.leaves(model) if isinstance(layer, keras.layers.BatchNormalization)
    }


def kernels(model):
    return {layer.name: layer.kernel.numpy().copy() for layer in transfer.leaves(model) if hasattr(layer, "kernel")
            and not layer.name.startswith("input_")}


# ------------------------------------------------------------------------------------------ selection

def test_select_by_name_glob_regex_block_index_slice_and_predicate():
    m = small_mobilenet()
    names = lambda sel, **kw: [layer.name for layer in transfer.select_layers(m, sel, **kw)]  # noqa: E731
    assert names("Conv_1") == ["Conv_1"]
    assert names("block_16_*") == [layer.name for layer in m.layers if layer.name.startswith("block_16_")]
    assert names("block_16") == names("block_16_*")  # a block name
    assert names("re:block_1[45]_project") == ["block_14_project", "block_15_project"]
    assert names(re.compile("block_14_project(_BN)?")) == ["block_14_project", "block_14_project_BN"]
    assert names(120) == [m.layers[120].name]
    assert names(-1) == [m.layers[-1].name]
    assert names(slice(0, 3)) == [layer.name for layer in m.layers[:3]]
    assert names(None, from_layer=150) == [layer.name for layer in m.layers[150:]]
    assert names(None, from_layer="Conv_1") == ["Conv_1", "Conv_1_bn", "out_relu"]
    assert names(lambda layer: isinstance(layer, keras.layers.DepthwiseConv2D))[0] == "expanded_conv_depthwise"
    assert names(["Conv_1", 0]) == [m.layers[0].name, "Conv_1"]  # model order, no duplicates


def test_selection_errors_name_the_closest_layers():
    m = small_mobilenet()
    with pytest.raises(ValueError, match="Conv_1"):
        transfer.select_layers(m, "Conv_2")
    with pytest.raises(ValueError, match="out of range"):
        transfer.select_layers(m, 10_000)
    with pytest.raises(ValueError, match="from_layer"):
        transfer.select_layers(m, from_layer=1.5)
    with pytest.raises(ValueError, match="Invalid regex"):
        transfer.select_layers(m, "re:(")


def test_freeze_unfreeze_inside_a_nested_backbone():
    base = small_mobilenet()
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    frozen = transfer.freeze(model)
    assert "Conv1" in frozen and "out" in frozen and model.trainable_weights == []
    transfer.unfreeze(model, ["block_16", "out"])
    paths = sorted(v.path for v in model.trainable_weights)
    assert paths == sorted(["block_16_expand/kernel", "block_16_depthwise/kernel", "block_16_project/kernel",
                            "out/kernel", "out/bias"])  # BN stays frozen by default
    transfer.unfreeze(model, "block_16", train_bn=True)
    assert "block_16_project_BN/gamma" in {v.path for v in model.trainable_weights}
    transfer.freeze(model, from_layer="block_16_expand")
    assert model.trainable_weights == []


def test_trainable_summary_lists_states_and_totals():
    model = transfer.with_new_head(small_mobilenet(), 4, input_shape=(28, 28, 1), preprocess="tf")
    transfer.freeze(model)
    transfer.unfreeze(model, transfer.HEAD_LAYERS)
    text = transfer.trainable_summary(model)
    head = sum(int(np.prod(w.shape)) for w in model.get_layer("predictions").weights)
    assert re.search(r"predictions\s+Dense\s+" + f"{head:,}" + r"\s+trainable", text)
    assert re.search(r"bn_Conv1\s+BatchNormalization.*frozen \(BN inference mode\)", text)
    assert "fixed (input adapter)" in text
    assert f"Trainable: {head:,} params" in text
    short = transfer.trainable_summary(model, collapse=True).splitlines()
    assert len(short) == 5  # header, adapters, frozen backbone, head, total
    assert short[2].split()[-1] == "frozen" and short[3].split()[-1] == "trainable"


# ------------------------------------------------------------------------------------------ BatchNorm

@pytest.mark.parametrize("train_bn", [False, True])
def test_frozen_batchnorm_keeps_moving_statistics_while_the_rest_trains(train_bn):
    net = zoo.create_model("deep_nn", classes=3, input_shape=(8, 8, 3), layer_sizes=(16, 16, 16), batch_norm=True)
    model = transfer.with_new_head(net, 3, dropout=0.0)
    transfer.freeze(model)
    transfer.unfreeze(model, from_layer="dense_2", train_bn=train_bn)
    bn_before, k_before = bn_state(model), kernels(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (64, 8, 8, 3)).astype("float32")  # statistics far from the initial 0 / 1
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 3, 64), batch_size=16, epochs=2, verbose=0)
    bn_after, k_after = bn_state(model), kernels(model)
    moved = {n for n in bn_before if not np.allclose(bn_before[n][0], bn_after[n][0])
             or not np.allclose(bn_before[n][1], bn_after[n][1])}
    changed = {n for n in k_before if not np.allclose(k_before[n], k_after[n])}
    assert changed == {"dense_2", "dense_3", "predictions"}  # the frozen dense_1 is untouched
    if train_bn:
        assert moved == {"bn_2", "bn_3"}
    else:
        assert moved == set()
        # Inference mode: with every BN frozen, training=True gives the same output as training=False.
        np.testing.assert_allclose(model(x[:8], training=True), model(x[:8], training=False), atol=1e-5)


# ------------------------------------------------------------------------- discriminative learning rates

def _two_layer():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(5, name="low")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="predictions")(x))


def _one_step(model, optimizer, x, y):
    model.compile(optimizer, "mse")
    before = {v.path: v.numpy().copy() for v in model.trainable_weights}
    with tf.GradientTape() as tape:
        loss = keras.losses.mean_squared_error(y, model(x)).numpy().mean() * 0 + tf.reduce_mean(
            keras.losses.mean_squared_error(y, model(x)))
    grads = {v.path: g.numpy() for v, g in zip(model.trainable_weights, tape.gradient(loss, model.trainable_weights))}
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    delta = {v.path: v.numpy() - before[v.path] for v in model.trainable_weights}
    return grads, delta


def test_layerwise_sgd_scales_each_update_exactly():
    model = _two_layer()
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(8, 2)).astype("float32")
    opt = transfer.discriminative_optimizer(keras.optimizers.SGD(0.5), {"low": 0.1})
    grads, delta = _one_step(model, opt, x, y)
    np.testing.assert_allclose(delta["low/kernel"], -0.05 * grads["low/kernel"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(delta["predictions/kernel"], -0.5 * grads["predictions/kernel"], rtol=1e-4, atol=1e-7)


def test_layerwise_adam_first_step_is_lr_times_multiplier():
    model = _two_layer()
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(8, 2)).astype("float32")
    opt = transfer.discriminative_optimizer("adam", {"low/*": 0.01})
    opt.learning_rate = 0.1  # what callbacks do: the base rate
    grads, delta = _one_step(model, opt, x, y)
    # Adam's first step is -lr * g / (|g| + eps) = -lr * sign(g) for |g| >> eps.
    big = np.abs(grads["low/kernel"]) > 1e-4
    np.testing.assert_allclose(delta["low/kernel"][big], -0.001 * np.sign(grads["low/kernel"][big]), rtol=1e-2)
    np.testing.assert_allclose(np.abs(delta["predictions/bias"]), 0.1, rtol=1e-2)


def test_layerwise_weight_decay_follows_the_multiplier():
    model = _two_layer()
    x = np.zeros((4, 4), "float32")  # zero input: kernels get zero gradients, only decay moves them
    y = np.zeros((4, 2), "float32")
    opt = transfer.discriminative_optimizer(keras.optimizers.AdamW(0.1, weight_decay=0.5), {"low": 0.2})
    k_low, k_top = model.get_layer("low").kernel.numpy(), model.get_layer("predictions").kernel.numpy()
    _one_step(model, opt, x, y)
    np.testing.assert_allclose(model.get_layer("low").kernel.numpy(), k_low * (1 - 0.5 * 0.1 * 0.2), rtol=1e-5)
    np.testing.assert_allclose(model.get_layer("predictions").kernel.numpy(), k_top * (1 - 0.5 * 0.1), rtol=1e-5)


def test_layerwise_multipliers_decay_towards_the_input():
    model = transfer.with_new_head(small_mobilenet(), 3)
    transfer.freeze(model)
    transfer.unfreeze(model, from_layer="block_14_expand")
    mult = transfer.layerwise_lr_multipliers(model, decay=0.5, groups=3)
    assert set(mult) == {v.path for v in model.trainable_weights}
    assert mult["predictions/kernel"] == 1.0
    assert mult["block_14_expand/kernel"] == 0.125 and mult["Conv_1/kernel"] == 0.5
    order = [mult[v.path] for v in model.trainable_weights]
    assert order == sorted(order)  # non-decreasing from input to output
    blocks = transfer.layerwise_lr_multipliers(model, decay=0.5, groups="blocks")
    assert blocks["block_14_expand/kernel"] == 0.125 and blocks["block_15_project/kernel"] == 0.25
    assert blocks["Conv_1/kernel"] == 0.5  # outside any block: joins block_16
    lenet = transfer.with_new_head(zoo.create_model("lenet5"), 3)
    per_layer = transfer.layerwise_lr_multipliers(lenet, decay=0.5, groups="blocks")  # no blocks: one per layer
    assert [per_layer[f"{n}/kernel"] for n in ("c1", "c3", "c5", "f6", "predictions")] == [0.0625, 0.125, 0.25, 0.5, 1]
    with pytest.raises(ValueError, match="decay"):
        transfer.layerwise_lr_multipliers(model, decay=0)
    with pytest.raises(ValueError, match="groups"):
        transfer.layerwise_lr_multipliers(model, groups="stages")


def test_layerwise_optimizer_saves_and_loads_with_the_model(tmp_path):
    model = _two_layer()
    opt = transfer.discriminative_optimizer(keras.optimizers.Adam(1e-2), {"low": 0.1})
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.zeros((16, 2), "float32")
    model.compile(opt, "mse")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.optimizer).__name__ == "LayerwiseAdam"
    assert loaded.optimizer.lr_multipliers == {"low": 0.1}
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    loaded.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Adam"):
        transfer.discriminative_optimizer(keras.optimizers.Adafactor(), {})
    with pytest.raises(ValueError, match="rates >= 0"):
        transfer.discriminative_optimizer("sgd", {"low": -1})


# ------------------------------------------------------------------------------------------ new heads

def test_new_head_on_zoo_models_keeps_the_body_and_its_weights():
    lenet = zoo.create_model("lenet5", classes=10)
    model = transfer.with_new_head(lenet, 3)
    assert [layer.name for layer in model.layers][-4:] == ["c5", "f6", "head_dropout", "predictions"]
    assert model.output_shape == (None, 3)
    assert model.get_layer("c5") is lenet.get_layer("c5")
    net = zoo.create_model("deep_nn", classes=1, input_shape=(8, 8, 3), layer_sizes=(6, 5))
    assert transfer.with_new_head(net, 4, dropout=0).output_shape == (None, 4)
    headless = zoo.create_model("deep_nn", include_top=False, input_shape=(8, 8, 3), layer_sizes=(6, 5))
    assert "act_2" in [layer.name for layer in transfer.with_new_head(headless, 2).layers]  # nothing cut
    seq = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="h"), keras.layers.Dense(2, name="predictions")])
    assert [layer.name for layer in transfer.with_new_head(seq, 5, dropout=0).layers][-2:] == ["h", "predictions"]


def test_new_head_on_keras_applications_and_round_trip(tmp_path):
    full = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, alpha=0.35, classes=7)
    model = transfer.with_new_head(full, 5, feature_layer=None)
    names = [layer.name for layer in model.layers]
    assert names[-3:] == ["global_average_pooling2d", "head_dropout", "predictions"]  # pooled already
    assert model.get_layer("predictions") is not full.get_layer("predictions")
    assert model.output_shape == (None, 5)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    cut = transfer.with_new_head(full, 2, feature_layer="block_16_project")
    assert "Conv_1" not in [layer.name for layer in cut.layers]
    with pytest.raises(ValueError, match="block_16_project"):
        transfer.with_new_head(full, 2, feature_layer="block_16_projekt")


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_input_preprocess_equals_keras_preprocess_input(mode):
    model = transfer.with_new_head(small_mobilenet(), 2, input_shape=(32, 32, 3), preprocess=mode)
    adapter = keras.Model(model.inputs, model.get_layer("input_preprocess").output)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    want = keras.applications.imagenet_utils.preprocess_input(x * 255.0, mode=mode)
    np.testing.assert_allclose(adapter.predict(x, verbose=0), want, atol=1e-3)


def test_grayscale_small_inputs_are_resized_and_made_rgb():
    model = transfer.with_new_head(small_mobilenet(), 4, input_shape=(28, 28, 1), preprocess="tf")
    assert [layer.name for layer in model.layers[:4]] == ["image", "input_resize", "input_channels", "input_preprocess"]
    rgb = keras.Model(model.inputs, model.get_layer("input_channels").output)
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    out = rgb.predict(x, verbose=0)
    assert out.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(out[..., 0], out[..., 2])
    transfer.unfreeze(model)
    assert not model.get_layer("input_preprocess").trainable  # adapters never train
    to_gray = transfer.with_new_head(zoo.create_model("lenet5"), 2, input_shape=(28, 28, 3))
    gray = keras.Model(to_gray.inputs, to_gray.get_layer("input_channels").output).predict(
        np.ones((1, 28, 28, 3), "float32") * [0.2, 0.4, 0.6], verbose=0)
    np.testing.assert_allclose(gray, 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, rtol=1e-5)
    with pytest.raises(ValueError, match="grayscale"):
        transfer.with_new_head(small_mobilenet(), 2, input_shape=(32, 32, 4))


def test_new_head_argument_errors():
    m = small_mobilenet()
    with pytest.raises(ValueError, match="classes"):
        transfer.with_new_head(m, 0)
    with pytest.raises(ValueError, match="pooling"):
        transfer.with_new_head(m, 2, pooling="sum")
    with pytest.raises(ValueError, match="dropout"):
        transfer.with_new_head(m, 2, dropout=1.0)
    with pytest.raises(ValueError, match="Did you mean 'caffe'"):
        transfer.with_new_head(m, 2, preprocess="cafe")

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="Functional or Sequential"):
        transfer.with_new_head(Sub(), 2)


# --------------------------------------------------------------------------------- pretrained sources

def test_run_directory_and_keras_file_sources(tmp_path):
    lenet = zoo.create_model("lenet5", classes=10)
    run = tmp_path / "run"
    run.mkdir()
    lenet.save(run / "model.keras")
    norm = {"kind": "standardize", "scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    (run / "config.json").write_text(json.dumps({"model": "lenet5", "data": {"normalization": norm}}))
    src = transfer.load_pretrained(str(run))
    assert src.kind == "run" and src.preprocess == norm and src.config["model"] == "lenet5"
    model = transfer.with_new_head(str(run), 3)
    pre = keras.Model(model.inputs, model.get_layer("input_preprocess").output)
    np.testing.assert_allclose(pre.predict(np.full((1, 28, 28, 1), 0.75, "float32"), verbose=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.get_layer("c3").kernel.numpy(), lenet.get_layer("c3").kernel.numpy())
    src = transfer.load_pretrained(str(run / "model.keras"))
    assert src.kind == "keras_file" and src.model.count_params() == lenet.count_params()
    with pytest.raises(ValueError, match="no model.keras"):
        transfer.load_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        transfer.load_pretrained(str(tmp_path / "nope.keras"))


def test_keras_and_zoo_name_sources():
    src = transfer.load_pretrained("keras:MobileNetV2", weights=None, input_shape=(32, 32, 3))
    assert src.kind == "keras_app" and src.model.output_shape == (None, 1, 1, 1280) and src.preprocess == "scale"
    src = transfer.load_pretrained("zoo:lenet5", input_shape=(32, 32, 1))
    assert src.kind == "zoo" and src.model.output_shape == (None, 6, 6, 16)
    with pytest.raises(ValueError, match="MobileNetV2"):
        transfer.load_pretrained("keras:MobileNetV22", weights=None)
    with pytest.raises(ValueError, match="lenet5"):
        transfer.load_pretrained("lenet6")


def test_imagenet_offline_names_the_file_to_place(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)  # the one network call, as when offline
    with pytest.raises(ValueError) as err:
        transfer.load_pretrained("keras:MobileNetV2", input_shape=(96, 96, 3))
    msg = str(err.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in msg
    assert str(tmp_path / "models") in msg and "weights=None" in msg
