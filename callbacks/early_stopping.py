"""Early stopping on a dev-set metric, with best-weights restore that survives a resume."""

from __future__ import annotations

import keras
import numpy as np

_MAXIMIZED = ("accuracy", "auc", "precision", "recall", "f1", "iou", "map")


def mode_for(monitor: str, mode: str = "auto") -> str:
    """"max" for accuracy-like names, "min" for losses/errors, else `mode` (Keras then asks the model)."""
    if mode != "auto":
        return mode
    name = monitor.lower()
    if name.endswith(("loss", "error")):
        return "min"
    if any(m in name for m in _MAXIMIZED):
        return "max"
    return mode


class EarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` that restores the best weights by default and can be resumed.

    What it adds to Keras' callback: `get_state` / `set_state` (best value, best
    epoch, wait counter and best weights) so that `callbacks.BackupAndRestore`
    carries them across an interrupted run, and `summary()` for the run report.
    The monitor direction also comes from the name ("val_accuracy" -> max), so
    metrics the model was not compiled with (or before it is) work too.

    Args:
        monitor: Metric to watch. Defaults to `"val_loss"`.
        patience: Epochs without improvement before stopping.
        restore_best_weights: Defaults to `True`.
        **kwargs: Other `keras.callbacks.EarlyStopping` arguments.
    """

    def __init__(self, monitor="val_loss", patience=5, restore_best_weights=True, mode="auto", **kwargs):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"`patience` must be an integer >= 0. Received: patience={patience!r}")
        super().__init__(monitor=monitor, patience=patience, restore_best_weights=restore_best_weights,
                         mode=mode_for(monitor, mode), **kwargs)
        self._restored = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored is not None:
            state, self._restored = self._restored, None
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
            self.best_weights = state.get("best_weights")

    def get_state(self) -> dict:
        """JSON-able state (best weights as a list of arrays under "best_weights")."""
        return {
            "best": None if self.best is None else float(self.best),
            "best_epoch": int(self.best_epoch),
            "wait": int(self.wait),
            "stopped_epoch": int(self.stopped_epoch),
            "best_weights": self.best_weights,
        }

    def set_state(self, state: dict) -> None:
        """Applied at the next `on_train_begin` (which would otherwise reset it)."""
        state = dict(state)
        if state.get("best_weights") is not None:
            state["best_weights"] = [np.asarray(w) for w in state["best_weights"]]
        self._restored = state

    def summary(self) -> dict:
        """Best epoch (1-based), best value and the epoch training stopped at (0: ran to the end)."""
        return {
            "monitor": self.monitor,
            "best": None if self.best is None else float(self.best),
            "best_epoch": int(self.best_epoch) + 1,
            "stopped_epoch": int(self.stopped_epoch) + 1 if self.stopped_epoch else 0,
        }
