import json
import os

import keras
import numpy as np

from callbacks import BackupAndRestore, EarlyStopping, HistoryCSV


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], "float32"))[:, None]


def model():
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return m


def callbacks_for(tmp_path):
    history = HistoryCSV(tmp_path / "history.csv")
    early = EarlyStopping(monitor="val_loss", patience=50)
    backup = BackupAndRestore(tmp_path / "backup", stateful={"history": history, "early_stopping": early})
    return [history, early, backup]


def test_restore_continues_exactly_where_the_backup_was(tmp_path):
    x, y = data()
    first = model()
    cbs = callbacks_for(tmp_path)
    first.fit(x, y, validation_split=0.25, epochs=3, batch_size=16, callbacks=cbs, verbose=0, shuffle=False)
    meta = json.loads((tmp_path / "backup" / "latest.json").read_text())
    assert meta["epoch"] == 3 and sorted(os.listdir(tmp_path / "backup")) == ["epoch-0003", "latest.json"]

    second = model()
    cbs2 = callbacks_for(tmp_path)
    assert cbs2[-1].restore(second) == 3
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations) == 9
    for a, b in zip(first.optimizer.variables, second.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [r["epoch"] for r in cbs2[0].rows] == [1, 2, 3]
    second.fit(x, y, validation_split=0.25, epochs=5, initial_epoch=3, batch_size=16, callbacks=cbs2, verbose=0,
               shuffle=False)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert [l.split(",")[0] for l in lines[1:]] == ["1", "2", "3", "4", "5"]
    assert cbs2[1].summary()["best_epoch"] >= 1


def test_partial_backup_is_ignored_and_rows_after_it_are_dropped(tmp_path):
    x, y = data()
    m = model()
    cbs = callbacks_for(tmp_path)
    m.fit(x, y, validation_split=0.25, epochs=2, batch_size=16, callbacks=cbs, verbose=0)
    # A run killed while writing epoch 3: its folder exists, latest.json still says 2, history has 3 rows.
    os.makedirs(tmp_path / "backup" / "epoch-0003")
    (tmp_path / "backup" / "epoch-0003" / "ckpt.weights.h5").write_bytes(b"garbage")
    cbs[0].rows.append({**cbs[0].rows[-1], "epoch": 3})
    cbs[0]._write()
    again = callbacks_for(tmp_path)
    m2 = model()
    assert again[-1].restore(m2) == 2
    m2.fit(x, y, validation_split=0.25, epochs=3, initial_epoch=2, batch_size=16, callbacks=again, verbose=0)
    epochs = [l.split(",")[0] for l in (tmp_path / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]


def test_on_train_begin_restores_without_explicit_call(tmp_path):
    x, y = data()
    m = model()
    m.fit(x, y, epochs=2, batch_size=16, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    m2 = model()
    hist = m2.fit(x, y, epochs=4, batch_size=16, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    assert len(hist.history["loss"]) == 2  # epochs 3 and 4 only
    assert m2._initial_epoch is None
