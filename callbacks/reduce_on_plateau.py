"""Reduce-on-plateau: divide the learning rate when the dev metric stops improving."""

from __future__ import annotations

import keras


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """`keras.callbacks.ReduceLROnPlateau` with state that survives a resume.

    Adds `get_state` / `set_state` (best value, wait and cooldown counters; the
    rate itself is an optimizer variable and is backed up with it) and a clear
    error when the optimizer follows a `LearningRateSchedule`, which a plateau
    rule cannot change.

    Args:
        monitor: Metric to watch. Defaults to `"val_loss"`.
        factor: Multiplier on a plateau. Defaults to `0.1`.
        patience: Epochs without improvement before reducing. Defaults to `3`.
        **kwargs: Other `keras.callbacks.ReduceLROnPlateau` arguments.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=3, **kwargs):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"`factor` must be in (0, 1). Received: factor={factor!r}")
        super().__init__(monitor=monitor, factor=factor, patience=patience, **kwargs)
        self._restored = None

    def on_train_begin(self, logs=None):
        lr = getattr(self.model.optimizer, "_learning_rate", None)
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError(
                f"ReduceLROnPlateau needs a constant learning rate, but the optimizer follows "
                f"{type(lr).__name__}; use lr_schedule='plateau' alone."
            )
        super().on_train_begin(logs)
        if self._restored is not None:
            state, self._restored = self._restored, None
            self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]

    def get_state(self) -> dict:
        return {"best": None if self.best is None else float(self.best), "wait": int(self.wait),
                "cooldown_counter": int(self.cooldown_counter)}

    def set_state(self, state: dict) -> None:
        """Applied at the next `on_train_begin` (which would otherwise reset it)."""
        self._restored = dict(state)
