import keras
import numpy as np
import pytest

from callbacks import EarlyStopping


def small_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def drive(callback, model, values, start=0, monitor="val_accuracy"):
    """Feeds `values` as epoch logs, changing the weights each epoch; returns epochs run."""
    callback.set_model(model)
    callback.on_train_begin()
    ran = 0
    for epoch, value in enumerate(values, start=start):
        model.layers[0].bias.assign([float(epoch)])
        callback.on_epoch_end(epoch, {monitor: value})
        ran += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran


def test_stops_after_patience_and_restores_best_weights():
    model = small_model()
    model.stop_training = False
    es = EarlyStopping(monitor="val_accuracy", patience=2)
    ran = drive(es, model, [0.5, 0.7, 0.6, 0.65, 0.9])
    assert ran == 4  # best at epoch 2 (index 1), two epochs without improvement
    assert float(model.layers[0].bias.numpy()[0]) == 1.0  # weights of the best epoch
    assert es.summary() == {"monitor": "val_accuracy", "best": pytest.approx(0.7), "best_epoch": 2,
                            "stopped_epoch": 4}


def test_state_survives_a_resume():
    model = small_model()
    model.stop_training = False
    first = EarlyStopping(monitor="val_accuracy", patience=2)
    drive(first, model, [0.5, 0.7, 0.6])  # interrupted after 3 epochs, one without improvement
    state = first.get_state()
    second = EarlyStopping(monitor="val_accuracy", patience=2)
    second.set_state({**state, "best_weights": [np.array(w) for w in state["best_weights"]]})
    model.stop_training = False
    ran = drive(second, model, [0.6, 0.8], start=3)
    assert ran == 1 and model.stop_training  # the wait counter carried over: stopped at epoch 4
    assert float(model.layers[0].bias.numpy()[0]) == 1.0


def test_reusable_instance_resets_on_train_begin():
    model = small_model()
    es = EarlyStopping(monitor="val_loss", patience=1)
    model.stop_training = False
    drive(es, model, [1.0, 2.0, 3.0], monitor="val_loss")
    model.stop_training = False
    assert drive(es, model, [1.0, 0.5, 0.4], monitor="val_loss") == 3
    assert es.summary()["stopped_epoch"] == 0


def test_bad_patience():
    with pytest.raises(ValueError, match="patience=-1"):
        EarlyStopping(patience=-1)
