import csv

import keras
import numpy as np

from callbacks import HistoryCSV


def test_rows_written_as_each_epoch_ends(tmp_path):
    path = tmp_path / "history.csv"
    seen = []

    class Peek(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(len(list(csv.DictReader(path.open()))))

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(np.ones((8, 2)), np.ones((8, 1)), validation_split=0.25, epochs=3,
              callbacks=[HistoryCSV(path), Peek()], verbose=0)
    rows = list(csv.DictReader(path.open()))
    assert seen == [1, 2, 3]
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "loss", "val_loss", "learning_rate"}
    assert float(rows[0]["learning_rate"]) == np.float32(0.1)


def test_state_round_trip_and_overlap(tmp_path):
    h = HistoryCSV(tmp_path / "h.csv")
    h.set_state({"rows": [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]})
    h.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    h.model.compile(optimizer="sgd", loss="mse")
    h.on_epoch_end(1, {"loss": 0.4})  # epoch 2 again (after a resume): replaces, never duplicates
    assert [(r["epoch"], r["loss"]) for r in h.get_state()["rows"]] == [(1, 1.0), (2, 0.4)]
