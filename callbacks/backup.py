"""Fault tolerance: back up the whole training state at each epoch end and resume exactly there."""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings

import keras
import numpy as np

_LATEST = "latest.json"
_STATE = "state.npz"  # the model's weights ("w0", ...) and its optimizer's variables ("o0", ...), by position
_LEGACY = "ckpt.weights.h5"  # what backups held before (Keras' save_weights); still restored


def _optimizer_variables(model) -> list:
    optimizer = getattr(model, "optimizer", None)
    return list(optimizer.variables) if optimizer is not None else []


def _write_state(model, path) -> None:
    """The weights and optimizer variables (iterations, rate, slots) into one `.npz`, by position.

    What Keras' `save_weights` stores, at ~10 ms instead of ~105 ms for ResNet-20 with its optimizer (paid at
    every epoch end; BENCHMARKS.md, issue 24).
    """
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(_optimizer_variables(model))})
    np.savez(path, **arrays)


def _matches(values, variables) -> bool:
    return len(values) == len(variables) and all(tuple(a.shape) == tuple(v.shape) for a, v in zip(values, variables))


def _read_state(model, path) -> None:
    """Assigns a `_write_state` file back, as `load_weights` would.

    The weights must match the model's (else ValueError naming the file); optimizer variables that do not match
    (another optimizer or schedule) are skipped with a warning, as Keras does.
    """
    with np.load(path) as saved:
        weights = [saved[f"w{i}"] for i in range(sum(k.startswith("w") for k in saved.files))]
        slots = [saved[f"o{i}"] for i in range(sum(k.startswith("o") for k in saved.files))]
    if not _matches(weights, model.weights):
        raise ValueError(f"Backup {path} holds {len(weights)} weights that do not match this model's "
                         f"{len(model.weights)}; resume with the model that wrote it.")
    model.set_weights(weights)  # checked first: Keras' own check assigns as it goes
    optimizer_variables = _optimizer_variables(model)
    if _matches(slots, optimizer_variables):
        for variable, value in zip(optimizer_variables, slots):
            variable.assign(value)
    elif slots:
        warnings.warn(f"Backup {path}: optimizer state not restored ({len(slots)} saved variables, this optimizer "
                      f"has {len(optimizer_variables)}).", stacklevel=2)


def _finite(logs) -> bool:
    return all(
        math.isfinite(v) for k, v in (logs or {}).items() if k.endswith("loss") and isinstance(v, (int, float))
    )


def _split_arrays(state, prefix, arrays):
    """JSON-able copy of `state`; lists of arrays move into `arrays` under `prefix/key`."""
    out = {}
    for key, value in state.items():
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
            for i, v in enumerate(value):
                arrays[f"{prefix}/{key}/{i}"] = v
            out[key] = {"__arrays__": f"{prefix}/{key}", "n": len(value)}
        else:
            out[key] = value
    return out


def _join_arrays(state, arrays):
    return {
        k: [arrays[f"{v['__arrays__']}/{i}"] for i in range(v["n"])] if isinstance(v, dict) and "__arrays__" in v else v
        for k, v in state.items()
    }


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up weights, optimizer state and other callbacks' state at each epoch end.

    Like `keras.callbacks.BackupAndRestore`, plus what a resumable run directory
    needs: the state of other callbacks (anything with `get_state`/`set_state`,
    e.g. early stopping's best weights or the history rows) is saved with the
    weights, each backup is written to a fresh folder and published by an
    atomic rename of `latest.json` (a kill mid-write leaves the previous backup
    intact), and an epoch whose loss is NaN/Inf is never backed up, so the last
    backup is always the last good epoch.

    Call `restore(model)` before `fit` (it returns the epoch to pass as
    `initial_epoch`) and put this callback last in the list, so the epoch's
    history row and the other callbacks' updates are in the backup. Without an
    explicit `restore`, `on_train_begin` restores the weights and the epoch.

    Args:
        backup_dir: Folder for the backups.
        stateful: Dict `{name: callback}` whose state is saved and restored.
        keep: Backups kept on disk (the newest). Defaults to `1`.
    """

    def __init__(self, backup_dir, stateful=None, keep=1):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.stateful = dict(stateful or {})
        self.keep = max(int(keep), 1)
        self.restored_epoch = 0
        self._restored = False

    # ---- reading ------------------------------------------------------------------------------------------
    def latest(self) -> dict | None:
        """Metadata of the newest complete backup (`{"epoch": finished_epochs, "dir": ...}`) or None."""
        path = os.path.join(self.backup_dir, _LATEST)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            meta = json.load(f)
        meta["dir"] = os.path.join(self.backup_dir, meta["name"])
        return meta

    def restore(self, model) -> int:
        """Loads the newest backup into `model` and the stateful callbacks; returns the finished epochs."""
        meta = self.latest()
        self._restored = True
        if meta is None:
            return 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        state = os.path.join(meta["dir"], _STATE)
        if os.path.isfile(state):
            _read_state(model, state)
        else:
            model.load_weights(os.path.join(meta["dir"], _LEGACY))
        arrays_path = os.path.join(meta["dir"], "arrays.npz")
        arrays = dict(np.load(arrays_path)) if os.path.isfile(arrays_path) else {}
        for name, callback in self.stateful.items():
            if name in meta["state"]:
                callback.set_state(_join_arrays(meta["state"][name], arrays))
        self.restored_epoch = int(meta["epoch"])
        self._restored = True
        return self.restored_epoch

    def on_train_begin(self, logs=None):
        if not self._restored and self.restore(self.model):
            self.model._initial_epoch = self.restored_epoch

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        self._restored = False

    # ---- writing ------------------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs) or getattr(self.model, "_zoo_diverged", False):
            return
        self.save(epoch + 1)

    def save(self, finished_epochs: int) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{finished_epochs:04d}"
        target = os.path.join(self.backup_dir, name)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        _write_state(self.model, os.path.join(target, _STATE))
        arrays, state = {}, {}
        for key, callback in self.stateful.items():
            state[key] = _split_arrays(callback.get_state(), key, arrays)
        if arrays:
            np.savez(os.path.join(target, "arrays.npz"), **arrays)
        tmp = os.path.join(self.backup_dir, _LATEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"epoch": finished_epochs, "name": name, "state": state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.backup_dir, _LATEST))
        done = sorted(d for d in os.listdir(self.backup_dir) if d.startswith("epoch-"))
        for old in done[: -self.keep]:
            if old != name:
                shutil.rmtree(os.path.join(self.backup_dir, old), ignore_errors=True)
