"""Precise BatchNorm (zoo.training.precise_bn) and its use at the end of `zoo.train`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import callbacks
import zoo
from benchmarks import train_matrix
from zoo.models.layers import BatchNormalization
from zoo.training import loop, precise_bn


def _net(bn=BatchNormalization, momentum=0.999):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = bn(momentum=momentum, name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, name="conv2")(x)
    x = bn(momentum=momentum, name="bn2")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _population(net, x, layer):
    """Per-channel mean and variance of `layer`'s input over all of `x`, the model in training mode."""
    probe = keras.Model(net.inputs, net.get_layer(layer).input)
    feats = np.concatenate([np.asarray(probe(x[i:i + 16], training=True)) for i in range(0, len(x), 16)])
    return feats.mean((0, 1, 2)), feats.var((0, 1, 2))


@pytest.mark.parametrize("bn", [BatchNormalization, keras.layers.BatchNormalization])
def test_statistics_become_the_population_statistics_of_the_training_batches(bn):
    net = _net(bn)
    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 8, 8, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(64))).batch(16)
    momentum_before = net.get_layer("bn1").momentum
    assert precise_bn.recalibrate(net, ds, examples=10_000) == 64  # the dataset ends first
    mean, var = _population(net, x, "bn1")  # bn1's input does not depend on any BatchNorm
    np.testing.assert_allclose(net.get_layer("bn1").moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.get_layer("bn1").moving_variance.numpy(), var, rtol=1e-3)
    assert net.get_layer("bn1").momentum == momentum_before
    # bn2's input is normalised by bn1's batch statistics, as in training: its batch means average out
    assert np.abs(net.get_layer("bn2").moving_mean.numpy()).max() > 0.01


def test_examples_bound_the_pass_and_frozen_layers_keep_their_statistics():
    net = _net()
    net.get_layer("bn2").trainable = False
    before = net.get_layer("bn2").moving_mean.numpy().copy()
    x = np.random.default_rng(1).normal(1.0, 1.0, (64, 8, 8, 3)).astype("float32")
    assert precise_bn.recalibrate(net, tf.data.Dataset.from_tensor_slices(x).batch(16), examples=20) == 32
    mean, _ = _population(net, x[:32], "bn1")
    np.testing.assert_allclose(net.get_layer("bn1").moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(net.get_layer("bn2").moving_mean.numpy(), before)


def test_an_interrupted_pass_leaves_the_statistics_as_they_were():
    net = _net()
    before = net.get_layer("bn1").moving_mean.numpy().copy()

    def batches():
        yield np.ones((4, 8, 8, 3), "float32") * 5
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        precise_bn.recalibrate(net, batches(), examples=100)
    np.testing.assert_array_equal(net.get_layer("bn1").moving_mean.numpy(), before)
    assert net.get_layer("bn1").momentum == 0.999


def test_a_model_without_batchnorm_is_left_alone():
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert precise_bn.recalibrate(net, [np.ones((2, 4), "float32")], examples=10) == 0


def _slow_bn_net(momentum=0.999):
    inputs = keras.Input((12, 12, 1))
    x = BatchNormalization(momentum=momentum, name="bn")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("examples", [8192, 0])
def test_zoo_train_recomputes_the_statistics_unless_told_not_to(tmp_path, examples):
    x, y = train_matrix.tiny_images(96, (12, 12, 1), 3)
    run = zoo.train(_slow_bn_net(), (x, y), out=tmp_path / "run", epochs=2, batch_size=16, val_split=0.0,
                    precise_bn=examples, verbose=0)
    conv = keras.Model(run.model.inputs, run.model.get_layer("conv").output)
    mean = np.asarray(conv(x.astype("float32") / 255.0)).mean((0, 1, 2))  # normalization "scale"
    moving = run.model.get_layer("bn").moving_mean.numpy()
    if examples:
        np.testing.assert_allclose(moving, mean, rtol=1e-3, atol=1e-4)
    else:  # 12 steps at momentum 0.999 leave 99% of the initial zeros
        assert np.abs(moving).max() < 0.05 * np.abs(mean).max()
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras")
    np.testing.assert_array_equal(saved.get_layer("bn").moving_mean.numpy(), moving)  # saved after the pass


def test_precise_bn_must_be_a_count(tmp_path):
    x, y = train_matrix.tiny_images(32, (12, 12, 1), 3)
    with pytest.raises(ValueError, match=r"`precise_bn` must be an integer >= 0. Received: precise_bn=-1"):
        zoo.train(_slow_bn_net(), (x, y), out=tmp_path / "run", precise_bn=-1, verbose=0)


def test_the_default_pass_stops_after_2048_examples(tmp_path, capsys):
    x, y = train_matrix.tiny_images(2600, (12, 12, 1), 3)
    zoo.train(_slow_bn_net(), (x, y), out=tmp_path / "run", epochs=1, batch_size=64, val_split=0.0, verbose=0)
    assert "statistics recomputed over 2048 training examples" in capsys.readouterr().out  # not all 2,600


def test_staleness_names_few_steps_or_an_undecayed_rate():
    slow, fast = _net(momentum=0.999), _net(momentum=0.9)
    assert precise_bn.staleness(slow, steps=225, final_lr=0.0, peak_lr=1e-3) == (
        "225 steps at momentum 0.999 leave 79.8% of the initial statistics")
    assert precise_bn.staleness(fast, steps=30, final_lr=1e-4, peak_lr=0.1).startswith("30 steps at momentum 0.9")
    assert precise_bn.staleness(fast, steps=96, final_lr=1e-3, peak_lr=0.1) is None  # the CIFAR recipe, 3 epochs
    assert precise_bn.staleness(fast, steps=96, final_lr=0.05, peak_lr=0.1) == (
        "the learning rate ended at 0.05, 50% of its peak 0.1")
    no_bn = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert precise_bn.staleness(no_bn, steps=1, final_lr=1.0, peak_lr=1.0) is None


@pytest.mark.parametrize("when", ["stale", "always"])
def test_zoo_train_keeps_averages_that_are_already_right_unless_always(tmp_path, capsys, when):
    x, y = train_matrix.tiny_images(256, (12, 12, 1), 3)
    run = zoo.train(_slow_bn_net(momentum=0.9), (x, y), out=tmp_path / "run", epochs=5, batch_size=16,
                    val_split=0.0, lr_schedule="cosine", precise_bn_when=when, verbose=0)  # 80 steps, rate to 0
    out = capsys.readouterr().out
    conv = keras.Model(run.model.inputs, run.model.get_layer("conv").output)
    mean = np.asarray(conv(x.astype("float32") / 255.0)).mean((0, 1, 2))
    moving = run.model.get_layer("bn").moving_mean.numpy()
    if when == "always":
        assert "recomputed over 256 training examples (precise BN: precise_bn_when=always;" in out
        np.testing.assert_allclose(moving, mean, rtol=1e-3, atol=1e-4)
    else:  # Keras' average of the last ~10 batches: close to the population mean, not equal to it
        assert "moving averages kept" in out and "recomputed" not in out
        np.testing.assert_allclose(moving, mean, rtol=0.1, atol=0.05)
        assert not np.allclose(moving, mean, rtol=1e-3, atol=1e-4)


def test_weights_restored_by_early_stopping_are_recalibrated(tmp_path, capsys):
    x, y = train_matrix.tiny_images(256, (12, 12, 1), 3)
    early = callbacks.EarlyStopping(patience=1)
    early.best_epoch, early.best_weights = 1, [np.zeros(1)]
    history = callbacks.HistoryCSV(str(tmp_path / "history.csv"))
    history.rows = [{"epoch": e} for e in (1, 2, 3, 4)]
    watch = loop._Watch(callbacks=[], guard=None, history=history, backup=None, early=early, verbose=0)
    net = _slow_bn_net(momentum=0.9)
    net.compile(optimizer=keras.optimizers.SGD(1e-5), loss="sparse_categorical_crossentropy")
    net.optimizer.iterations.assign(10_000)
    recipe = zoo.Recipe(lr=0.1)
    assert loop._why_stale(net, recipe, watch) == "early stopping restored epoch 2 of 4"
    early.best_epoch = 3
    assert loop._why_stale(net, recipe, watch) is None  # 10,000 steps, rate at 1e-4 of its peak
