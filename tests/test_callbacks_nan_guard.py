import json
import math

import keras
import numpy as np
import pytest

from callbacks import BackupAndRestore, HistoryCSV, StopOnNaN, TrainingDiverged, schedules


def test_diverging_run_stops_and_keeps_the_last_good_backup(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    # Sane rate for two epochs, then a huge one: the loss overflows in epoch 3.
    lr = schedules.PiecewiseConstantDecay([2], [0.01, 1e30], steps_per_epoch=4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    guard, history = StopOnNaN(), HistoryCSV(tmp_path / "history.csv")
    backup = BackupAndRestore(tmp_path / "backup", stateful={"history": history})
    model.fit(x, y, epochs=6, batch_size=16, callbacks=[guard, history, backup], verbose=0)

    assert guard.diverged and guard.where.startswith("epoch 3,")
    with pytest.raises(TrainingDiverged, match="epoch 3"):
        guard.check()
    assert json.loads((tmp_path / "backup" / "latest.json").read_text())["epoch"] == 2
    assert len(history.rows) == 2 and all(math.isfinite(r["loss"]) for r in history.rows)
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    fresh.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    BackupAndRestore(tmp_path / "backup").restore(fresh)
    assert all(np.isfinite(w).all() for w in fresh.get_weights())


def test_inf_inputs_stop_at_the_first_batch():
    x = np.ones((32, 2), "float32")
    x[5] = np.inf
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    guard = StopOnNaN()
    hist = model.fit(x, np.ones((32, 1)), epochs=3, batch_size=8, callbacks=[guard], verbose=0, shuffle=False)
    assert guard.where == "epoch 1, batch 1" and len(hist.history["loss"]) == 1


def test_non_finite_dev_loss_stops_at_the_end_of_its_epoch(tmp_path):
    x = np.ones((32, 2), "float32")
    x_val = x[:8].copy()
    x_val[0] = np.inf  # the training loss stays finite; the dev loss does not
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    guard, history = StopOnNaN(), HistoryCSV(tmp_path / "history.csv")
    backup = BackupAndRestore(tmp_path / "backup", stateful={"history": history})
    hist = model.fit(x, np.ones((32, 1)), validation_data=(x_val, np.ones((8, 1))), epochs=3, batch_size=8,
                     callbacks=[guard, history, backup], verbose=0)
    assert guard.diverged and guard.where == "epoch 1 (val_loss)" and len(hist.history["loss"]) == 1
    with pytest.raises(TrainingDiverged, match=r"epoch 1 \(val_loss\)"):
        guard.check()
    assert history.rows == [] and not (tmp_path / "backup" / "latest.json").exists()
