import keras
import numpy as np
import pytest

from callbacks import ReduceLROnPlateau, schedules


def model_with(lr):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def closed_form(values, lr, factor, patience):
    """Reference rule: reduce after `patience` epochs without a new minimum."""
    best, wait, out = np.inf, 0, []
    for v in values:
        if v < best - 1e-4:
            best, wait = v, 0
        else:
            wait += 1
            if wait >= patience:
                lr, wait = lr * factor, 0
        out.append(lr)
    return out


def test_matches_reference_rule():
    losses = [1.0, 0.9, 0.95, 0.93, 0.8, 0.85, 0.86, 0.87, 0.9, 0.7]
    model = model_with(0.1)
    cb = ReduceLROnPlateau(factor=0.5, patience=2)
    cb.set_model(model)
    cb.on_train_begin()
    got = []
    for epoch, loss in enumerate(losses):
        cb.on_epoch_end(epoch, {"val_loss": loss})
        got.append(float(model.optimizer.learning_rate))
    np.testing.assert_allclose(got, closed_form(losses, 0.1, 0.5, 2), rtol=1e-6)


def test_state_round_trip():
    model = model_with(0.1)
    cb = ReduceLROnPlateau(patience=3)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, loss in enumerate([1.0, 1.1, 1.2]):
        cb.on_epoch_end(epoch, {"val_loss": loss})
    again = ReduceLROnPlateau(patience=3)
    again.set_state(cb.get_state())
    again.set_model(model)
    again.on_train_begin()
    again.on_epoch_end(3, {"val_loss": 1.3})  # third epoch without improvement
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_refuses_a_schedule():
    cb = ReduceLROnPlateau()
    cb.set_model(model_with(schedules.ExponentialDecay(0.1)))
    with pytest.raises(ValueError, match="constant learning rate"):
        cb.on_train_begin()
