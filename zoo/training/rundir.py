"""The run directory: refuse to overwrite, resume, write files atomically."""

from __future__ import annotations

import datetime
import json
import os

CONFIG, HISTORY, METRICS, MODEL = "config.json", "history.csv", "metrics.json", "model.keras"
BACKUP, LOGS = "backup", "logs"


def default_dir(model_name: str, root="runs") -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(root, f"{model_name}-{stamp}")


def prepare(out, *, resume: bool) -> str:
    """Creates (or checks, with `resume`) the run directory; returns its path.

    Raises:
        ValueError: without `resume`, when `out` exists and is not empty; with
            `resume`, when it holds no run or the run already finished.
    """
    out = os.fspath(out)
    if resume:
        if not os.path.isfile(os.path.join(out, CONFIG)):
            raise ValueError(f"Nothing to resume in {out!r}: it has no {CONFIG}. Start a run there without --resume.")
        if os.path.isfile(os.path.join(out, METRICS)) and not os.path.isdir(os.path.join(out, BACKUP)):
            raise ValueError(f"The run in {out!r} already finished; train into a new --out directory.")
        return out
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(
            f"Run directory {out!r} already exists and is not empty; pass --resume to continue it "
            "or choose another --out."
        )
    os.makedirs(out, exist_ok=True)
    return out


def write_json(path, obj) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
