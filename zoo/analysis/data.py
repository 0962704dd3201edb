"""A finished run opened for analysis: its model, recipe, data (checked against training) and datasets."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from zoo.analysis.table import ERROR_METRICS


@dataclasses.dataclass
class RunData:
    """What the analysis reads from a run: the run directory, model, recipe and the data as it is now."""

    run: Any  # zoo.training.rundir.RunDir
    model: Any
    recipe: Any
    task: str
    source: Any
    data: Any  # zoo.training.data.RunData: the source opened once, its spec and build keywords
    follow_symlinks: bool = False

    @property
    def spec(self):
        return self.data.spec

    def kw(self) -> dict:
        """`pipelines.build` keywords the run trained with (seed, size, channels, train-dev carve)."""
        return {"seed": int(self.run.config.get("seed", 0)), **self.data.build_kw}


def open_run(path, data=None, *, follow_symlinks=False) -> RunData:
    """Opens a finished run; checks its task, its data source and that the source still matches training.

    Raises:
        ValueError: one line for a missing run, an unknown task, a moved or changed source, no dev split.
    """
    from zoo.recipes import Recipe
    from zoo.tasks import base as tasks_lib
    from zoo.training import data as training_data
    from zoo.training import rundir

    run = rundir.RunDir(path)
    task = run.task or "classification"
    if task not in ERROR_METRICS:
        raise ValueError(f"{run.path!r} is a run of task {task!r}; zoo analyze supports: {', '.join(ERROR_METRICS)}.")
    source = data if data is not None else run.source
    if source is None:
        raise ValueError(f"{run.path!r} trained on in-memory arrays (no source recorded); pass --data SOURCE.")
    if (isinstance(source, str) and not source.startswith(("tfds:", "shapes")) and not os.path.exists(source)):
        raise ValueError(f"The run's data {source!r} no longer exists (moved since training?); "
                         "pass --data with its new place.")
    recipe = Recipe.from_dict(run.config["recipe"]) if run.config.get("recipe") else Recipe()
    model = run.load_model()
    opened = training_data.open_data(source, tasks_lib.get_task(task), model.input_shape[1:], recipe,
                                     follow_symlinks=follow_symlinks)
    spec = opened.spec
    before = {k: int(v) for k, v in (run.data.get("splits") or {}).items() if v}
    now = {k: int(v) for k, v in spec.splits.items() if v}
    if before and before != now:
        diff = ", ".join(f"{k}: {before.get(k, 0)} then, {now.get(k, 0)} now" for k in sorted(set(before) | set(now))
                         if before.get(k, 0) != now.get(k, 0))
        raise ValueError(f"The files of {spec.source!r} changed since training ({diff}); "
                         "zoo analyze needs the data the run trained on.")
    if not now.get("val"):
        raise ValueError(f"{run.path!r} has no dev split (the source has no val split and val_split="
                         f"{recipe.val_split}); train with --val-split FRACTION to analyse it.")
    return RunData(run, model, recipe, task, source, opened, follow_symlinks)


def dataset(rd: RunData, split: str, **overrides):
    """One split as the run's task sees it (unshuffled, no augmentation).

    `overrides` (e.g. `normalization="none"`) bypass the task's hook: the plain pipeline on the source.
    """
    import pipelines
    from zoo.tasks import base as tasks_lib

    seed = int(rd.run.config.get("seed", 0))
    if not overrides:
        return rd.data.dataset(tasks_lib.get_task(rd.task), split, rd.recipe, False, model=rd.model, seed=seed)
    options = {"split": split, "task": rd.task, "batch_size": rd.recipe.batch_size, "shuffle": False,
               "normalization": rd.recipe.normalization, "val_split": rd.recipe.val_split,
               "follow_symlinks": rd.follow_symlinks}
    return pipelines.build(rd.source, **{**options, **rd.kw(), **overrides})


def paths(rd: RunData, split: str, n: int) -> list:
    """Each example's file (folder sources), else `SOURCE:split[i]`; in the pipeline's unshuffled order."""
    import pipelines
    from pipelines import splits as splits_lib

    src = pipelines.sources.open_source(rd.source, val_split=rd.recipe.val_split, task=rd.spec.task,
                                        follow_symlinks=rd.follow_symlinks)
    listed = getattr(src.read, "paths", None)
    if listed is not None:
        base = "train" if split == splits_lib.TRAIN_DEV else split
        found = list(listed(base))
        if rd.recipe.train_dev and base == "train":
            mask = splits_lib.train_dev_mask(len(found), rd.recipe.train_dev)
            found = [p for p, m in zip(found, mask) if m == (split == splits_lib.TRAIN_DEV)]
        if len(found) == n:
            return found
    return [f"{rd.spec.source}:{split}[{i}]" for i in range(n)]
