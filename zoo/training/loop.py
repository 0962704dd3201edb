"""`train`, `evaluate` and `load_run`: any zoo model on any pipeline source, into a run directory."""

from __future__ import annotations

import dataclasses
import difflib
import inspect as pyinspect
import math
import os
import shutil
import sys
import tempfile
from typing import Any

import callbacks as cb
from zoo.recipes import Recipe
from zoo.version import __version__
from pipelines.augment import recipe as aug
from callbacks import reports
from zoo.training import optim, policy, rundir

RECIPE_FIELDS = {f.name for f in dataclasses.fields(Recipe)}


@dataclasses.dataclass
class Run:
    """What `train` returns: the run directory and what it holds."""

    run_dir: str
    model: Any
    config: dict
    history: list
    metrics: dict
    diagnosis: Any = None
    early_stopping: dict | None = None  # EarlyStopping.summary(): monitor, best, best_epoch, stopped_epoch


def get_strategy(name: str = "auto"):
    """The `tf.distribute.Strategy` the model is built and compiled under (see `zoo.distribute`)."""
    from zoo import distribute

    return distribute.get_strategy(name)


def _check_recipe(recipe: Recipe) -> None:
    for key in ("epochs", "batch_size"):
        value = getattr(recipe, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")
    if not (isinstance(recipe.lr, (int, float)) and recipe.lr > 0):
        raise ValueError(f"`lr` must be a positive number. Received: lr={recipe.lr!r}")
    es = recipe.early_stopping
    if es is not None and (isinstance(es, bool) or not isinstance(es, int) or es < 0):
        raise ValueError(f"`early_stopping` must be a patience >= 0 or None. Received: early_stopping={es!r}")
    if not 0.0 <= recipe.val_split < 1.0:
        raise ValueError(f"`val_split` must be in [0, 1). Received: val_split={recipe.val_split!r}")
    if not (isinstance(recipe.train_dev, (int, float)) and 0.0 <= recipe.train_dev < 0.5):
        raise ValueError(f"`train_dev` must be in [0, 0.5). Received: train_dev={recipe.train_dev!r}")
    cb.schedules.check_name(recipe.lr_schedule)
    names, _ = aug.split_names(recipe.augment)
    if names:
        from pipelines.augment import as_policy

        as_policy(names)


def _classes_for(builder, num_classes: int) -> int:
    """Binary builders (default `classes=1`, e.g. logistic regression) take 1 unit for 2 classes."""
    default = pyinspect.signature(builder).parameters.get("classes")
    if default is not None and default.default == 1 and num_classes == 2:
        return 1
    return num_classes


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _inspect(data, task_name, input_shape, **kw):
    """`(data_spec, image_size, channels)`: the source as the pipeline must deliver it to a model input.

    Images are resized to an `(H, W, C)` input's size and converted to its channels (1 or 3). A sequence
    model reads images row by row, `(H, W*C)`; an explicit `(T, F)` other than that reads them as T rows of
    F gray pixels (non-image sequences must match it). No input shape: the source's own size and channels.
    """
    import pipelines
    from zoo.tasks import classification as _builtin

    shape = tuple(input_shape) if input_shape is not None else ()
    image_size = channels = None
    if len(shape) == 3:
        image_size = tuple(int(d) for d in shape[:2]) if None not in shape[:2] else None
        channels = int(shape[2]) if shape[2] in (1, 3) else None
    data_spec = pipelines.inspect(data, task=task_name, image_size=image_size, channels=channels, **kw)
    if (task_name == "sequence" and len(shape) == 2 and None not in shape
            and tuple(_builtin.sequence_input_shape(data_spec.image_shape)) != tuple(shape)):
        image_size, channels = tuple(int(d) for d in shape), 1
        data_spec = pipelines.inspect(data, task=task_name, image_size=image_size, channels=channels, **kw)
    return data_spec, image_size, channels


def _monitor(recipe: Recipe, metrics, val: bool) -> str:
    """The logged name early stopping / reduce-on-plateau watch: the recipe's `monitor` on the dev split.

    The default is the dev loss, not accuracy: accuracy saturates on easy data and its ties never improve.
    """
    allowed = ["loss"] + [m if isinstance(m, str) else m.name for m in (metrics or [])]
    if recipe.monitor not in allowed:
        raise ValueError(f"Unknown monitor {recipe.monitor!r} for this model; allowed: {', '.join(allowed)}.")
    return ("val_" if val else "") + recipe.monitor


def train(
    model,
    data=None,
    *,
    out=None,
    resume: bool = False,
    precision: str = "auto",
    xla="auto",
    seed: int | None = None,
    strict: bool = False,
    model_kwargs: dict | None = None,
    strategy: str = "auto",
    verbose="auto",
    **overrides,
) -> Run:
    """Trains a zoo model on a pipeline source and writes a run directory.

    Defaults come from the model's recipe; any `Recipe` field can be overridden
    by keyword (`epochs=3, lr=0.01, augment=("flip",)`). Input shape and class
    count come from the data; loss, metrics, datasets, evaluation and reports from
    the model's task (`zoo.tasks`).

    Args:
        model: A registered model name, or a built `keras.Model` (task
            "classification" unless `task=` is given).
        data: A `pipelines.build` source. Optional with `resume` (the run's own).
        out: Run directory. Defaults to `runs/<model>-<timestamp>`; it must not
            exist or be empty unless `resume`.
        resume: Continue the interrupted run in `out` from its last finished epoch.
        precision: "auto", "float32", "mixed_float16" or "mixed_bfloat16".
        xla: "auto", "on", "off" (or a bool): compile the train step with XLA.
        seed: Seed for weights, shuffling and augmentation. Defaults to `0`.
        strict: Refuse corrupt data instead of skipping it.
        model_kwargs: Extra builder keywords (e.g. `{"width": 0.5}`).
        strategy: The `zoo.distribute` strategy: "auto" (TF_CONFIG cluster -> multi-worker,
            several GPUs -> mirrored, else default), "default", "onedevice", "mirrored" or
            "multiworker". Batch sizes are global. Defaults to `"auto"`.
        verbose: "auto" (progress bar on a terminal, one line per epoch otherwise), 0, 1 or 2.
        **overrides: Recipe fields.

    Returns:
        A `Run`.

    Raises:
        ValueError: Bad model, source, option or run directory (one line each).
        callbacks.TrainingDiverged: The loss became NaN/Inf; the last good backup is kept.
    """
    from zoo import distribute

    # The strategy comes first: multi-worker collectives must be set up before any TF op runs.
    strat = get_strategy(strategy)
    chief = distribute.is_chief()

    import keras
    import pipelines
    from zoo import registry
    from zoo.tasks import base as tasks_lib
    from zoo.tasks import classification as _builtin  # noqa: F401  (registers classification / sequence)

    task_name = overrides.pop("task", None)
    for key in sorted(set(overrides) - RECIPE_FIELDS):
        close = difflib.get_close_matches(key, RECIPE_FIELDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown recipe field {key!r}.{hint} Allowed: {', '.join(sorted(RECIPE_FIELDS))}.")

    # ---- what to train, with which recipe --------------------------------------------------------------
    config = {}
    if resume:
        if out is None:
            raise ValueError("--resume needs --out, the run directory to continue.")
        config = rundir.read_json(os.path.join(rundir.prepare(out, resume=True), rundir.CONFIG))
        model_name = model if isinstance(model, str) else getattr(model, "name", None)
        if model_name is not None and model_name != config["model"]:
            raise ValueError(f"{out!r} is a run of {config['model']!r}, not {model_name!r}.")
        model = config["model"] if isinstance(model, str) or model is None else model
        data = config.get("source") if data is None else data
        base = Recipe.from_dict(config["recipe"])
        model_kwargs = {**config.get("model_kwargs", {}), **(model_kwargs or {})}
        precision = config["precision"] if precision == "auto" else precision
        xla = config["xla"] if xla == "auto" else xla
        seed = config.get("seed") if seed is None else seed
        task_name = config.get("task")
    if data is None:
        raise ValueError("No data source given; pass --data SOURCE.")
    if isinstance(model, str):
        spec = registry.get_spec(model)
        name, task_name = spec.name, spec.task
        if not resume:
            base = spec.recipe or Recipe()
    elif isinstance(model, keras.Model):
        spec, name = None, model.name
        task_name = task_name or "classification"
        if not resume:
            base = Recipe()
    else:
        raise ValueError(f"`model` must be a registered name or a keras.Model. Received: {model!r}")
    if overrides.get("lr_schedule", base.lr_schedule) != base.lr_schedule and "schedule_args" not in overrides:
        overrides["schedule_args"] = {}  # the recipe's arguments belong to its own schedule
    recipe = base.override(**overrides)
    _check_recipe(recipe)
    task = tasks_lib.get_task(task_name)
    if recipe.train_dev and task_name == "embedding":
        raise ValueError("--train-dev is not available for embedding models: their splits hold disjoint identities.")
    model_kwargs = dict(model_kwargs or {})
    seed = int(seed) if seed is not None else 0
    dtype_policy = policy.resolve_precision(precision) if spec is not None else model.dtype_policy.name
    jit = policy.resolve_xla(xla)
    pipe_aug, local_aug = aug.split_names(recipe.augment)

    # ---- the data ---------------------------------------------------------------------------------------
    requested = model_kwargs.get("input_shape") if spec is not None else model.input_shape[1:]
    data_spec, image_size, channels = _inspect(data, task_name, requested, normalization=recipe.normalization,
                                               val_split=recipe.val_split, strict=strict,
                                               train_dev=recipe.train_dev)
    n_train = int(data_spec.splits.get("train") or 0)
    if n_train < 1:
        raise ValueError(f"Source {data!r} has no training examples.")
    steps_per_epoch = math.ceil(n_train / recipe.batch_size)
    epochs = recipe.epochs
    if recipe.extra.get("total_steps"):
        epochs = min(epochs, math.ceil(recipe.extra["total_steps"] / steps_per_epoch))
    has_val, has_test = bool(data_spec.splits.get("val")), bool(data_spec.splits.get("test"))

    if chief:
        run_dir = rundir.prepare(out or rundir.default_dir(name), resume=resume) if not resume else os.fspath(out)
    else:  # other workers write to a private folder (removed at the end); only the chief's files remain
        run_dir = tempfile.mkdtemp(prefix="zoo-worker-")
        shared_backup = os.path.join(os.fspath(out or ""), rundir.BACKUP)
        if resume and os.path.isdir(shared_backup):  # resume from the chief's last backup
            shutil.copytree(shared_backup, os.path.join(run_dir, rundir.BACKUP))
    print(f"zoo: training {name} on {data_spec.source} ({n_train} train examples) -> {run_dir}", flush=True)
    print(f"zoo: {distribute.describe(strat)}", flush=True)
    print(f"zoo: precision {dtype_policy}, xla {'on' if jit else 'off'}", flush=True)

    # ---- model, optimizer, compile (under the strategy) -------------------------------------------------
    previous_policy = keras.mixed_precision.global_policy().name
    keras.utils.set_random_seed(seed)
    try:
        with strat.scope():
            if spec is not None:
                keras.mixed_precision.set_global_policy(dtype_policy)
                kwargs = dict(model_kwargs)
                if "input_shape" not in kwargs:
                    kwargs["input_shape"] = (
                        _builtin.sequence_input_shape(data_spec.image_shape) if task_name == "sequence"
                        else tuple(data_spec.image_shape)
                    )
                if "classes" not in kwargs and task_name in ("classification", "sequence", "segmentation", "detection"):
                    kwargs["classes"] = _classes_for(spec.builder, data_spec.num_classes)
                net = spec.builder(**kwargs)
                keras.mixed_precision.set_global_policy(previous_policy)
                model_kwargs = kwargs
            else:
                net = model
            optim.add_weight_decay(net, recipe)
            metrics = task.metrics(net, recipe, data_spec) if task.metrics else None
            net.compile(optimizer=optim.make_optimizer(recipe, steps_per_epoch, epochs),
                        loss=task.loss(net, recipe, data_spec), metrics=metrics, jit_compile=jit)
            monitor = _monitor(recipe, metrics, has_val)  # checked before any file is written
        distribute.patch_keras_for_multiworker(net, strat)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    def dataset(split, training):
        kw = {"seed": seed, "strict": strict}
        if recipe.train_dev:
            kw["train_dev"] = recipe.train_dev
        if image_size is not None:
            kw["image_size"] = image_size
        if channels is not None:
            kw["channels"] = channels
        if task.make_dataset is not None:
            if "model" in pyinspect.signature(task.make_dataset).parameters:
                kw["model"] = net
            ds = task.make_dataset(data, split, recipe, data_spec, training, **kw)
        else:
            ds = pipelines.build(data, split=split, task=task_name, batch_size=recipe.batch_size,
                                 augment=pipe_aug if training else (), shuffle=training,
                                 normalization=recipe.normalization, val_split=recipe.val_split, **kw)
        if training and "pad_crop" in local_aug:
            ds = aug.pad_crop(ds, int(recipe.extra.get("pad_pixels", 4)), seed=seed)
        return ds

    config = {
        "model": name,
        "task": task_name,
        "model_kwargs": _jsonable(model_kwargs),
        "recipe": recipe.to_dict(),
        "data": data_spec.to_dict(),
        "source": data if isinstance(data, str) else None,
        "precision": dtype_policy,
        "xla": jit,
        "seed": seed,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "strict": strict,
        "strategy": strategy,
        "zoo_version": __version__,
    }
    rundir.write_json(os.path.join(run_dir, rundir.CONFIG), config)

    # ---- callbacks ----------------------------------------------------------------------------------------
    guard = cb.StopOnNaN()
    history = cb.HistoryCSV(os.path.join(run_dir, rundir.HISTORY))
    stateful = {"history": history}
    callbacks = [guard]
    early = None
    if recipe.early_stopping is not None:
        early = cb.EarlyStopping(monitor=monitor, patience=recipe.early_stopping)
        stateful["early_stopping"] = early
        callbacks.append(early)
    if recipe.lr_schedule == "plateau":
        plateau = cb.ReduceLROnPlateau(monitor=monitor, mode=cb.early_stopping.mode_for(monitor),
                                       **recipe.schedule_args)
        stateful["plateau"] = plateau
        callbacks.append(plateau)
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, rundir.LOGS), write_graph=False,
                                                 profile_batch=0))
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    backup = cb.BackupAndRestore(os.path.join(run_dir, rundir.BACKUP), stateful=stateful)
    callbacks += [history, backup]
    if verbose == 0 and not os.environ.get("ZOO_QUIET"):
        callbacks.append(cb.EpochLine())  # last: a printed epoch is already backed up

    initial_epoch = backup.restore(net) if resume else 0
    if resume:
        print(f"zoo: resuming after epoch {initial_epoch}", flush=True)
    if initial_epoch < epochs:
        net.fit(dataset("train", True), validation_data=dataset("val", False) if has_val else None, epochs=epochs,
                initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose, shuffle=False)
    good = backup.latest()
    guard.check(
        f"The last good checkpoint (epoch {good['epoch']}) is in {backup.backup_dir}; "
        f"continue with --resume --out {run_dir} and a lower --lr." if good else
        "No epoch finished; try a lower --lr."
    )

    # ---- final files --------------------------------------------------------------------------------------
    tmp_model = os.path.join(run_dir, "model.partial.keras")
    net.save(tmp_model)
    os.replace(tmp_model, os.path.join(run_dir, rundir.MODEL))
    results = {}
    splits = [("train", dataset("train", False))]
    if data_spec.splits.get("train_dev"):
        splits.append(("train_dev", dataset("train_dev", False)))
    if has_val:
        splits.append(("val", dataset("val", False)))
    if has_test and not os.environ.get("ZOO_NO_TEST"):  # set by `zoo tune`: trials never look at test
        splits.append(("test", dataset("test", False)))
    for split, ds in splits:
        extra = task.evaluate(net, ds, data_spec, recipe) if task.evaluate else {}
        if "loss" not in extra:
            extra = {**net.evaluate(ds, return_dict=True, verbose=0), **extra}
        results[split] = extra
    rundir.write_json(os.path.join(run_dir, rundir.METRICS), results)
    plots = [reports.plot_curves(history.rows, os.path.join(run_dir, "curves.png"))]
    if task.report is not None:
        plots += list(task.report(net, splits[-1][1], data_spec, run_dir) or [])
    diagnosis = None
    if "val" in results:
        t, v = results["train"], results["val"]
        key = "accuracy" if "accuracy" in t and "accuracy" in v else "loss"
        errors = (1 - t[key], 1 - v[key]) if key == "accuracy" else (t[key], v[key])
        diagnosis = cb.diagnose(*errors, baseline_error=float(recipe.extra.get("baseline_error", 0.0)),
                                metric="error" if key == "accuracy" else "loss")
        print(f"zoo: diagnosis: {cb.diagnosis.write(diagnosis, run_dir)}", flush=True)
    shutil.rmtree(backup.backup_dir, ignore_errors=True)
    stopping = early.summary() if early is not None else None
    if stopping is not None:
        best = "" if stopping["best"] is None else f" ({stopping['best']:.4g})"
        end = f"stopped after epoch {stopping['stopped_epoch']}" if stopping["stopped_epoch"] else "ran every epoch"
        print(f"zoo: early stopping on {stopping['monitor']}: best epoch {stopping['best_epoch']}{best}, {end}; "
              "the model holds the best epoch's weights", flush=True)

    summary = ", ".join(
        f"{split} " + " ".join(f"{k} {v:.4f}" for k, v in m.items() if k in ("loss", "accuracy", "f1"))
        for split, m in results.items()
    )
    print(f"zoo: {summary}", flush=True)
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        print("zoo: worker done (the chief writes the run directory)", flush=True)
        return Run(run_dir=os.fspath(out) if out else run_dir, model=net, config=config, history=list(history.rows),
                   metrics=results, diagnosis=diagnosis, early_stopping=stopping)
    print(f"zoo: model {os.path.join(run_dir, rundir.MODEL)}; plots {', '.join(plots)}; "
          f"TensorBoard: tensorboard --logdir {os.path.join(run_dir, rundir.LOGS)}", flush=True)
    return Run(run_dir=run_dir, model=net, config=config, history=list(history.rows), metrics=results,
               diagnosis=diagnosis, early_stopping=stopping)


def load_run(run_dir):
    """`(model, config)` of a run directory (the model loads with `safe_mode=True`, uncompiled)."""
    run = rundir.RunDir(run_dir)
    return run.load_model(), run.config


def evaluate(run_or_model, data=None, *, split="test", batch_size=None):
    """Metrics of a run (or a `.keras` file / `keras.Model`) on one split of a source.

    Args:
        run_or_model: A run directory, a `.keras` file or a `keras.Model`.
        data: A `pipelines.build` source. Defaults to the run's own.
        split: "train", "val" or "test". Defaults to `"test"`.
        batch_size: Defaults to the run's recipe.

    Returns:
        A dict of metrics (loss, accuracy, precision, recall, f1... per task).
    """
    import keras
    import pipelines
    from zoo.tasks import base as tasks_lib
    from zoo.tasks import classification as _builtin  # noqa: F401

    config = {}
    if isinstance(run_or_model, keras.Model):
        model = run_or_model
    elif os.path.isdir(os.fspath(run_or_model)):
        model, config = load_run(run_or_model)
    elif os.fspath(run_or_model).endswith(".keras") and os.path.isfile(os.fspath(run_or_model)):
        model = rundir.load_keras(run_or_model)
    else:
        raise ValueError(f"{os.fspath(run_or_model)!r} is neither a run directory nor a .keras file.")
    data = data if data is not None else config.get("source")
    if data is None:
        raise ValueError("No data source given; pass --data SOURCE.")
    recipe = Recipe.from_dict(config["recipe"]) if config.get("recipe") else Recipe()
    if batch_size is not None:
        recipe = recipe.override(batch_size=int(batch_size))
    task_name = config.get("task", "classification")
    task = tasks_lib.get_task(task_name)
    data_spec, image_size, channels = _inspect(data, task_name, model.input_shape[1:],
                                               normalization=recipe.normalization, val_split=recipe.val_split,
                                               train_dev=recipe.train_dev)
    if split not in ("train", "train_dev", "val", "test") or not data_spec.splits.get(split):
        have = ", ".join(s for s, n in data_spec.splits.items() if n)
        raise ValueError(f"Source {data!r} has no {split!r} split; it has: {have}.")
    kw = {"seed": int(config.get("seed", 0))}
    if recipe.train_dev:
        kw["train_dev"] = recipe.train_dev
    if image_size is not None:
        kw["image_size"] = image_size
    if channels is not None:
        kw["channels"] = channels
    if task.make_dataset is not None:
        if "model" in pyinspect.signature(task.make_dataset).parameters:
            kw["model"] = model
        ds = task.make_dataset(data, split, recipe, data_spec, False, **kw)
    else:
        ds = pipelines.build(data, split=split, task=task_name, batch_size=recipe.batch_size, shuffle=False,
                             normalization=recipe.normalization, val_split=recipe.val_split, **kw)
    result = task.evaluate(model, ds, data_spec, recipe) if task.evaluate else {}
    if "loss" not in result:
        model.compile(loss=task.loss(model, recipe, data_spec),
                      metrics=task.metrics(model, recipe, data_spec) if task.metrics else None)
        result = {**model.evaluate(ds, return_dict=True, verbose=0), **result}
    return result
