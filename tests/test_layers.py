"""zoo.models.layers.BatchNormalization matches keras.layers.BatchNormalization (fused kernel vs Keras' own)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.layers import BatchNormalization


def _pair(shape, **kwargs):
    """A Keras BN and a zoo BN with the same (non-trivial) weights and moving statistics."""
    rng = np.random.default_rng(0)
    ref, fused = keras.layers.BatchNormalization(**kwargs), BatchNormalization(**kwargs)
    ref.build(shape)
    fused.build(shape)
    weights = [rng.normal(1.0, 0.3, w.shape).astype("float32") for w in ref.weights]
    weights[-1] = np.abs(weights[-1])  # moving variance
    ref.set_weights(weights)
    fused.set_weights(weights)
    return ref, fused


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9, "epsilon": 1.001e-5}, {"center": False, "scale": False}])
def test_matches_keras_outputs_gradients_and_moving_statistics(training, kwargs):
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (8, 5, 6, 4)).astype("float32"))
    ref, fused = _pair(x.shape, **kwargs)
    grads, outputs = [], []
    for layer in (ref, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.range(1.0, 5.0))
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)])
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)
    for g_fused, g_ref in zip(grads[1], grads[0]):
        np.testing.assert_allclose(g_fused, g_ref, rtol=1e-3, atol=1e-3)
    for w_fused, w_ref in zip(fused.non_trainable_weights, ref.non_trainable_weights):
        np.testing.assert_allclose(w_fused.numpy(), w_ref.numpy(), rtol=1e-5, atol=1e-6)
    if training:  # the moving statistics really moved
        assert not np.allclose(fused.moving_mean.numpy(), _pair(x.shape, **kwargs)[1].moving_mean.numpy())


def test_frozen_layer_runs_in_inference_mode_and_keeps_its_statistics():
    x = tf.random.normal((4, 3, 3, 2), seed=0) * 5.0 + 1.0
    ref, fused = _pair(x.shape)
    ref.trainable = fused.trainable = False
    before = fused.moving_mean.numpy().copy()
    np.testing.assert_allclose(fused(x, training=True).numpy(), ref(x, training=True).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), before)


def test_bfloat16_policy_outputs_bfloat16_close_to_float32():
    x = tf.constant(np.random.default_rng(2).normal(0.0, 2.0, (16, 4, 4, 8)).astype("float32"))
    ref = _pair(x.shape)[0]
    fused = BatchNormalization(dtype="mixed_bfloat16")
    fused.build(x.shape)
    fused.set_weights(ref.get_weights())
    for training in (True, False):
        y = fused(tf.cast(x, "bfloat16"), training=training)
        assert y.dtype == tf.bfloat16
        np.testing.assert_allclose(tf.cast(y, "float32").numpy(), ref(x, training=training).numpy(),
                                   rtol=0.05, atol=0.05)
    np.testing.assert_allclose(fused.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=0.02)


def test_other_ranks_use_keras_computation_and_the_layer_round_trips(tmp_path):
    x = np.random.default_rng(3).normal(size=(6, 5)).astype("float32")
    ref, fused = _pair(x.shape)
    np.testing.assert_allclose(fused(x, training=True).numpy(), ref(x, training=True).numpy(), rtol=1e-5)
    inputs = keras.Input((3, 3, 2))
    model = keras.Model(inputs, BatchNormalization(momentum=0.8, name="bn")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("bn")) is BatchNormalization and loaded.get_layer("bn").momentum == 0.8


@pytest.mark.parametrize("shape, kwargs, fused", [
    ((2, 4, 4, 3), {}, True),
    ((2, 4, 4, 3), {"epsilon": 1e-6}, False),  # below cuDNN's bound: Keras' computation
    ((2, 3), {}, False),
    ((2, 4, 3), {}, False),
])
def test_fused_kernel_is_used_exactly_where_it_applies(shape, kwargs, fused):
    layer = BatchNormalization(**kwargs)
    layer.build(shape)
    for training in (True, False):
        graph = tf.function(lambda x: layer(x, training=training)).get_concrete_function(
            tf.TensorSpec(shape, "float32")).graph
        ops = {op.type for op in graph.get_operations()}
        assert ("FusedBatchNormV3" in ops) is fused, (training, sorted(ops))
