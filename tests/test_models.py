"""Registry-wide model tests: every registered model gets each of these, no per-model code."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo

ALL = zoo.list_models()
HEADED = [n for n in ALL if zoo.get_spec(n).task in ("classification", "sequence")]


def build(name, **extra):
    spec = zoo.get_spec(name)
    return zoo.create_model(name, **{**spec.test_overrides, **extra})


def sample(model, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    shape = tuple(d or 8 for d in model.inputs[0].shape[1:])
    return rng.uniform(0, 1, size=(batch,) + shape).astype("float32")


def expected_output_shape(name, model):
    spec = zoo.get_spec(name)
    overrides = spec.test_overrides
    if spec.output_shape is not None:
        return tuple(spec.output_shape(overrides))
    return (overrides.get("classes", 1 if name in ("logistic_regression", "shallow_nn", "deep_nn") else 10),)


def outputs_of(model, x, training=False):
    out = model(x, training=training)
    return [np.asarray(o) for o in tf.nest.flatten(out)]


@pytest.mark.parametrize("name", ALL)
def test_forward_shape_and_finite(name):
    model = build(name)
    x = sample(model)
    out = model(x)
    first = tf.nest.flatten(out)[0]
    assert tuple(first.shape) == (4,) + expected_output_shape(name, model)
    for o in outputs_of(model, x):
        assert np.all(np.isfinite(o)), f"{name} produced NaN/Inf"


@pytest.mark.parametrize("name", ALL)
def test_every_variable_gets_gradient_and_moves(name):
    # Zero-initialised residual scales (ResNet's zero_init_last) close their branches for the first step by
    # design; connectivity is checked without them.
    import inspect

    params = inspect.signature(zoo.get_spec(name).builder).parameters
    model = build(name, **({"zero_init_last": False} if "zero_init_last" in params else {}))
    x = sample(model, batch=8)
    outs = tf.nest.flatten(model(x, training=True))
    coeffs = [tf.random.stateless_normal(o.shape, seed=(1, i)) for i, o in enumerate(outs)]
    with tf.GradientTape() as tape:
        outs = tf.nest.flatten(model(x, training=True))
        loss = tf.add_n([tf.reduce_sum(tf.cast(o, "float32") * c) for o, c in zip(outs, coeffs)])
        if model.losses:
            loss += tf.add_n(model.losses)
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    dead = [v.path for v, g in zip(variables, grads) if g is None or not np.any(np.asarray(g))]
    assert not dead, f"{name}: no gradient reaches {dead}"
    before = [np.array(v) for v in variables]
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, variables))
    unchanged = [v.path for v, b in zip(variables, before) if np.array_equal(np.asarray(v), b)]
    assert not unchanged, f"{name}: a gradient step left {unchanged} unchanged"


@pytest.mark.parametrize("name", ALL)
def test_config_roundtrip_and_keras_file(name, tmp_path):
    model = build(name)
    x = sample(model)
    ref = outputs_of(model, x)

    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for a, b in zip(ref, outputs_of(clone, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    for a, b in zip(ref, outputs_of(loaded, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_xla_train_step(name):
    model = build(name)
    x = sample(model, batch=4)
    ys = [np.zeros(o.shape, "float32") for o in outputs_of(model, x)]
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    before = [np.array(v) for v in model.trainable_variables]
    loss = model.train_on_batch(x, ys[0] if len(ys) == 1 else ys)
    assert np.all(np.isfinite(loss))
    assert any(not np.array_equal(np.asarray(v), b) for v, b in zip(model.trainable_variables, before))


@pytest.mark.parametrize("name", HEADED)
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_feature_extractor_is_2d(name, pooling):
    model = build(name, include_top=False, pooling=pooling)
    out = model(sample(model))
    assert len(out.shape) == 2 and out.shape[0] == 4 and out.shape[1] > 0


@pytest.mark.parametrize("name", ALL)
def test_params_match_model_info(name):
    info = zoo.model_info(name)
    assert info["params"] == zoo.create_model(name).count_params()
    for key in ("task", "input_shape", "reference", "description"):
        assert info[key]


@pytest.mark.parametrize("name", HEADED)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": 0}, "classes=0"),
        ({"pooling": "sum"}, "pooling='sum'"),
        ({"classifier_activation": "nope"}, "'nope'"),
        ({"weights": "/nonexistent/w.weights.h5"}, "does not exist"),
        ({"weights": "model.txt"}, "weights='model.txt'"),
        ({"include_top": "yes"}, "include_top='yes'"),
    ],
)
def test_bad_arguments_are_named(name, kwargs, message):
    spec = zoo.get_spec(name)
    overrides = {k: v for k, v in spec.test_overrides.items() if k not in kwargs}
    with pytest.raises(ValueError, match=None) as err:
        zoo.create_model(name, **overrides, **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("name", HEADED)
def test_weights_file_roundtrip_and_misfit(name, tmp_path):
    model = build(name)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    again = build(name, weights=str(path))
    x = sample(model)
    for a, b in zip(outputs_of(model, x), outputs_of(again, x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    classes = zoo.get_spec(name).test_overrides.get("classes", 1)
    other = 7 if classes != 7 else 6
    if name == "logistic_regression":
        pytest.skip("binary only: no other class count to misfit")
    with pytest.raises(ValueError, match="does not fit"):
        build(name, classes=other, weights=str(path))
