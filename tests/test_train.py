import csv
import json
import os
import pathlib
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from benchmarks import train_matrix as matrix
from zoo.recipes import Recipe
from zoo.training import optim, policy

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def tiny_arrays(n=96, shape=(12, 12, 1), classes=3, seed=0):
    """Images whose class is the bright quadrant (learnable in a few epochs), every class present."""
    return matrix.tiny_images(n, shape, classes, seed)


def tiny_npz(path, n=96, **kw):
    x, y = tiny_arrays(n + 32, **kw)
    np.savez(path, x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:])
    return str(path)


def zoo_cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=timeout)


# ---- policy and recipe plumbing (no training) ---------------------------------------------------------------
def test_precision_policy_from_hardware():
    assert policy.resolve_precision("auto", flags={"avx512f", "amx_bf16"}, has_gpu=False) == "mixed_bfloat16"
    assert policy.resolve_precision("auto", flags={"avx512_bf16"}, has_gpu=False) == "mixed_bfloat16"
    assert policy.resolve_precision("auto", flags={"avx2"}, has_gpu=False) == "float32"
    assert policy.resolve_precision("auto", has_gpu=True, tensor_cores=True) == "mixed_float16"
    assert policy.resolve_precision("auto", has_gpu=True, tensor_cores=False) == "float32"
    assert policy.resolve_precision("float32", flags={"amx_bf16"}) == "float32"
    assert policy.resolve_xla("auto", has_gpu=False) is False and policy.resolve_xla("auto", has_gpu=True) is True
    assert policy.resolve_xla("on") is True
    with pytest.raises(ValueError, match="'fp8'"):
        policy.resolve_precision("fp8")
    flags = policy.cpu_flags()
    expected = "mixed_bfloat16" if {"amx_bf16", "avx512_bf16"} & flags else "float32"
    assert policy.resolve_precision("auto") == expected  # conftest hides GPUs


@pytest.mark.parametrize(
    "recipe, kind, config",
    [
        (Recipe(optimizer="momentum", lr=0.1, momentum=0.8), keras.optimizers.SGD, {"momentum": 0.8}),
        (Recipe(optimizer="sgd", lr=0.1), keras.optimizers.SGD, {"momentum": 0.0}),
        (Recipe(optimizer="rmsprop", lr=0.01), keras.optimizers.RMSprop, {"rho": 0.9}),
        (Recipe(optimizer="adam"), keras.optimizers.Adam, {"beta_1": 0.9}),
        (Recipe(optimizer="adamw", weight_decay=0.01), keras.optimizers.AdamW, {"weight_decay": 0.01}),
    ],
)
def test_optimizer_from_recipe(recipe, kind, config):
    opt = optim.make_optimizer(recipe, steps_per_epoch=10)
    assert type(opt) is kind
    assert {k: opt.get_config()[k] for k in config} == pytest.approx(config)


def test_schedules_from_recipes_of_registered_models():
    # Every registered recipe's schedule builds, and the ResNet CIFAR one counts optimizer steps.
    for name in zoo.list_models():
        recipe = zoo.get_spec(name).recipe
        if recipe is not None:
            optim.learning_rate(recipe, steps_per_epoch=100, epochs=recipe.epochs)
    mobile = Recipe(lr=0.1, lr_schedule="exponential", schedule_args={"decay_rate": 0.94, "decay_epochs": 2})
    assert float(optim.learning_rate(mobile, 10)(40)) == pytest.approx(0.1 * 0.94 ** 2)
    if "resnet20" in zoo.list_models():
        recipe = zoo.get_spec("resnet20").recipe  # CIFAR's 45k images: 352 steps, 182 epochs, capped at 64k steps
        lr = optim.learning_rate(recipe, steps_per_epoch=352, epochs=recipe.epochs)
        assert float(lr(31999)) == pytest.approx(0.1) and float(lr(32000)) == pytest.approx(0.01)
        assert float(lr(47999)) == pytest.approx(0.01) and float(lr(48000)) == pytest.approx(0.001)
        small = optim.learning_rate(recipe, steps_per_epoch=3, epochs=recipe.epochs)  # 300 images: 546 steps
        assert [float(small(s)) for s in (272, 273, 409, 410)] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_weight_decay_is_an_l2_penalty_on_kernels():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.layers[0].kernel.assign(np.ones((3, 2)))
    assert optim.add_weight_decay(model, Recipe(optimizer="momentum", weight_decay=0.1)) == 1
    model(np.zeros((1, 3)))
    assert float(sum(model.losses)) == pytest.approx(0.05 * 6)  # wd / 2 * ||w||^2
    assert optim.add_weight_decay(model, Recipe(optimizer="adamw", weight_decay=0.1)) == 0


# ---- training in process ------------------------------------------------------------------------------------
def test_early_stopping_watches_the_recipe_monitor_and_reports_the_best_epoch(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz")
    run = zoo.train("softmax_regression", data, out=tmp_path / "run", epochs=4, batch_size=16, lr=3e-3,
                    early_stopping=10, monitor="accuracy", verbose=0)
    assert run.early_stopping["monitor"] == "val_accuracy" and run.early_stopping["stopped_epoch"] == 0
    rows = list(csv.DictReader((pathlib.Path(run.run_dir) / "history.csv").open()))
    dev = [float(r["val_accuracy"]) for r in rows]
    assert run.early_stopping["best_epoch"] == 1 + int(np.argmax(dev))  # first of ties: max mode, strict improvement
    assert run.early_stopping["best"] == pytest.approx(max(dev))
    assert json.loads((pathlib.Path(run.run_dir) / "config.json").read_text())["recipe"]["monitor"] == "accuracy"


def test_unknown_monitor_is_refused_before_any_file_is_written(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz")
    with pytest.raises(ValueError, match=r"Unknown monitor 'f1' for this model; allowed: loss, accuracy\."):
        zoo.train("softmax_regression", data, out=tmp_path / "run", monitor="f1", verbose=0)
    assert not (tmp_path / "run").exists() or not os.listdir(tmp_path / "run")


def test_train_writes_the_run_directory(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz")
    run = zoo.train("lenet5", data, out=tmp_path / "run", epochs=3, batch_size=16, lr=3e-3, lr_schedule="exponential",
                    early_stopping=5, verbose=0)
    d = pathlib.Path(run.run_dir)
    assert {"model.keras", "config.json", "history.csv", "metrics.json", "curves.png", "confusion_matrix.png",
            "diagnosis.json", "diagnosis.txt", "logs"} <= set(os.listdir(d))
    assert not (d / "backup").exists()
    config = json.loads((d / "config.json").read_text())
    assert config["model"] == "lenet5" and config["task"] == "classification"
    assert config["model_kwargs"]["input_shape"] == [12, 12, 1] and config["model_kwargs"]["classes"] == 3
    assert config["recipe"]["lr"] == 3e-3 and config["recipe"]["lr_schedule"] == "exponential"
    assert config["data"]["num_classes"] == 3 and config["precision"] == policy.resolve_precision("auto")
    rows = list(csv.DictReader((d / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[2]["learning_rate"]) == pytest.approx(3e-3 * 0.95 ** 2, rel=1e-5)
    metrics = json.loads((d / "metrics.json").read_text())
    assert set(metrics) == {"train", "val", "test"}
    for split in metrics.values():
        assert {"loss", "accuracy", "precision", "recall", "f1"} <= set(split)
    assert metrics["test"]["examples"] == 32
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 32
    assert os.listdir(d / "logs")  # TensorBoard event files
    model, loaded_config = zoo.train.load_run(d)
    assert loaded_config == config and model.output_shape == (None, 3)
    again = zoo.train.evaluate(d, split="test")
    assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_a_runs_own_model_file_is_evaluated_with_the_runs_normalization(tmp_path):
    x, y = tiny_arrays(64)
    d = tmp_path / "run"
    zoo.train("lenet5", (x, y), out=d, epochs=1, batch_size=16, normalization="standardize", verbose=0)
    by_run = zoo.train.evaluate(d, data=(x, y), split="test")
    by_file = zoo.train.evaluate(d / "model.keras", data=(x, y), split="test")
    assert by_file["loss"] == pytest.approx(by_run["loss"], rel=1e-6)
    elsewhere = tmp_path / "copy.keras"  # outside its run: the default recipe's "scale", another input
    elsewhere.write_bytes((d / "model.keras").read_bytes())
    assert zoo.train.evaluate(elsewhere, data=(x, y), split="test")["loss"] != pytest.approx(by_run["loss"], rel=1e-3)


def test_the_train_step_is_traced_once(tmp_path):
    """Optimizer and metric variables exist before fit traces: Keras would otherwise trace the whole step twice."""
    traces = []

    class Counting(keras.Model):
        def train_step(self, data):
            traces.append(1)  # runs once per trace, never per step
            return super().train_step(data)

    inputs = keras.Input((12, 12, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = Counting(inputs, keras.layers.Dense(3, activation="softmax")(x))
    run = zoo.train(model, tiny_npz(tmp_path / "tiny.npz"), out=tmp_path / "run", epochs=2, batch_size=16,
                    val_split=0.0, verbose=0)
    assert len(run.history) == 2 and len(traces) == 1


def test_fit_reads_the_training_split_through_one_iterator(tmp_path, monkeypatch):
    """The split is repeated and an epoch is one pass: Keras then keeps one iterator instead of one per epoch."""
    import tensorflow as tf

    seen, fit = {}, keras.Model.fit

    def spy(self, x=None, **kw):
        seen.update(cardinality=int(x.cardinality()), steps=kw.get("steps_per_epoch"))
        return fit(self, x, **kw)

    monkeypatch.setattr(keras.Model, "fit", spy)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    run = zoo.train(model, tiny_npz(tmp_path / "tiny.npz", n=100), out=tmp_path / "run", epochs=2, batch_size=16,
                    val_split=0.0, verbose=0)
    assert seen == {"cardinality": tf.data.INFINITE_CARDINALITY, "steps": 7}  # 100 examples, batch 16
    assert len(run.history) == 2


def test_each_split_is_built_once_per_run(tmp_path, monkeypatch):
    """fit, precise BN and the final evaluation share one dataset per split (building traces its maps)."""
    from zoo.training import data as data_lib

    calls, make = [], data_lib.make_dataset

    def counting(task, source, split, recipe, data_spec, training, **kw):
        calls.append((split, training))
        return make(task, source, split, recipe, data_spec, training, **kw)

    monkeypatch.setattr(data_lib, "make_dataset", counting)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x)))
    zoo.train(model, tiny_npz(tmp_path / "tiny.npz"), out=tmp_path / "run", epochs=2, batch_size=16, verbose=0)
    assert sorted(calls) == [("test", False), ("train", False), ("train", True), ("val", False)]


def test_bfloat16_policy_keeps_a_float32_head(tmp_path):
    x, y = tiny_arrays(64)
    run = zoo.train("lenet5", (x, y), out=tmp_path / "run", epochs=1, batch_size=16, precision="mixed_bfloat16",
                    verbose=0)
    assert run.model.get_layer("c1").compute_dtype == "bfloat16"
    assert run.model.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training


def test_binary_and_sequence_models_get_their_loss(tmp_path):
    x, y = tiny_arrays(64, shape=(8, 8, 3), classes=2)
    run = zoo.train("logistic_regression", (x, y), out=tmp_path / "bin", epochs=1, verbose=0)
    assert run.model.output_shape == (None, 1) and isinstance(run.model.loss, keras.losses.BinaryCrossentropy)
    x, y = tiny_arrays(64, shape=(6, 4, 1), classes=3)
    run = zoo.train("rnn", (x, y), out=tmp_path / "seq", epochs=1, verbose=0, model_kwargs={"units": 8})
    assert run.model.input_shape == (None, 6, 4) and "accuracy" in run.metrics["val"]


# ---- the command line ---------------------------------------------------------------------------------------
def test_cli_errors_are_one_line(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    cases = [
        (["train", "lenet", "--data", data], "Did you mean: lenet5"),
        (["train", "lenet5", "--data", str(tmp_path / "missing.npz")], "missing.npz"),
        (["train", "lenet5", "--data", data, "--epochs", "x"], "--epochs"),
        (["train", "lenet5", "--data", data, "--precision", "fp8"], "fp8"),
        (["train", "lenet5", "--data", data, "--set", "lrr=0.1"], "Did you mean 'lr'"),
        (["train", "lenet5", "--data", data, "--augment", "flop"], "flop"),
        (["train", "lenet5", "--data", data, "--out", str(tmp_path / "busy")], "already exists"),
        (["train", "lenet5", "--data", data, "--resume", "--out", str(tmp_path / "none")], "Nothing to resume"),
        (["evaluate", str(tmp_path / "none"), "--data", data], "neither a run directory"),
    ]
    for args, message in cases:
        proc = zoo_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert os.listdir(tmp_path / "busy") == ["file"]


@pytest.mark.parametrize("schedule", [None, "cosine"])
def test_resume_with_a_lower_constant_rate_trains_at_that_rate(schedule, tmp_path, monkeypatch):
    """The backup's `learning_rate` variable does not override the resumed recipe's constant rate; a schedule
    (which needs the run's epochs to build) resumes too."""
    from zoo.training import loop

    data, out = tiny_npz(tmp_path / "tiny.npz", n=64), tmp_path / "run"
    finish = loop._finish

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_finish", interrupted)  # killed after epoch 1's backup, before the run completed
    with pytest.raises(KeyboardInterrupt):
        zoo.train("softmax_regression", data, out=out, epochs=1, batch_size=16, optimizer="sgd", lr=0.5,
                  lr_schedule=schedule, verbose=0)
    monkeypatch.setattr(loop, "_finish", finish)
    run = zoo.train("softmax_regression", out=out, resume=True, epochs=2, lr=0.01, verbose=0)
    assert [row["epoch"] for row in run.history] == [1, 2]
    if schedule is None:
        assert float(run.model.optimizer.learning_rate) == pytest.approx(0.01)
    assert int(run.model.optimizer.iterations) == 2 * run.config["steps_per_epoch"]  # epoch 1 restored, not redone


def test_console_script_runs_atexit_handlers_and_keeps_the_exit_code(tmp_path):
    """`zoo.cli.run` skips only the interpreter's teardown: atexit handlers, output and exit codes stay."""
    script = ("import atexit, sys; atexit.register(lambda: print('atexit ran', flush=True)); "
              "sys.argv = ['zoo', *sys.argv[1:]]; from zoo.cli import run; run()")

    def zoo_run(*args):
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=ENV,
                              cwd=ROOT, timeout=300)

    ok = zoo_run("info", "lenet5")
    assert ok.returncode == 0 and "lenet5" in ok.stdout and ok.stdout.rstrip().endswith("atexit ran"), ok.stderr
    bad = zoo_run("info", "lenet6")
    assert bad.returncode == 2 and "lenet6" in bad.stderr and "atexit ran" in bad.stdout


@pytest.mark.slow
def test_resume_after_sigkill_gives_every_epoch_once(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz", n=160, shape=(16, 16, 1))
    out = tmp_path / "run"
    args = [sys.executable, "-m", "zoo.cli", "train", "lenet5", "--data", data, "--epochs", "12", "--batch-size",
            "8", "--out", str(out), "--lr", "0.002", "--lr-schedule", "exponential", "--precision", "float32"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith("epoch 2/12"):  # printed after the epoch's backup
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = json.loads((out / "backup" / "latest.json").read_text())["epoch"]
    assert 2 <= done < 12 and not (out / "metrics.json").exists() and not (out / "model.keras").exists()

    assert zoo_cli("train", "lenet5", "--data", data, "--out", str(out)).returncode == 2  # refuses without --resume
    resumed = zoo_cli("train", "lenet5", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stdout
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    lrs = [float(r["learning_rate"]) for r in rows]  # the schedule continued from the restored step
    np.testing.assert_allclose(lrs, 0.002 * 0.95 ** np.arange(12), rtol=1e-5)
    assert {"model.keras", "metrics.json", "curves.png", "confusion_matrix.png"} <= set(os.listdir(out))
    assert not (out / "backup").exists()


@pytest.mark.slow
def test_nan_exits_nonzero_and_keeps_the_last_good_checkpoint(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    schedule = "schedule_args={'boundaries_epochs': [2], 'values': [0.01, 1e38]}"
    proc = zoo_cli("train", "softmax_regression", "--data", data, "--epochs", "6", "--optimizer", "sgd",
                   "--lr-schedule", "piecewise", "--set", schedule, "--out", str(out))
    assert proc.returncode == 3
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "epoch 3" in err[0] and "last good checkpoint (epoch 2)" in err[0], proc.stderr
    assert json.loads((out / "backup" / "latest.json").read_text())["epoch"] == 2
    assert [r["epoch"] for r in csv.DictReader((out / "history.csv").open())] == ["1", "2"]
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    fixed = "schedule_args={'boundaries_epochs': [2], 'values': [0.01, 0.001]}"
    again = zoo_cli("train", "softmax_regression", "--out", str(out), "--resume", "--set", fixed)
    assert again.returncode == 0, again.stderr
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [r["epoch"] for r in rows] == [str(i) for i in range(1, 7)]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    model, _ = zoo.train.load_run(out)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_readme_main_job_is_the_demo():
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/zoo demo" in readme
    parser_help = zoo_cli("demo", "--help")
    assert parser_help.returncode == 0 and "--export-dir" in parser_help.stdout


def test_evaluation_cache_does_not_keep_models_alive():
    import gc
    import weakref

    from zoo.tasks import classification as tasks

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    _, _, out = tasks.predict_labels(model, [(np.zeros((4, 3), "float32"), np.zeros(4, "int64"))])
    assert out.shape == (4, 2)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None  # repeated zoo.train calls in one process (notebooks, the train matrix) must not leak


@pytest.mark.parametrize("name", ["lenet5", "rnn", "yolo", "unet", "siamese"])  # one model per task
def test_every_task_builds_its_splits_without_the_autotune_thread(name, tmp_path):
    """tf.data's autotuning thread is off in every split a run builds (`pipelines.build(autotune=False)`).

    With it on, deleting the training iterator at the end of `fit` blocked for 8-10 s with the CPU idle in
    about one `zoo train resnet20` of three (TF 2.21; BENCHMARKS.md, issue 24). Task hooks keep the option.
    """
    from benchmarks import export_matrix
    from zoo.tasks.base import get_task
    from zoo.training import data as data_lib

    spec = zoo.get_spec(name)
    model = zoo.create_model(name, **spec.test_overrides)
    task, shape = get_task(spec.task), export_matrix.served_shape(model)
    classes = 8 if spec.task == "embedding" else export_matrix.classes_of(model, spec.task)  # identities to split
    source = export_matrix.tiny_source(spec.task, shape, classes, str(tmp_path))
    recipe = spec.recipe.override(batch_size=4, val_split=0.0)
    run_data = data_lib.open_data(source, task, tuple(model.inputs[0].shape[1:]), recipe)
    for split, training in (("train", True), ("test", False)):
        ds = run_data.dataset(task, split, recipe, training, model=model, seed=0)
        assert ds.options().autotune.enabled is False, (name, split)
        next(iter(ds))  # the split still yields batches

