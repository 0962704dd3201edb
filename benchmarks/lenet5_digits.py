"""Validates the LeNet-5 recipe on real handwritten digits available offline.

MNIST cannot be downloaded here, so this trains `zoo.models.lenet.LENET5_RECIPE` on scikit-learn's bundled
UCI digits (1,797 8x8 scans of 43 writers, 16 grey levels), brought to MNIST's format: each digit scaled to a
20x20 box and centred in a 28x28 frame, pixels in [0, 1]. Training is plain `keras.Model.fit` with the
recipe's optimizer, batch size, epochs, piecewise learning rate and "crop" augmentation (random shifts of up
to `--shift` pixels: pad and crop back), holding out `val_split` of the training images as dev set.
The held-out test split is only evaluated once, at the end.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/lenet5_digits.py --seeds 0 1 2            # the recipe as is
    .venv/bin/python benchmarks/lenet5_digits.py --seeds 0 --scale 5      # 5x the passes, same schedule shape

This is a proxy: the digits are 8x8 originals upscaled, so they are blurrier and far fewer than MNIST's
60,000; the recipe's published target (0.95% MNIST test error) is not directly comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo.models.lenet import LENET5_RECIPE  # noqa: E402


def mnist_style_digits():
    """UCI digits as MNIST-style `(N, 28, 28, 1)` float32 images in [0, 1] and int labels."""
    from sklearn.datasets import load_digits  # noqa: PLC0415

    digits = load_digits()
    x = digits.images.astype("float32")[..., None] / 16.0
    x = tf.image.resize(x, (20, 20), method="bilinear").numpy()
    x = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    return np.clip(x, 0.0, 1.0), digits.target.astype("int32")


def split(x, y, test_fraction, seed):
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)


def piecewise(recipe):
    """The recipe's `piecewise` schedule by epoch: `values[i]` until epoch `boundaries_epochs[i]`."""
    bounds, values = recipe.schedule_args["boundaries_epochs"], recipe.schedule_args["values"]
    return lambda epoch: values[sum(epoch >= b for b in bounds)]


def train_once(x, y, *, seed, test_fraction, shift, recipe):
    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = split(x, y, test_fraction, seed)
    n_val = int(round(len(x_train) * recipe.val_split))
    x_val, y_val, x_fit, y_fit = x_train[:n_val], y_train[:n_val], x_train[n_val:], y_train[n_val:]

    def augment(image, label):
        if "crop" in recipe.augment and shift:
            image = tf.pad(image, [[shift, shift], [shift, shift], [0, 0]])
            image = tf.image.random_crop(image, (28, 28, 1))
        return image, label

    train = (
        tf.data.Dataset.from_tensor_slices((x_fit, y_fit))
        .shuffle(len(x_fit), seed=seed, reshuffle_each_iteration=True)
        .map(augment)
        .batch(recipe.batch_size)
    )
    model = zoo.lenet5()
    model.compile(
        optimizer=keras.optimizers.Adam(recipe.lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    start = time.time()
    history = model.fit(
        train, epochs=recipe.epochs, validation_data=(x_val, y_val), verbose=0, shuffle=False,
        callbacks=[keras.callbacks.LearningRateScheduler(piecewise(recipe))],
    )
    _, test_acc = model.evaluate(x_test, y_test, verbose=0)
    return {
        "seed": seed,
        "train_images": len(x_fit),
        "optimizer_steps": int(recipe.epochs * np.ceil(len(x_fit) / recipe.batch_size)),
        "val_images": n_val,
        "test_images": len(x_test),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
        "final_val_accuracy": float(history.history["val_accuracy"][-1]),
        "test_accuracy": float(test_acc),
        "train_seconds": round(time.time() - start, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--shift", type=int, default=2, help="max shift in pixels of the 'crop' augmentation")
    parser.add_argument("--no-augment", action="store_true", help="train without the recipe's augmentation")
    parser.add_argument(
        "--scale", type=int, default=1,
        help="multiply the recipe's epochs and lr boundaries (same schedule shape, K times more passes: the "
        "digits are ~50x fewer than MNIST's 60,000, so the recipe's 20 epochs are far fewer optimizer steps)",
    )
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)

    recipe = LENET5_RECIPE
    if args.no_augment:
        recipe = recipe.override(augment=())
    if args.scale != 1:
        args_ = dict(recipe.schedule_args)
        args_["boundaries_epochs"] = [b * args.scale for b in args_["boundaries_epochs"]]
        recipe = recipe.override(epochs=recipe.epochs * args.scale, schedule_args=args_)
    x, y = mnist_style_digits()
    runs = []
    for seed in args.seeds:
        r = train_once(x, y, seed=seed, test_fraction=args.test_fraction, shift=args.shift, recipe=recipe)
        runs.append(r)
        print(
            f"seed {r['seed']}: test accuracy {r['test_accuracy']:.4f} on {r['test_images']} images "
            f"(train {r['final_train_accuracy']:.4f}, val {r['final_val_accuracy']:.4f}, "
            f"{r['optimizer_steps']} steps, {r['train_seconds']} s)",
            flush=True,
        )
    accs = np.array([r["test_accuracy"] for r in runs])
    summary = {
        "dataset": "sklearn load_digits (UCI), 8x8 -> 20x20 centred in 28x28",
        "recipe": recipe.to_dict(),
        "runs": runs,
        "test_accuracy_mean": float(accs.mean()),
        "test_accuracy_std": float(accs.std()),
    }
    print(f"mean test accuracy {accs.mean():.4f} +- {accs.std():.4f} over {len(runs)} seeds")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
