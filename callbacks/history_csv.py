"""history.csv: one row per finished epoch, rewritten atomically as each epoch ends."""

from __future__ import annotations

import csv
import math
import os

import keras
import numpy as np


class HistoryCSV(keras.callbacks.Callback):
    """Like `keras.callbacks.CSVLogger`, but exact under resume.

    The rows live in the callback (and in `BackupAndRestore`'s backup through
    `get_state`), and the file is rewritten from them each epoch, so an epoch
    finished after the last backup is dropped on resume and written again once:
    every epoch appears exactly once. Each row has `epoch` (1-based), the epoch's
    logs and the `learning_rate` at its end. An epoch with a NaN/Inf loss is not
    recorded.

    Args:
        path: The CSV file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self._write()

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self._lr = None if optimizer is None else float(np.asarray(optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if getattr(self.model, "_zoo_diverged", False) or any(
            isinstance(v, float) and not math.isfinite(v) for k, v in logs.items() if k.endswith("loss")
        ):
            return
        row = {"epoch": epoch + 1}
        row.update({k: float(np.asarray(v)) for k, v in logs.items() if np.ndim(v) == 0})
        if "learning_rate" not in row and getattr(self, "_lr", None) is not None:
            row["learning_rate"] = self._lr
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self._write()

    def get_state(self) -> dict:
        return {"rows": [dict(r) for r in self.rows]}

    def set_state(self, state: dict) -> None:
        self.rows = [dict(r) for r in state["rows"]]

    def _write(self):
        keys = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys or ["epoch"])
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)
