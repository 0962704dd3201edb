"""One line per finished epoch: the progress display when stdout is not a terminal."""

from __future__ import annotations

import sys
import time

import keras


class EpochLine(keras.callbacks.Callback):
    """Prints `epoch 3/10 - 12.3s - loss 0.4120 - accuracy 0.8710 - val_loss ...` per epoch.

    Args:
        stream: Where to print. Defaults to `sys.stdout`.
    """

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        parts = [f"epoch {epoch + 1}/{self.params.get('epochs', '?')}", f"{time.perf_counter() - self._start:.1f}s"]
        for key, value in (logs or {}).items():
            try:
                parts.append(f"{key} {float(value):.4g}")
            except (TypeError, ValueError):
                continue
        print(" - ".join(parts), file=self.stream or sys.stdout, flush=True)
