"""`train`, `evaluate` and `load_run`: any zoo model on any pipeline source, into a run directory.

`train` runs in phases, one short function each: `_resolve` (model, task and recipe, from the arguments or
the run being resumed), `data.open_data` (the source opened and described once), `_build` (the model
under the strategy and precision policy, compiled), `_callbacks` + `_fit` (backups, resume, the NaN guard)
and `_finish` (model.keras first, then metrics.json, plots and the diagnosis).
"""

from __future__ import annotations

import concurrent.futures
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
from callbacks import reports
from pipelines.augment import recipe as aug
from zoo import contract
from zoo.recipes import Recipe
from zoo.training import data as data_lib
from zoo.training import optim, policy, precise_bn, rundir
from zoo.version import __version__

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
    contract.check_int("precise_bn", recipe.precise_bn, min=0)
    contract.check_choice("precise_bn_when", recipe.precise_bn_when, ("stale", "always"))
    if not isinstance(recipe.extra, dict):
        raise ValueError(f"`extra` must be a dict, e.g. --set extra={{'pad_pixels': 4}}. Received: extra={recipe.extra!r}")
    cb.schedules.check_name(recipe.lr_schedule)
    aug.from_recipe(recipe)


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


def _monitor(recipe: Recipe, metrics, val: bool) -> str:
    """The logged name early stopping / reduce-on-plateau watch: the recipe's `monitor` on the dev split.

    The default is the dev loss, not accuracy: accuracy saturates on easy data and its ties never improve.
    """
    allowed = ["loss"] + [m if isinstance(m, str) else m.name for m in (metrics or [])]
    if recipe.monitor not in allowed:
        raise ValueError(f"Unknown monitor {recipe.monitor!r} for this model; allowed: {', '.join(allowed)}.")
    return ("val_" if val else "") + recipe.monitor


@dataclasses.dataclass
class _Plan:
    """What `train` resolved from its arguments (and the run it resumes)."""

    name: str
    spec: Any  # the registry's ModelSpec; None for a given keras.Model
    model: Any  # the given keras.Model; None for a registered name
    task: Any  # zoo.tasks.Task
    recipe: Recipe
    model_kwargs: dict
    source: Any
    seed: int
    dtype_policy: str
    jit: bool


def _check_fields(overrides) -> None:
    for key in sorted(set(overrides) - RECIPE_FIELDS):
        close = difflib.get_close_matches(key, RECIPE_FIELDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown recipe field {key!r}.{hint} Allowed: {', '.join(sorted(RECIPE_FIELDS))}.")


def _resumed_config(out, model) -> dict:
    """The config of the interrupted run in `out`, checked against `model`."""
    if out is None:
        raise ValueError("--resume needs --out, the run directory to continue.")
    config = rundir.RunDir(rundir.prepare(out, resume=True), finished=False).config
    model_name = model if isinstance(model, str) else getattr(model, "name", None)
    if model_name is not None and model_name != config["model"]:
        raise ValueError(f"{out!r} is a run of {config['model']!r}, not {model_name!r}.")
    return config


def _resolve(model, data, *, out, resume, precision, xla, seed, model_kwargs, overrides) -> _Plan:
    """Model, task, recipe, seed and precision from the arguments, or from the run being resumed."""
    import keras

    from zoo import registry
    from zoo.tasks import base as tasks_lib
    from zoo.tasks import classification as _builtin  # noqa: F401  (registers classification / sequence)

    task_name, base = overrides.pop("task", None), None
    _check_fields(overrides)
    if resume:
        config = _resumed_config(out, model)
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
        name, task_name, given = spec.name, spec.task, None
        base = (spec.recipe or Recipe()) if base is None else base
    elif isinstance(model, keras.Model):
        spec, name, given = None, model.name, model
        task_name = task_name or "classification"
        base = Recipe() if base is None else base
    else:
        raise ValueError(f"`model` must be a registered name or a keras.Model. Received: {model!r}")
    if overrides.get("lr_schedule", base.lr_schedule) != base.lr_schedule and "schedule_args" not in overrides:
        overrides["schedule_args"] = {}  # the recipe's arguments belong to its own schedule
    recipe = base.override(**overrides)
    _check_recipe(recipe)
    task = tasks_lib.get_task(task_name)
    if recipe.train_dev and task.train_dev_refused:
        raise ValueError(f"--train-dev is not available for {task.name} models: {task.train_dev_refused}.")
    return _Plan(name=name, spec=spec, model=given, task=task, recipe=recipe, model_kwargs=dict(model_kwargs or {}),
                 source=data, seed=int(seed) if seed is not None else 0,
                 dtype_policy=policy.resolve_precision(precision) if spec is not None else given.dtype_policy.name,
                 jit=policy.resolve_xla(xla))


# The data description fields a resumed run must share with config.json (the source path may move).
RESUME_DATA_FIELDS = ("task", "num_classes", "class_names", "image_shape", "splits", "normalization", "max_boxes",
                      "split_seed")


def _check_resumed_data(out, spec) -> None:
    """Refuses to resume the run in `out` on data described differently from its config.json."""
    import json

    recorded = rundir.RunDir(out, finished=False).data
    now = json.loads(json.dumps(rundir.finite(spec.to_dict())))
    for field in RESUME_DATA_FIELDS:
        if field in recorded and recorded[field] != now.get(field):
            raise ValueError(f"Cannot resume {os.fspath(out)!r} on {spec.source!r}: its data differs in `{field}` "
                             f"(config.json: {recorded[field]!r}, now: {now.get(field)!r}); resume on the run's "
                             "own data or train into a new --out.")


def check_class_names(run, spec) -> None:
    """Refuses to score a run on data whose class names differ from the ones it trained on."""
    trained = (run.data or {}).get("class_names")
    if trained and list(trained) != list(spec.class_names):
        raise ValueError(f"{spec.source!r} has classes {list(spec.class_names)!r} but {run.path!r} was trained "
                         f"on {list(trained)!r}; evaluate on data with the same class names.")


def _epochs(plan: _Plan, run_data) -> tuple:
    """`(steps_per_epoch, epochs)`: `extra["total_steps"]` caps the recipe's epochs."""
    n_train = int(run_data.spec.splits.get("train") or 0)
    if n_train < 1:
        raise ValueError(f"Source {plan.source!r} has no training examples.")
    steps_per_epoch = math.ceil(n_train / plan.recipe.batch_size)
    epochs = plan.recipe.epochs
    if plan.recipe.extra.get("total_steps"):
        epochs = min(epochs, math.ceil(plan.recipe.extra["total_steps"] / steps_per_epoch))
    return steps_per_epoch, epochs


def _run_dir(out, name, resume, chief) -> str:
    """The chief's run directory; other workers write to a private folder (removed at the end)."""
    if chief:
        return os.fspath(out) if resume else rundir.prepare(out or rundir.default_dir(name), resume=False)
    run_dir = tempfile.mkdtemp(prefix="zoo-worker-")
    shared_backup = os.path.join(os.fspath(out or ""), rundir.BACKUP)
    if resume and os.path.isdir(shared_backup):  # resume from the chief's last backup
        shutil.copytree(shared_backup, os.path.join(run_dir, rundir.BACKUP))
    return run_dir


def _make_model(plan: _Plan, data_spec):
    """`(model, builder keywords)`: the registered builder under the run's precision policy, or the given model."""
    import keras

    if plan.spec is None:
        return plan.model, plan.model_kwargs
    kwargs, task = dict(plan.model_kwargs), plan.task
    if "input_shape" not in kwargs:
        shape = data_spec.image_shape
        kwargs["input_shape"] = tuple(task.input_shape(shape) if task.input_shape is not None else shape)
    if "classes" not in kwargs and task.classes_from_data:
        kwargs["classes"] = _classes_for(plan.spec.builder, data_spec.num_classes)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(plan.dtype_policy)
    try:
        return plan.spec.builder(**kwargs), kwargs
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _build(plan: _Plan, run_data, strat, steps_per_epoch, epochs):
    """`(model, builder keywords, monitor)`: built, weight-decayed and compiled under the strategy."""
    import keras

    from zoo import distribute

    previous = keras.mixed_precision.global_policy().name
    keras.utils.set_random_seed(plan.seed)
    recipe, task, data_spec = plan.recipe, plan.task, run_data.spec
    try:
        with strat.scope():
            net, model_kwargs = _make_model(plan, data_spec)
            optim.add_weight_decay(net, recipe)
            metrics = task.metrics(net, recipe, data_spec) if task.metrics else None
            net.compile(optimizer=optim.make_optimizer(recipe, steps_per_epoch, epochs),
                        loss=task.loss(net, recipe, data_spec), metrics=metrics, jit_compile=plan.jit)
            monitor = _monitor(recipe, metrics, bool(data_spec.splits.get("val")))  # before any file is written
        distribute.patch_keras_for_multiworker(net, strat)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return net, model_kwargs, monitor


def _config(plan: _Plan, run_data, model_kwargs, steps_per_epoch, epochs, strict, strategy) -> dict:
    return {
        "model": plan.name,
        "task": plan.task.name,
        "model_kwargs": _jsonable(model_kwargs),
        "recipe": plan.recipe.to_dict(),
        "data": run_data.spec.to_dict(),
        "source": plan.source if isinstance(plan.source, str) else None,
        "precision": plan.dtype_policy,
        "xla": plan.jit,
        "seed": plan.seed,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "strict": strict,
        "strategy": strategy,
        "zoo_version": __version__,
    }


@dataclasses.dataclass
class _Watch:
    """The run's callbacks, and the ones `train` asks afterwards."""

    callbacks: list
    guard: Any
    history: Any
    backup: Any
    early: Any
    verbose: int


def _callbacks(run_dir, recipe: Recipe, monitor: str, verbose) -> _Watch:
    """NaN guard, early stopping / plateau, TensorBoard, history.csv, backups and the epoch line, in order."""
    import keras

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
    return _Watch(callbacks=callbacks, guard=guard, history=history, backup=backup, early=early, verbose=verbose)


def _build_state(net, element_spec) -> None:
    """Creates the optimizer and metric variables before `fit` traces its train step.

    Without a distribution strategy Keras creates them inside the first trace, and a `tf.function` that
    created variables is traced a second time: ResNet-20's whole train step twice. Keras' own symbolic build
    (what it runs under a strategy) from the dataset's element spec avoids that. Private Keras API: when it is
    missing or fails, `fit` builds the state as before.
    """
    build = getattr(net, "_symbolic_build", None)
    if build is None:
        return
    try:
        with net.distribute_strategy.scope():
            build(data_batch=element_spec)
    except Exception:  # noqa: BLE001 - only a lost optimisation: fit builds the same state itself
        return


def _one_iterator(net, train):
    """`(dataset, steps_per_epoch)`: the training split repeated, so that `fit` keeps one iterator for the run.

    Keras makes a new iterator each epoch for a finite dataset, and deleting one could stall for 8-10 s (the
    tf.data autotuning thread, now off in `pipelines.build`; BENCHMARKS.md, issue 24). Repeated, with
    `steps_per_epoch` = one pass, each epoch is still one pass over the split, with shuffle order and augmentation
    re-drawn at each pass. Left as it is where a pass's length is unknown or several replicas share the batches.
    """
    strategy = getattr(net, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return train, None
    steps = int(train.cardinality())
    return (train.repeat(), steps) if steps > 0 else (train, None)


def _keep_requested_rate(net, recipe: Recipe) -> None:
    """After a restore, a constant rate is the resumed recipe's (e.g. a lower `--lr`), not the backup's.

    A constant rate lives in an optimizer variable that the backup restores; schedules follow the restored step
    count, and ReduceLROnPlateau's reductions ("plateau") are kept.
    """
    if recipe.lr_schedule is None:
        net.optimizer.learning_rate = float(recipe.lr)


def _fit(net, dataset, watch: _Watch, *, epochs, resume, has_val, run_dir, recipe: Recipe) -> None:
    """Fits from the last backed-up epoch (with `resume`); raises `TrainingDiverged` on a NaN loss."""
    initial_epoch = watch.backup.restore(net) if resume else 0
    if resume:
        _keep_requested_rate(net, recipe)
        print(f"zoo: resuming after epoch {initial_epoch}", flush=True)
    if initial_epoch < epochs:
        train = dataset("train", True)
        _build_state(net, train.element_spec)
        train, steps = _one_iterator(net, train)
        net.fit(train, validation_data=dataset("val", False) if has_val else None, epochs=epochs,
                steps_per_epoch=steps, initial_epoch=initial_epoch, callbacks=watch.callbacks,
                verbose=watch.verbose, shuffle=False)
    good = watch.backup.latest()
    watch.guard.check(
        f"The last good checkpoint (epoch {good['epoch']}) is in {watch.backup.backup_dir}; "
        f"continue with --resume --out {run_dir} and a lower --lr." if good else
        "No epoch finished; try a lower --lr."
    )


def _evaluate_splits(net, dataset, plan: _Plan, data_spec) -> tuple:
    """`(metrics per split, the last split's dataset)`: train, train_dev, val and test where present.

    Large train splits are scored on a spread sample (`data.TRAIN_EVAL_EXAMPLES`, at least the dev / test size).

    `ZOO_NO_TEST=1` (set by `zoo tune`: trials never look at test) leaves the test split out.
    """
    names = ["train"] + [s for s in ("train_dev", "val") if data_spec.splits.get(s)]
    if data_spec.splits.get("test") and not os.environ.get("ZOO_NO_TEST"):
        names.append("test")
    results, ds = {}, None
    n_train = int(data_spec.splits["train"])
    limit = max([data_lib.TRAIN_EVAL_EXAMPLES] + [int(data_spec.splits.get(s) or 0) for s in ("val", "test")])
    for split in names:
        ds = dataset(split, False)
        if split == "train" and n_train > limit:
            ds = data_lib.spread_sample(ds, n_train, limit, plan.recipe.batch_size)
            print(f"zoo: train metrics from a spread sample of about {limit} of {n_train} examples", flush=True)
        extra = plan.task.evaluate(net, ds, data_spec, plan.recipe) if plan.task.evaluate else {}
        if "loss" not in extra:
            extra = {**net.evaluate(ds, return_dict=True, verbose=0), **extra}
        results[split] = extra
    return results, ds


def _diagnose(results, recipe: Recipe, run_dir):
    """Bias / variance from the train and dev errors (None without a dev split); writes diagnosis.json."""
    if "val" not in results:
        return None
    t, v = results["train"], results["val"]
    key = "accuracy" if "accuracy" in t and "accuracy" in v else "loss"
    errors = (1 - t[key], 1 - v[key]) if key == "accuracy" else (t[key], v[key])
    diagnosis = cb.diagnose(*errors, baseline_error=float(recipe.extra.get("baseline_error", 0.0)),
                            metric="error" if key == "accuracy" else "loss")
    print(f"zoo: diagnosis: {cb.diagnosis.write(diagnosis, run_dir)}", flush=True)
    return diagnosis


def _print_summary(results, stopping) -> None:
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


def _why_stale(net, recipe: Recipe, watch: _Watch) -> str | None:
    """Why precise BN should run: `recipe.precise_bn_when` "always", restored early weights, or stale averages."""
    if recipe.precise_bn_when == "always":
        return "precise_bn_when=always"
    import keras

    last = watch.history.rows[-1]["epoch"] if watch.history.rows else 0
    if watch.early is not None and watch.early.best_weights is not None and watch.early.best_epoch + 1 < last:
        return f"early stopping restored epoch {watch.early.best_epoch + 1} of {last}"
    final_lr = float(keras.ops.convert_to_numpy(net.optimizer.learning_rate))
    return precise_bn.staleness(net, steps=int(net.optimizer.iterations.numpy()), final_lr=final_lr,
                                peak_lr=float(recipe.lr))


def _recalibrate_batchnorm(net, dataset, recipe: Recipe, watch: _Watch) -> None:
    """Precise BatchNorm over `recipe.precise_bn` training examples where the moving averages may be stale.

    Single-replica runs only (others keep the averages).
    """
    strategy = getattr(net, "distribute_strategy", None)
    if not recipe.precise_bn or (strategy is not None and strategy.num_replicas_in_sync > 1):
        return
    if not precise_bn.batchnorm_layers(net):
        return
    why = _why_stale(net, recipe, watch)
    if why is None:
        print("zoo: BatchNormalization moving averages kept: they already are the training statistics (the rate "
              "had decayed; --set precise_bn_when=always recomputes them)", flush=True)
        return
    seen = precise_bn.recalibrate(net, dataset("train", True), recipe.precise_bn)
    if seen:
        print(f"zoo: BatchNormalization statistics recomputed over {seen} training examples (precise BN: {why}; "
              "--set precise_bn=0 keeps the moving averages)", flush=True)


def _finish(net, dataset, plan: _Plan, run_data, run_dir, watch: _Watch) -> tuple:
    """`(metrics, plots, diagnosis, early stopping summary)`: model.keras (atomically) before anything else."""
    _recalibrate_batchnorm(net, dataset, plan.recipe, watch)
    tmp_model = os.path.join(run_dir, "model.partial.keras")
    net.save(tmp_model)
    os.replace(tmp_model, os.path.join(run_dir, rundir.MODEL))
    # curves.png needs only the history: drawn (Python, matplotlib) while TensorFlow evaluates (its kernels release
    # the GIL); joined before the task's report, which draws with matplotlib too
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        curves = pool.submit(reports.plot_curves, list(watch.history.rows), os.path.join(run_dir, "curves.png"))
        results, last = _evaluate_splits(net, dataset, plan, run_data.spec)
        plots = [curves.result()]
    rundir.write_json(os.path.join(run_dir, rundir.METRICS), results)
    if plan.task.report is not None:
        plots += list(plan.task.report(net, last, run_data.spec, rundir.RunDir(run_dir)) or [])
    diagnosis = _diagnose(results, plan.recipe, run_dir)
    rundir.mark_complete(run_dir)  # before the backup goes: a crash in between never retrains a finished run
    shutil.rmtree(watch.backup.backup_dir, ignore_errors=True)
    stopping = watch.early.summary() if watch.early is not None else None
    _print_summary(results, stopping)
    return results, plots, diagnosis, stopping


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
    follow_symlinks: bool = False,
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
        follow_symlinks: Read dataset files behind symlinks that leave the dataset folder.
        **overrides: Recipe fields.

    Returns:
        A `Run`.

    Raises:
        ValueError: Bad model, source, option or run directory (one line each).
        rundir.RunComplete: `resume` on a run that already finished (nothing is touched).
        callbacks.TrainingDiverged: The loss became NaN/Inf; the last good backup is kept.
    """
    from zoo import distribute

    # The strategy comes first: multi-worker collectives must be set up before any TF op runs.
    strat = get_strategy(strategy)
    chief = distribute.is_chief()
    plan = _resolve(model, data, out=out, resume=resume, precision=precision, xla=xla, seed=seed,
                    model_kwargs=model_kwargs, overrides=overrides)
    requested = plan.model_kwargs.get("input_shape") if plan.spec is not None else plan.model.input_shape[1:]
    run_data = data_lib.open_data(plan.source, plan.task, requested, plan.recipe, strict=strict,
                                  follow_symlinks=follow_symlinks)
    if resume:
        _check_resumed_data(out, run_data.spec)
    steps_per_epoch, epochs = _epochs(plan, run_data)
    run_dir = _run_dir(out, plan.name, resume, chief)
    n_train = run_data.spec.splits["train"]
    print(f"zoo: training {plan.name} on {run_data.spec.source} ({n_train} train examples) -> {run_dir}", flush=True)
    print(f"zoo: {distribute.describe(strat)}", flush=True)
    print(f"zoo: precision {plan.dtype_policy}, xla {'on' if plan.jit else 'off'}", flush=True)

    net, model_kwargs, monitor = _build(plan, run_data, strat, steps_per_epoch, epochs)

    built = {}

    def dataset(split, training):  # each split built once: fit, precise BN and the evaluation share it
        if (split, training) not in built:
            built[split, training] = run_data.dataset(plan.task, split, plan.recipe, training, model=net,
                                                      seed=plan.seed)
        return built[split, training]

    config = _config(plan, run_data, model_kwargs, steps_per_epoch, epochs, strict, strategy)
    rundir.write_json(os.path.join(run_dir, rundir.CONFIG), config)
    watch = _callbacks(run_dir, plan.recipe, monitor, verbose)
    _fit(net, dataset, watch, epochs=epochs, resume=resume, has_val=bool(run_data.spec.splits.get("val")),
         run_dir=run_dir, recipe=plan.recipe)
    results, plots, diagnosis, stopping = _finish(net, dataset, plan, run_data, run_dir, watch)
    run = Run(run_dir=run_dir, model=net, config=config, history=list(watch.history.rows), metrics=results,
              diagnosis=diagnosis, early_stopping=stopping)
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        print("zoo: worker done (the chief writes the run directory)", flush=True)
        return dataclasses.replace(run, run_dir=os.fspath(out) if out else run_dir)
    print(f"zoo: model {os.path.join(run_dir, rundir.MODEL)}; plots {', '.join(plots)}; "
          f"TensorBoard: tensorboard --logdir {os.path.join(run_dir, rundir.LOGS)}", flush=True)
    return run


def load_run(run_dir):
    """`(model, config)` of a run directory (the model loads with `safe_mode=True`, uncompiled)."""
    run = rundir.RunDir(run_dir)
    return run.load_model(), run.config


def evaluate(run_or_model, data=None, *, split="test", batch_size=None, follow_symlinks=False):
    """Metrics of a run (or a `.keras` file / `keras.Model`) on one split of a source.

    Args:
        run_or_model: A run directory, a `.keras` file or a `keras.Model`. A run's own model.keras is evaluated
            as its run (with the run's input normalization); another `.keras` file or a `keras.Model` gets the
            default recipe's ("scale").
        data: A `pipelines.build` source. Defaults to the run's own.
        split: "train", "train_dev", "val" or "test". Defaults to `"test"`.
        batch_size: Defaults to the run's recipe.
        follow_symlinks: Read dataset files behind symlinks that leave the dataset folder.

    Returns:
        A dict of metrics (loss, accuracy, precision, recall, f1... per task).
    """
    import keras

    from zoo.tasks import base as tasks_lib
    from zoo.tasks import classification as _builtin  # noqa: F401

    config, run = {}, None
    path = None if isinstance(run_or_model, keras.Model) else os.fspath(run_or_model)
    if path is not None and os.path.basename(path) == rundir.MODEL and rundir.RunDir.is_run(os.path.dirname(path)):
        path = os.path.dirname(path) or "."  # a run's own model.keras: the run's config holds its input normalization
    if path is None:
        model = run_or_model
    elif os.path.isdir(path):
        run = rundir.RunDir(path)
        model, config = run.load_model(), run.config
    elif path.endswith(".keras") and os.path.isfile(path):
        model = rundir.load_keras(path)
    else:
        raise ValueError(f"{path!r} is neither a run directory nor a .keras file.")
    data = data if data is not None else config.get("source")
    if data is None:
        raise ValueError("No data source given; pass --data SOURCE.")
    recipe = Recipe.from_dict(config["recipe"]) if config.get("recipe") else Recipe()
    if batch_size is not None:
        recipe = recipe.override(batch_size=int(batch_size))
    task = tasks_lib.get_task(config.get("task", "classification"))
    run_data = data_lib.open_data(data, task, model.input_shape[1:], recipe, follow_symlinks=follow_symlinks)
    if run is not None:
        check_class_names(run, run_data.spec)
    if split not in ("train", "train_dev", "val", "test") or not run_data.spec.splits.get(split):
        have = ", ".join(s for s, n in run_data.spec.splits.items() if n)
        raise ValueError(f"Source {data!r} has no {split!r} split; it has: {have}.")
    ds = run_data.dataset(task, split, recipe, False, model=model, seed=int(config.get("seed", 0)))
    result = task.evaluate(model, ds, run_data.spec, recipe) if task.evaluate else {}
    if "loss" not in result:
        model.compile(loss=task.loss(model, recipe, run_data.spec),
                      metrics=task.metrics(model, recipe, run_data.spec) if task.metrics else None)
        result = {**model.evaluate(ds, return_dict=True, verbose=0), **result}
    return result
