"""Benchmark: `zoo train resnet20` against a plain Keras float32 ResNet-20 script, whole processes.

Both train 3 epochs on the same 4,096 CIFAR-shaped images (a .npz written here), batch 128,
flip + 4-pixel pad-and-crop augmentation, SGD with momentum, then evaluate on the test split.
Each side runs as a separate process (imports, data, training, evaluation and, for the zoo,
its run directory, reports and plots included), alternating zoo / baseline for `--rounds`
rounds; the ratio of the median wall times is the zoo's speed-up. CPU-seconds (user + system of each
process) are reported too: on a shared machine they move less than wall times.

    .venv/bin/python benchmarks/train_resnet20.py --rounds 2 --markdown

`--side baseline` runs only the plain script (what each baseline process executes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

N_TRAIN, N_TEST, EPOCHS, BATCH = 4096, 512, 3, 128
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_data(path, seed=0):
    """CIFAR-shaped uint8 images whose class sets the mean colour of a square, plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    y = rng.integers(0, 10, n).astype("int64")
    x = rng.integers(0, 256, (n, 32, 32, 3)).astype("float32") * 0.5
    palette = rng.integers(0, 256, (10, 3)).astype("float32")
    for i in range(n):
        top, left = rng.integers(0, 16, 2)
        x[i, top:top + 16, left:left + 16] = 0.5 * x[i, top:top + 16, left:left + 16] + 0.5 * palette[y[i]]
    x = x.clip(0, 255).astype("uint8")
    np.savez(path, x_train=x[:N_TRAIN], y_train=y[:N_TRAIN], x_test=x[N_TRAIN:], y_test=y[N_TRAIN:])


def baseline(data_path):
    """The plain Keras script: float32, tf.data augmentation per example, model.fit.

    BatchNormalization momentum 0.9 as in the zoo's CIFAR ResNets, so that both sides evaluate sensibly
    after 96 steps (Keras' default 0.99 leaves stale moving statistics; it does not change the speed).
    """
    import numpy as np
    import tensorflow as tf
    import keras

    keras.utils.set_random_seed(0)
    d = np.load(data_path)
    x_train, y_train = d["x_train"].astype("float32") / 255.0, d["y_train"]
    x_test, y_test = d["x_test"].astype("float32") / 255.0, d["y_test"]
    mean, std = x_train.mean((0, 1, 2)), x_train.std((0, 1, 2))
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    def augment(image, label):
        image = tf.image.random_flip_left_right(image)
        image = tf.image.pad_to_bounding_box(image, 4, 4, 40, 40)
        return tf.image.random_crop(image, (32, 32, 3)), label

    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(N_TRAIN)
             .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(tf.data.AUTOTUNE))
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(BATCH)

    def block(x, filters, strides):
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                                kernel_regularizer=keras.regularizers.L2(5e-5))(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(y))
        y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_regularizer=keras.regularizers.L2(5e-5))(y)
        y = keras.layers.BatchNormalization(momentum=0.9)(y)
        if strides != 1:  # option A: subsample and zero-pad the channels
            pad = (filters - x.shape[-1]) // 2
            shortcut = keras.layers.Lambda(
                lambda t: tf.pad(t[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [pad, pad]]))(x)
        return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(x))
    for i, filters in enumerate((16, 32, 64)):
        for j in range(3):
            x = block(x, filters, 2 if i > 0 and j == 0 else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(train, epochs=EPOCHS, verbose=2)
    fit_s = time.perf_counter() - start
    result = model.evaluate(test, return_dict=True, verbose=0)
    print(json.dumps({"fit_s": fit_s, "params": model.count_params(), "test_accuracy": result["accuracy"]}))


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, env):
    """`(wall seconds, CPU seconds, stdout)` of one whole process."""
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--side", choices=("both", "baseline"), default="both")
    parser.add_argument("--data")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.side == "baseline":
        return baseline(args.data)

    tmp = tempfile.mkdtemp(prefix="zoo-bench-")
    data = os.path.join(tmp, "cifar_shaped.npz")
    write_data(data)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    zoo_bin = os.path.join(os.path.dirname(sys.executable), "zoo")
    times = {"zoo": [], "baseline": []}
    cpu = {"zoo": [], "baseline": []}
    details = {"zoo_test_accuracy": [], "baseline_test_accuracy": []}
    for r in range(args.rounds):
        out = os.path.join(tmp, f"run{r}")
        wall, cpu_s, stdout = timed([zoo_bin, "train", "resnet20", "--data", data, "--epochs", str(EPOCHS),
                              "--batch-size", str(BATCH), "--augment", "flip,pad_crop", "--set", "val_split=0.0",
                              "--out", out], env)
        times["zoo"].append(wall)
        cpu["zoo"].append(cpu_s)
        with open(os.path.join(out, "metrics.json")) as f:
            details["zoo_test_accuracy"].append(json.load(f)["test"]["accuracy"])
        with open(os.path.join(out, "config.json")) as f:
            details["zoo_precision"] = json.load(f)["precision"]
        wall, cpu_s, stdout = timed([sys.executable, os.path.abspath(__file__), "--side", "baseline", "--data", data], env)
        times["baseline"].append(wall)
        cpu["baseline"].append(cpu_s)
        details["baseline"] = json.loads(stdout.strip().splitlines()[-1])
        details["baseline_test_accuracy"].append(details["baseline"]["test_accuracy"])
        print(f"round {r + 1}: zoo {times['zoo'][-1]:.1f}s ({cpu['zoo'][-1]:.0f} CPU-s, test accuracy "
              f"{details['zoo_test_accuracy'][-1]:.3f}), baseline {times['baseline'][-1]:.1f}s "
              f"({cpu['baseline'][-1]:.0f} CPU-s, test accuracy {details['baseline_test_accuracy'][-1]:.3f})",
              flush=True)
    zoo_s, base_s = statistics.median(times["zoo"]), statistics.median(times["baseline"])
    images = N_TRAIN * EPOCHS
    result = {
        "images": images, "rounds": args.rounds, "zoo_s": times["zoo"], "baseline_s": times["baseline"],
        "zoo_cpu_s": cpu["zoo"], "baseline_cpu_s": cpu["baseline"],
        "cpu_ratio": statistics.median(cpu["baseline"]) / statistics.median(cpu["zoo"]),
        "zoo_images_per_s": images / zoo_s, "baseline_images_per_s": images / base_s, "speedup": base_s / zoo_s,
        **details,
    }
    print(json.dumps(result, indent=2))
    if args.markdown:
        accs = {side: " / ".join(f"{a:.3f}" for a in details[f"{side}_test_accuracy"]) for side in times}
        print(f"| side | median wall s (whole process) | images/s | test acc per round |\n|---|---:|---:|---:|\n"
              f"| zoo train resnet20 ({details['zoo_precision']}) | {zoo_s:.1f} | {images / zoo_s:.0f} | "
              f"{accs['zoo']} |\n"
              f"| plain Keras float32 | {base_s:.1f} | {images / base_s:.0f} | {accs['baseline']} |\n\n"
              f"speed-up: **{base_s / zoo_s:.2f}x** wall "
              f"(CPU-seconds: zoo {statistics.median(cpu['zoo']):.0f}, baseline "
              f"{statistics.median(cpu['baseline']):.0f}, ratio {result['cpu_ratio']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
