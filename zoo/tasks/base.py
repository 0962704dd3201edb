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
        make_dataset: `(source, split, recipe, data_spec, training, *, model=None, **build_kw)
            -> tf.data.Dataset` replacing the default `pipelines.build` call (e.g. to encode YOLO
            grids or to sample P x K identity batches). `source` may be an opened
            `pipelines` source; `build_kw` (`seed`, `image_size`, `channels`, `strict`...)
            go on to `pipelines.build`. `zoo.training.data.make_dataset` calls it.
        evaluate: `(model, dataset, data_spec, recipe) -> dict` of extra metrics
            (mAP, mean IoU, one-shot accuracy...) merged into `metrics.json`.
        report: `(model, dataset, data_spec, run_dir) -> list[path]` writing PNGs. `run_dir`
            is path-like (during training a `zoo.training.rundir.RunDir`, whose `metrics`
            are already written).
        serving_outputs: `(model, outputs, export_spec) -> dict[str, tensor]`
            turning raw model outputs into named serving outputs.
        input_shape: `(image_shape) -> model input shape` where the model reads the
            pipeline's images in another layout (sequence: rows, `(H, W*C)`); a 2-D
            model input other than that reads images as T rows of F gray pixels.
            None: the image shape.
        classes_from_data: Whether a registered builder's `classes` is the data's class
            count (False where the output is not one unit per class: embeddings).
        train_dev_refused: Why a train-dev split is refused for this task (None: allowed).
    """

    name: str
    loss: Callable[..., Any]
    metrics: Optional[Callable[..., list]] = None
    make_dataset: Optional[Callable[..., Any]] = None
    evaluate: Optional[Callable[..., dict]] = None
    report: Optional[Callable[..., list]] = None
    serving_outputs: Optional[Callable[..., dict]] = None
    input_shape: Optional[Callable[[tuple], tuple]] = None
    classes_from_data: bool = True
    train_dev_refused: Optional[str] = None


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
