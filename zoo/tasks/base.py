"""The `Task` protocol: what training, evaluation, reports and export do differently per task.

`zoo.train` never special-cases a model family. It looks up the model's task here and
calls the hooks. Each task package registers its `Task` with `register_task`; the one
list of tasks is the import list in `zoo/tasks/__init__.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional


@dataclasses.dataclass
class Task:
    """Per-task behaviour. Every hook is optional except `loss`.

    Attributes:
        name: The task name (what `register_model(task=...)` names).
        loss: `(model, recipe, data_spec) -> keras loss` used in `compile`.
        metrics: `(model, recipe, data_spec) -> list` of Keras metrics for `compile`.
        make_dataset: `(source, split, recipe, data_spec, training, **kw) -> tf.data.Dataset`
            replacing the default `pipelines.build` call (e.g. to encode YOLO grids
            or to sample P x K identity batches).
        evaluate: `(model, dataset, data_spec, recipe) -> dict` of extra metrics
            (mAP, mean IoU, one-shot accuracy...) merged into `metrics.json`.
        report: `(model, dataset, data_spec, run_dir) -> list[path]` writing PNGs.
        serving_outputs: `(model, outputs, export_spec) -> dict[str, tensor]`
            turning raw model outputs into named serving outputs.
    """

    name: str
    loss: Callable[..., Any]
    metrics: Optional[Callable[..., list]] = None
    make_dataset: Optional[Callable[..., Any]] = None
    evaluate: Optional[Callable[..., dict]] = None
    report: Optional[Callable[..., list]] = None
    serving_outputs: Optional[Callable[..., dict]] = None


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def names() -> tuple:
    """Every registered task's name, in registration order."""
    return tuple(_TASKS)


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise ValueError(f"No training support for task {name!r} yet; supported: {', '.join(sorted(_TASKS))}.")
    return _TASKS[name]
