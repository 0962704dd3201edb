"""Weight imprinting of a new head (`zoo.transfer.heads.imprint`) and `zoo finetune`'s `head_init`."""

import keras
import numpy as np
import pytest

from zoo import transfer
from zoo.transfer import finetune as ft
from zoo.transfer import heads
from zoo.transfer.heads import imprint


def _clusters(n=60, classes=3, seed=0):
    """`n` points per class around `classes` well-separated centres in 8-D."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(classes, 8))
    x = np.concatenate([c + 0.5 * rng.normal(size=(n, 8)) for c in centres]).astype("float32")
    return x, np.repeat(np.arange(classes), n).astype("int32")


def _new_head_model(classes=3):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    features = keras.layers.Dense(16, activation="tanh", name="features")(inputs)
    base = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="predictions")(features))
    return transfer.with_new_head(base, classes, dropout=0.2)


def _accuracy_and_loss(model, x, y):
    p = model.predict(x, verbose=0)
    return float(np.mean(p.argmax(1) == y)), float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))


def test_imprinting_classifies_a_separable_set_before_any_training():
    x, y = _clusters()
    train, test = np.arange(len(x)) % 2 == 0, np.arange(len(x)) % 2 == 1
    model = _new_head_model()
    body = [w.copy() for w in model.get_layer("features").get_weights()]
    scale = imprint(model, [(x[train][i:i + 16], y[train][i:i + 16]) for i in range(0, int(train.sum()), 16)])
    accuracy, loss = _accuracy_and_loss(model, x[test], y[test])
    assert accuracy > 0.95 and loss < np.log(3) / 2 and scale > 0  # chance: 1/3 and log(3)
    assert all(np.array_equal(a, b) for a, b in zip(body, model.get_layer("features").get_weights()))


def test_imprint_scale_is_fitted_leave_one_out():
    # Pure noise, 2 examples per class: each example is nearer its own class mean only because it is half of
    # it. Fitted on the same examples the scale came out at 2.5; held out, the means say nothing.
    rng = np.random.default_rng(0)
    feats, labels = rng.normal(size=(6, 64)), np.repeat(np.arange(3), 2)
    means = np.stack([feats[labels == c].mean(0) for c in range(3)])
    in_sample = feats @ means.T - 0.5 * (means ** 2).sum(1)
    assert np.array_equal(in_sample.argmax(1), labels)  # separable in sample
    assert heads._fit_scale(feats, labels, means) <= 0.1
    x, y = _clusters(n=20)  # real structure: held-out examples are still classified, the scale stays useful
    means = np.stack([x[y == c].mean(0) for c in range(3)]).astype("float64")
    assert heads._fit_scale(x.astype("float64"), y, means) >= 1.0


def test_imprinting_refuses_a_missing_class_and_a_non_dense_head():
    x, y = _clusters()
    model = _new_head_model()
    with pytest.raises(ValueError, match=r"classes \[2\] have none"):
        imprint(model, [(x[y < 2], y[y < 2])])
    with pytest.raises(ValueError, match="Dense classifier"):
        imprint(model, [(x, y)], layer="head_dropout")


def test_finetune_imprints_by_default_and_checks_head_init(tmp_path):
    assert ft.DEFAULTS["head_init"] == "imprint" and ft.HEAD_INITS == ("imprint", "random")
    with pytest.raises(ValueError, match="head_init.*'prototype'"):
        ft.finetune("lenet5", str(tmp_path), out=str(tmp_path / "ft"), head_init="prototype")


def test_cli_rejects_a_bad_head_init_in_one_line(tmp_path, capsys):
    from zoo.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["finetune", "lenet5", "--data", str(tmp_path), "--head-init", "prototype"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "'prototype'" in err[0] and "imprint" in err[0]


def test_phase_one_is_skipped_only_after_imprinting_with_auto_steps():
    s = {**ft.DEFAULTS}
    assert s["head_steps"] == "auto" and not ft.runs_head(s)  # imprinted head: phase 2 starts from it
    assert ft.runs_head({**s, "head_init": "random"})  # a random head is trained first (HEAD_STEPS)
    assert ft.runs_head({**s, "head_steps": 50}) and ft.runs_head({**s, "head_epochs": 2})  # asked for
    assert ft.runs_head({**s, "finetune_epochs": 0})  # head only
    assert not ft.runs_head({**s, "head_init": "random", "head_epochs": 0})
    with pytest.raises(ValueError, match="head_steps.*'many'"):
        ft._check({**s, "head_steps": "many"})
