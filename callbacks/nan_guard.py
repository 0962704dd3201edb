"""Stop training when the loss becomes NaN or Inf, and say where."""

from __future__ import annotations

import math

import keras
import numpy as np


class TrainingDiverged(RuntimeError):
    """Raised by `zoo.train` when the loss became NaN/Inf (the last good backup is kept)."""


class StopOnNaN(keras.callbacks.Callback):
    """`keras.callbacks.TerminateOnNaN` that records where training diverged.

    Stops at the first batch whose loss is NaN/Inf (or at the end of an epoch
    whose dev loss is) and marks the model
    (`model._zoo_diverged`) so `callbacks.BackupAndRestore` does not back up the
    broken epoch. After `fit`, `diverged` is True and `where` says
    `"epoch E, batch B"`; call `check()` to raise `TrainingDiverged`.
    """

    def __init__(self):
        super().__init__()
        self.diverged, self.where, self.value = False, None, None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.diverged, self.where, self.value = False, None, None
        self.model._zoo_diverged = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            self.diverged, self.value = True, loss
            self.where = f"epoch {self._epoch + 1}, batch {batch + 1}"
            self.model._zoo_diverged = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # A dev loss can overflow while the training loss stays finite (e.g. inference-mode BatchNorm with
        # unsettled moving statistics): that epoch is not kept either, so stop here rather than go on silently.
        if self.diverged:
            return
        for key, value in (logs or {}).items():
            if key.endswith("loss") and np.ndim(value) == 0 and not math.isfinite(float(value)):
                self.diverged, self.value = True, float(value)
                self.where = f"epoch {epoch + 1} ({key})"
                self.model._zoo_diverged = True
                self.model.stop_training = True
                return

    def check(self, hint: str = "") -> None:
        """Raises `TrainingDiverged` with one line if training diverged."""
        if self.diverged:
            raise TrainingDiverged(f"loss became {self.value} at {self.where}; stopped.{' ' + hint if hint else ''}")
