"""The run directory: refuse to overwrite, resume, write files atomically, and read a run back (`RunDir`)."""

from __future__ import annotations

import datetime
import functools
import json
import os
import zipfile

from callbacks.reports import finite, write_json  # noqa: F401  (re-exported: run files are written here)

CONFIG, HISTORY, METRICS, MODEL = "config.json", "history.csv", "metrics.json", "model.keras"
BACKUP, LOGS, COMPLETE = "backup", "logs", "complete"


class RunComplete(ValueError):
    """`--resume` on a run that already finished: nothing to do (the CLI says so and exits 0)."""


def is_complete(path) -> bool:
    """A run is complete once its `complete` marker (or, for older runs, metrics.json) is written."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, COMPLETE)) or os.path.isfile(os.path.join(path, METRICS))


def mark_complete(path) -> None:
    """Writes the `complete` marker atomically: the run's files are final; cleanup may follow."""
    write_json(os.path.join(os.fspath(path), COMPLETE), {"complete": True})


def default_dir(model_name: str, root="runs") -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(root, f"{model_name}-{stamp}")


def prepare(out, *, resume: bool) -> str:
    """Creates (or checks, with `resume`) the run directory; returns its path.

    Raises:
        ValueError: without `resume`, when `out` exists and is not empty; with
            `resume`, when it holds no run.
        RunComplete: with `resume`, when the run already finished (even if a crash left its
            backup folder behind): a finished model is never retrained over.
    """
    out = os.fspath(out)
    if resume:
        if not os.path.isfile(os.path.join(out, CONFIG)):
            raise ValueError(f"Nothing to resume in {out!r}: it has no {CONFIG}. Start a run there without --resume.")
        if is_complete(out):
            raise RunComplete(f"The run in {out!r} is complete; nothing to resume (train into a new --out "
                              "directory to train again).")
        return out
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(
            f"Run directory {out!r} already exists and is not empty; pass --resume to continue it "
            "or choose another --out."
        )
    os.makedirs(out, exist_ok=True)
    return out


def read_json(path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from None


def load_keras(path):
    """A `.keras` file with every zoo layer, loss and optimizer registered; `safe_mode=True`, uncompiled.

    Raises:
        ValueError: one line naming the file when it is missing or cannot be loaded.
    """
    import keras

    import zoo.models  # noqa: F401  (registers the zoo's layers)
    import zoo.tasks  # noqa: F401  (registers the tasks' losses and layers)
    import zoo.training.layerwise  # noqa: F401  (registers the zoo>Layerwise* optimizers)

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Model file {path!r} does not exist.")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(f"Model file {path!r} is corrupt or truncated: a .keras file is a zip archive, this is not "
                         f"({os.path.getsize(path)} bytes).")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001  (Keras raises many types for a bad file)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"Cannot load Keras model {path!r}: {first}") from None


class RunDir:
    """A finished run directory read back: its paths, config, metrics and model.

        >>> run = RunDir("runs/lenet5-...")
        >>> run.config["model"], run.task, run.metrics.get("test", {})
        >>> model = run.load_model()
    """

    def __init__(self, path, *, finished=True):
        """Args:
            path: The run directory.
            finished: Require `model.keras` too (False: a run being resumed needs only `config.json`).
        """
        self.path = os.fspath(path)
        if not (self.is_run(self.path) if finished else os.path.isfile(self.file(CONFIG))):
            raise ValueError(
                f"{self.path!r} is not a run directory: it needs {MODEL} and {CONFIG} "
                "(pass a run directory, a .keras file or a keras.Model)."
            )

    def __fspath__(self) -> str:
        return self.path

    @staticmethod
    def is_run(path) -> bool:
        path = os.fspath(path)
        return os.path.isfile(os.path.join(path, MODEL)) and os.path.isfile(os.path.join(path, CONFIG))

    def file(self, name) -> str:
        return os.path.join(self.path, name)

    @functools.cached_property
    def config(self) -> dict:
        config = read_json(self.file(CONFIG))
        if not isinstance(config, dict):
            raise ValueError(f"{self.file(CONFIG)!r} must hold a JSON object. Received: {type(config).__name__}")
        return config

    @functools.cached_property
    def metrics(self) -> dict | None:
        return read_json(self.file(METRICS)) if os.path.isfile(self.file(METRICS)) else None

    @property
    def data(self) -> dict:
        """The DataSpec the run trained on (as recorded in config.json)."""
        return self.config.get("data") or {}

    @property
    def model_name(self) -> str | None:
        return self.config.get("model")

    @property
    def task(self) -> str | None:
        return self.config.get("task")

    @property
    def source(self):
        return self.config.get("source")

    def load_model(self):
        return load_keras(self.file(MODEL))
