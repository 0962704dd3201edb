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
    (tmp_path / "backup" / "epoch-0003" / "state.npz").write_bytes(b"garbage")
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


def test_backups_from_save_weights_still_restore(tmp_path):
    """Backups written before `state.npz` (Keras' `save_weights` file) resume as they did."""
    x, y = data()
    first = model()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    os.makedirs(tmp_path / "epoch-0002")
    first.save_weights(str(tmp_path / "epoch-0002" / "ckpt.weights.h5"))
    (tmp_path / "latest.json").write_text(json.dumps({"epoch": 2, "name": "epoch-0002", "state": {}}))
    second = model()
    assert BackupAndRestore(tmp_path).restore(second) == 2
    for a, b in zip(first.get_weights() + [np.asarray(v) for v in first.optimizer.variables],
                    second.get_weights() + [np.asarray(v) for v in second.optimizer.variables]):
        np.testing.assert_array_equal(a, b)


def test_a_backup_of_another_model_is_refused_by_name(tmp_path):
    x, y = data()
    model().fit(x, y, epochs=1, batch_size=16, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    other.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    try:
        BackupAndRestore(tmp_path).restore(other)
    except ValueError as err:
        assert "epoch-0001" in str(err) and "do not match" in str(err)
    else:
        raise AssertionError("a backup of a different model was restored")


def test_weights_restore_under_another_optimizer_with_a_warning(tmp_path):
    """As Keras' `load_weights`: the weights come back, a different optimizer's variables are skipped."""
    import pytest

    x, y = data()
    first = model()
    first.fit(x, y, epochs=1, batch_size=16, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    other.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    other.optimizer.build(other.trainable_variables)
    with pytest.warns(UserWarning, match="optimizer state not restored"):
        assert BackupAndRestore(tmp_path).restore(other) == 1
    for a, b in zip(first.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(other.optimizer.iterations) == 0
