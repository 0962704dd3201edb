import io

import keras
import numpy as np

from callbacks import EpochLine


def test_one_line_per_epoch():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    out = io.StringIO()
    model.fit(np.ones((8, 2)), np.ones((8, 1)), validation_split=0.25, epochs=3, callbacks=[EpochLine(out)],
              verbose=0)
    lines = out.getvalue().splitlines()
    assert [l.split(" - ")[0] for l in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("loss " in l and "val_mae " in l for l in lines)
