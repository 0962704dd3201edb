"""Precise BN or the moving averages, on the same weights: does `precise_bn_when="stale"` skip only harmless passes?

Each run trains with the pass forced (`precise_bn_when="always"`), keeps the weights from just before it, and
scores the test split twice: with Keras' moving averages (those weights, saved as a copy of the run) and with the
recomputed statistics (the run itself). It also prints what `zoo.training.precise_bn.staleness` decides for the
run (steps, final / peak rate, momentum), so a skipped pass can be checked against the accuracy it would have
changed. Tasks (real data, offline, and the built-in set):

- `digits`: scikit-learn's handwritten digits, all ten classes upscaled to 32x32 (`transfer.write_digits`),
  `zoo train resnet20` with its recipe (the CIFAR one: SGD 0.1, drops at 50% / 75% of the run, 182 epochs).
- `demo`: `zoo demo`'s run (ResNet-20 on the built-in `shapes`, Adam 2e-3 cosine, 10 epochs).
- `digits-short`: the digits with the recipe cut to `--epochs` (default 3): the pass should run there.

    .venv/bin/python benchmarks/precise_bn.py --task demo --seeds 0,1,2 --work /tmp/pbn
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one(task, seed, work, epochs):
    """`dict` of one run: the staleness inputs and decision, and test accuracy with each statistic."""
    import keras  # noqa: PLC0415

    from benchmarks.transfer import write_digits  # noqa: PLC0415
    from zoo.cli.train import DEMO_KWARGS, DEMO_SETTINGS  # noqa: PLC0415
    from zoo.training import loop, precise_bn  # noqa: PLC0415

    seen, recalibrate = {}, precise_bn.recalibrate

    def spy(model, dataset, examples):  # the weights and optimizer state just before the pass
        seen.update(weights=[w.copy() for w in model.get_weights()], steps=int(model.optimizer.iterations.numpy()),
                    final_lr=float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        return recalibrate(model, dataset, examples)

    precise_bn.recalibrate = spy
    out = os.path.join(work, f"{task}-{seed}")
    shutil.rmtree(out, ignore_errors=True)
    if task == "demo":
        run = loop.train("resnet20", "shapes/classification", out=out, model_kwargs=DEMO_KWARGS, seed=seed,
                         verbose=0, precise_bn_when="always", **DEMO_SETTINGS)
    else:
        data = os.path.join(work, "digits10.npz")
        if not os.path.exists(data):
            write_digits(data, list(range(10)), size=32)
        short = {"epochs": epochs} if task == "digits-short" else {}
        run = loop.train("resnet20", data, out=out, seed=seed, verbose=0, precise_bn_when="always", **short)
    precise_bn.recalibrate = recalibrate
    peak = float(run.config["recipe"]["lr"])
    decision = precise_bn.staleness(run.model, steps=seen["steps"], final_lr=seen["final_lr"], peak_lr=peak)
    moving_run = out + "-moving"  # the same run with the weights from before the pass
    shutil.rmtree(moving_run, ignore_errors=True)
    shutil.copytree(out, moving_run)
    run.model.set_weights(seen["weights"])
    run.model.save(os.path.join(moving_run, "model.keras"))
    return {"task": task, "seed": seed, "steps": seen["steps"], "final_over_peak_lr": seen["final_lr"] / peak,
            "skipped_by_stale_rule": decision is None, "why": decision,
            "test_moving_averages": loop.evaluate(moving_run, split="test")["accuracy"],
            "test_precise_bn": run.metrics["test"]["accuracy"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("digits", "demo", "digits-short"), default="demo")
    p.add_argument("--seeds", default="0", help="comma-separated")
    p.add_argument("--epochs", type=int, default=3, help="digits-short's length")
    p.add_argument("--work", default="/tmp/zoo-precise-bn")
    args = p.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        print(json.dumps(one(args.task, seed, args.work, args.epochs)), flush=True)


if __name__ == "__main__":
    main()
