"""zoo tune at equal CPU-seconds: grid vs random vs TPE, and TPE with and without pruning, on real data.

The data are scikit-learn's bundled UCI digits (offline; 1,797 8x8 scans, 10 classes), split once (stratified,
seed 0) into train / dev / test (60/20/20) and saved as a .npz with x_val, so every trial trains on the same
examples. Every arm runs `zoo tune` on the curriculum's space for SGD with momentum:

    lr = log(1e-4, 1)              learning rate, log-uniform
    momentum = 1-log(0.1, 0.001)   1 - beta log-uniform: momentum in [0.9, 0.999]

with `--budget-cpu B`: no trial starts once the trials used B CPU-seconds (user + system of the trial processes,
TensorFlow start-up included: it is part of what a trial costs). The curve is the best dev accuracy reached as a
function of the CPU-seconds spent, read from the study's trials (`cpu_s` attribute) after the run; each arm
gets the same budget and several search seeds. The best trial's test accuracy (evaluated once) is in the table.

    .venv/bin/python benchmarks/tune.py --budget 240 --seeds 0 1 2              # the table in BENCHMARKS.md
    .venv/bin/python benchmarks/tune.py --budget 60 --seeds 0 --arms random     # a smoke run

It is small on purpose: the machine is a shared 2-core CPU, so the budget is a few minutes per arm and seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = ["--space", "lr=log(1e-4,1)", "--space", "momentum=1-log(0.1,0.001)"]
ARMS = {  # name: sampler, pruner
    "grid": ("grid", "none"),
    "random": ("random", "none"),
    "tpe": ("tpe", "none"),
    "tpe+median": ("tpe", "median"),
    "tpe+hyperband": ("tpe", "hyperband"),
}


def digits_npz(path, seed=0):
    """The UCI digits as (N, 8, 8, 1) float32 in [0, 1], split 60/20/20 stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x, y = (digits.images[..., None] / 16.0).astype("float32"), digits.target.astype("int32")
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                    random_state=seed)
    np.savez(path, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
    return path


def run_arm(arm, seed, args, data, root):
    sampler, pruner = ARMS[arm]
    out = os.path.join(root, f"{arm}-{seed}")
    cmd = [sys.executable, "-m", "zoo.cli", "tune", args.model, "--data", data, "--out", out, "--trials", "1000",
           "--budget-cpu", str(args.budget), "--sampler", sampler, "--prune", pruner, "--search-seed", str(seed),
           "--grid-points", str(args.grid_points), "--epochs", str(args.epochs), "--optimizer", "momentum",
           "--batch-size", "64", "--set", "early_stopping=None", "--only-space", *SPACE]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{arm} seed {seed} failed: {proc.stderr.strip()[-500:]}")
    return out, time.time() - t0


def _report_class():
    import keras

    class Report(keras.callbacks.Callback):
        """Each epoch's dev accuracy to the trial; stops training when the pruner says so."""

        def __init__(self, trial):
            super().__init__()
            self.trial, self.acc, self.pruned = trial, 0.0, False

        def on_epoch_end(self, epoch, logs=None):
            self.acc = float(logs["val_accuracy"])
            self.trial.report(self.acc, epoch + 1)
            if self.trial.should_prune():
                self.pruned, self.model.stop_training = True, True

    return Report


def inprocess_arm(arm, seed, args, data, checkpoints):
    """The same space, sampler and pruner (zoo.search's) with each trial trained in this process by Keras:
    no per-trial process start-up, so the budget goes to training. CPU-seconds from `time.process_time()`."""
    import keras
    import optuna

    from zoo import registry, search

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    Report = _report_class()
    d = np.load(data)
    space = search.parse_spaces(SPACE[1::2])
    sampler_name, pruner_name = ARMS[arm]
    study = optuna.create_study(direction="maximize", pruner=search.make_pruner(pruner_name, args.epochs),
                                sampler=search.make_sampler(sampler_name, space, seed, args.grid_points))
    spent, best, best_weights, points = 0.0, -1.0, None, []
    while spent < args.budget and not (sampler_name == "grid" and study.sampler.is_exhausted(study)):
        t0 = time.process_time()
        trial = study.ask()
        values = search.suggest(trial, space)
        keras.utils.set_random_seed(seed * 1000 + trial.number)
        model = registry.create_model(args.model, input_shape=(8, 8, 1), classes=10)
        model.compile(keras.optimizers.SGD(values["lr"], momentum=values["momentum"]),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        report = Report(trial)
        model.fit(d["x_train"], d["y_train"], batch_size=64, epochs=args.epochs, verbose=0, callbacks=[report],
                  validation_data=(d["x_val"], d["y_val"]), validation_batch_size=512)
        acc, state = report.acc, optuna.trial.TrialState.PRUNED if report.pruned else optuna.trial.TrialState.COMPLETE
        study.tell(trial, acc if state == optuna.trial.TrialState.COMPLETE else None, state=state)
        if state == optuna.trial.TrialState.COMPLETE and acc > best:
            best, best_weights = acc, (model, model.get_weights())
        spent += time.process_time() - t0
        points.append((spent, max(best, 0.0)))
    at = [max([b for s, b in points if s <= c] or [0.0]) for c in checkpoints]
    model, weights = best_weights
    model.set_weights(weights)
    test = float(model.evaluate(d["x_test"], d["y_test"], verbose=0, batch_size=512)[1])
    states = [t.state.name for t in study.get_trials()]
    keras.backend.clear_session()
    return at, states.count("COMPLETE"), states.count("PRUNED"), spent, test


def curve(out, checkpoints):
    """Best dev accuracy after each checkpoint of cumulative trial CPU-seconds; trial counts; best's test."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="zoo-tune",
                              storage=JournalStorage(JournalFileBackend(os.path.join(out, "study.journal"))))
    spent, best, points = 0.0, 0.0, []
    for t in sorted(study.get_trials(), key=lambda t: t.number):
        spent += t.user_attrs.get("cpu_s", 0.0)
        if t.state.name == "COMPLETE":
            best = max(best, t.value)
        points.append((spent, best))
    at = [max([b for s, b in points if s <= c] or [0.0]) for c in checkpoints]
    states = [t.state.name for t in study.get_trials()]
    with open(os.path.join(out, "best.json")) as f:
        test = json.load(f)["test"].get("accuracy")
    return at, states.count("COMPLETE"), states.count("PRUNED"), spent, test


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="softmax_regression")
    parser.add_argument("--budget", type=float, default=240, help="CPU-seconds per arm and seed")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--grid-points", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--mode", choices=("inprocess", "zoo"), default="inprocess",
                        help="inprocess: trials trained by Keras in this process; zoo: `zoo tune` (a process per "
                             "trial, TensorFlow start-up included in each trial's CPU-seconds)")
    parser.add_argument("--root", default=os.path.join("/tmp", "zoo-tune-bench"))
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    os.makedirs(args.root, exist_ok=True)
    data = digits_npz(os.path.join(args.root, "digits.npz"))
    checkpoints = [args.budget * f for f in (0.25, 0.5, 0.75, 1.0)]
    results = {}
    for seed in args.seeds:  # seed-major: a cut-short run still has every arm
        for arm in args.arms:
            t0 = time.time()
            if args.mode == "inprocess":
                at, complete, pruned, spent, test = inprocess_arm(arm, seed, args, data, checkpoints)
            else:
                out = os.path.join(args.root, f"{arm}-{seed}")
                if os.path.isdir(out):
                    import shutil

                    shutil.rmtree(out)
                run_arm(arm, seed, args, data, args.root)
                at, complete, pruned, spent, test = curve(out, checkpoints)
            wall = time.time() - t0
            results.setdefault(arm, []).append({"seed": seed, "best_at": at, "complete": complete,
                                                "pruned": pruned, "cpu_s": spent, "wall_s": wall, "test": test})
            print(f"{arm} seed {seed}: best dev {' '.join(f'{a:.4f}' for a in at)} at {checkpoints} CPU-s; "
                  f"{complete} complete, {pruned} pruned, {spent:.0f} CPU-s, {wall:.0f} s wall; test {test}",
                  flush=True)
    cols = " | ".join(f"best dev @ {c:.0f} CPU-s" for c in checkpoints)
    print(f"\n| arm | {cols} | trials (complete + pruned) | test acc. of best |")
    print("|---|" + "---|" * (len(checkpoints) + 2))
    for arm, rows in results.items():
        at = np.array([r["best_at"] for r in rows])
        cells = " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in zip(at.mean(0), at.std(0, ddof=1) if len(rows) > 1
                                                                  else np.zeros(len(checkpoints))))
        trials = " ".join(f"{r['complete']}+{r['pruned']}" for r in rows)
        test = np.mean([r["test"] for r in rows if r["test"] is not None])
        print(f"| {arm} | {cells} | {trials} | {test:.4f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
