"""Benchmark: `zoo train resnet20` against a plain Keras float32 ResNet-20 script and PyTorch, whole processes.

Every side trains `--epochs` (3) epochs on the same 4,096 CIFAR-shaped images (a .npz written here),
batch 128, flip + 4-pixel pad-and-crop augmentation, SGD with momentum, then evaluates on the test split.
Each side runs as a separate process (imports, data, training, evaluation and, for the zoo,
its run directory, reports and plots included), in turn for `--rounds` rounds; the ratio of the
median wall times is the zoo's speed-up. CPU-seconds (user + system of each process) are reported
too: on a shared machine they move less than wall times. "Steady epoch s" is the median time of the epochs after
the first, from each side's own "epoch k/n - S.Ss" lines (the zoo's include its backups; no side evaluates a
dev split between epochs).

The PyTorch side is the same ResNet-20 (option-A shortcuts, BatchNorm momentum 0.1 = Keras' 0.9),
channels_last, bf16 autocast where the CPU has bf16 units and float32 elsewhere (`--torch-precision auto`, the
rule `zoo train --precision auto` uses; bf16 autocast on a CPU without them is emulated and ~4x slower), SGD (momentum 0.9, weight decay 1e-4), flip + pad-crop on each batch.
It runs when torch is installed (`pip install .[bench-torch]`, the CPU build) and is skipped otherwise.

    .venv/bin/python benchmarks/train_resnet20.py --rounds 2 --markdown
    .venv/bin/python benchmarks/train_resnet20.py --rounds 1 --epochs 12 --sides zoo,torch

`--side baseline` / `--side torch` runs only that script (what each of its processes executes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
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


def baseline(data_path, epochs=EPOCHS):
    """The plain Keras script: float32, tf.data augmentation per example, model.fit.

    BatchNormalization momentum 0.9 as in the zoo's CIFAR ResNets, so that both sides evaluate sensibly
    after 96 steps (Keras' default 0.99 leaves stale moving statistics; it does not change the speed).
    """
    import keras
    import numpy as np
    import tensorflow as tf

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
    class EpochTime(keras.callbacks.Callback):  # the same "epoch k/n - S.Ss" line as the other two sides
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch + 1}/{epochs} - {time.perf_counter() - self.start:.2f}s", flush=True)

    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0, callbacks=[EpochTime()])
    fit_s = time.perf_counter() - start
    result = model.evaluate(test, return_dict=True, verbose=0)
    print(json.dumps({"fit_s": fit_s, "params": model.count_params(), "test_accuracy": result["accuracy"]}))


def torch_side(data_path, epochs=EPOCHS, precision="bf16"):
    """The PyTorch script: ResNet-20, channels_last, bf16 autocast (or float32), SGD, flip + pad-crop per batch."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    bf16 = precision == "bf16"
    d = np.load(data_path)
    x_train, x_test = d["x_train"].astype("float32") / 255.0, d["x_test"].astype("float32") / 255.0
    mean, std = x_train.mean((0, 1, 2)), x_train.std((0, 1, 2))
    to_tensor = lambda x: torch.from_numpy(((x - mean) / std).transpose(0, 3, 1, 2).copy())  # noqa: E731
    x_train, x_test = to_tensor(x_train), to_tensor(x_test)
    y_train, y_test = torch.from_numpy(d["y_train"]), torch.from_numpy(d["y_test"])

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = (cout - cin) // 2 if stride != 1 else 0

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
            return F.relu(shortcut + y)

    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for i, cout in enumerate((16, 32, 64)):
        for j in range(3):
            layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1))
            cin = cout
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def augment(x):
        flip = torch.rand(x.shape[0]) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        padded = F.pad(x, (4, 4, 4, 4))
        offsets = torch.randint(0, 9, (x.shape[0], 2))
        return torch.stack([p[:, i:i + 32, j:j + 32] for p, (i, j) in zip(padded, offsets.tolist())])

    start = time.perf_counter()
    for epoch in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        order, seen, loss_sum = torch.randperm(len(x_train)), 0, 0.0
        for k in range(0, len(order), BATCH):
            idx = order[k:k + BATCH]
            x = augment(x_train[idx]).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen, loss_sum = seen + len(idx), loss_sum + float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs} - {time.perf_counter() - epoch_start:.2f}s - loss {loss_sum / seen:.4f}",
              flush=True)
    fit_s = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for k in range(0, len(x_test), BATCH):
            x = x_test[k:k + BATCH].contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1) == y_test[k:k + BATCH]).sum())
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"fit_s": fit_s, "params": params, "test_accuracy": correct / len(x_test),
                      "torch": torch.__version__, "precision": precision}))


EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+ - ([\d.]+)s", re.MULTILINE)


def steady_epoch_s(stdout):
    """Median seconds of the epochs after the first (tracing and warm-up excluded); None with one epoch."""
    times = [float(t) for k, t in EPOCH_LINE.findall(stdout) if int(k) > 1]
    return statistics.median(times) if times else None


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


SIDES = ("zoo", "baseline", "torch")
LABELS = {"zoo": "zoo train resnet20", "baseline": "plain Keras float32", "torch": "PyTorch (channels_last)"}


def torch_precision(value):
    """`auto` -> what `zoo train --precision auto` picks on this machine (bf16 only where the CPU has bf16 units)."""
    if value != "auto":
        return value
    from zoo.training.policy import resolve_precision  # noqa: PLC0415  (the driver's import; not timed)

    return "bf16" if resolve_precision("auto") == "mixed_bfloat16" else "float32"


def _run_side(side, data, out, epochs, env, torch_prec="bf16"):
    """`(wall s, CPU s, test accuracy, details)` of one whole process of `side`."""
    if side == "zoo":
        zoo_bin = os.path.join(os.path.dirname(sys.executable), "zoo")
        wall, cpu_s, stdout = timed([zoo_bin, "train", "resnet20", "--data", data, "--epochs", str(epochs),
                                     "--batch-size", str(BATCH), "--augment", "flip,pad_crop", "--set",
                                     "val_split=0.0", "--out", out], env)
        with open(os.path.join(out, "metrics.json")) as f:
            accuracy = json.load(f)["test"]["accuracy"]
        with open(os.path.join(out, "config.json")) as f:
            return wall, cpu_s, accuracy, {"precision": json.load(f)["precision"], "epoch_s": steady_epoch_s(stdout)}
    wall, cpu_s, stdout = timed([sys.executable, os.path.abspath(__file__), "--side", side, "--data", data,
                                 "--epochs", str(epochs), "--torch-precision", torch_prec], env)
    details = {**json.loads(stdout.strip().splitlines()[-1]), "epoch_s": steady_epoch_s(stdout)}
    return wall, cpu_s, details["test_accuracy"], details


def _markdown(result, epochs) -> str:
    med = {side: statistics.median(result[f"{side}_s"]) for side in result["sides"]}
    cpu = {side: statistics.median(result[f"{side}_cpu_s"]) for side in result["sides"]}
    lines = ["| side | median wall s (whole process) | CPU-s | images/s | steady epoch s | test acc per round |",
             "|---|---:|---:|---:|---:|---:|"]
    for side in result["sides"]:
        label = LABELS[side] + {"zoo": f" ({result.get('zoo_precision')})",
                                "torch": f" ({result.get('torch_precision')})"}.get(side, "")
        accs = " / ".join(f"{a:.3f}" for a in result[f"{side}_test_accuracy"])
        epoch_s = [e for e in result[f"{side}_epoch_s"] if e is not None]
        steady = f"{statistics.median(epoch_s):.2f}" if epoch_s else "-"
        lines.append(f"| {label} | {med[side]:.1f} | {cpu[side]:.0f} | {N_TRAIN * epochs / med[side]:.0f} | {steady} "
                     f"| {accs} |")
    ratios = [f"zoo vs {LABELS[side]}: **{med[side] / med['zoo']:.2f}x** wall, {cpu[side] / cpu['zoo']:.2f}x CPU-s"
              for side in result["sides"] if side != "zoo" and "zoo" in med]
    return "\n".join(lines) + "\n\n" + f"{epochs} epochs; " + "; ".join(ratios)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated: zoo, baseline, torch")
    parser.add_argument("--side", choices=("all", "baseline", "torch"), default="all",
                        help="run one script in this process (what each baseline / torch process executes)")
    parser.add_argument("--data")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--torch-precision", choices=("auto", "bf16", "float32"), default="auto",
                        help="PyTorch side: bf16 autocast or float32 (auto: bf16 where zoo's auto picks bf16)")
    args = parser.parse_args(argv)
    if args.side == "baseline":
        return baseline(args.data, args.epochs)
    if args.side == "torch":
        return torch_side(args.data, args.epochs, torch_precision(args.torch_precision))

    sides = [side for side in args.sides.split(",") if side]
    if "torch" in sides and importlib.util.find_spec("torch") is None:
        print("PyTorch side skipped: torch is not installed (pip install .[bench-torch])", flush=True)
        sides.remove("torch")
    tmp = tempfile.mkdtemp(prefix="zoo-bench-")
    data = os.path.join(tmp, "cifar_shaped.npz")
    write_data(data)
    # captured before torch_precision() imports zoo, which sets TF_ENABLE_ONEDNN_OPTS in this process: the plain
    # Keras side runs with TensorFlow's own defaults, the zoo side sets its own
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    result = {"images": N_TRAIN * args.epochs, "epochs": args.epochs, "rounds": args.rounds, "sides": sides}
    for side in sides:
        result.update({f"{side}_s": [], f"{side}_cpu_s": [], f"{side}_test_accuracy": [], f"{side}_epoch_s": []})
    torch_prec = result["torch_precision"] = torch_precision(args.torch_precision)
    for r in range(args.rounds):
        line = []
        for side in sides:
            wall, cpu_s, accuracy, details = _run_side(side, data, os.path.join(tmp, f"run{r}"), args.epochs, env, torch_prec)
            result[f"{side}_s"].append(wall)
            result[f"{side}_cpu_s"].append(cpu_s)
            result[f"{side}_test_accuracy"].append(accuracy)
            result[f"{side}_epoch_s"].append(details["epoch_s"])
            if side == "zoo":
                result["zoo_precision"] = details["precision"]
            line.append(f"{side} {wall:.1f}s ({cpu_s:.0f} CPU-s, test accuracy {accuracy:.3f})")
        print(f"round {r + 1}: " + ", ".join(line), flush=True)
    for side in sides:
        if side != "zoo" and "zoo" in sides:
            result[f"speedup_vs_{side}"] = statistics.median(result[f"{side}_s"]) / statistics.median(result["zoo_s"])
            result[f"cpu_ratio_vs_{side}"] = (statistics.median(result[f"{side}_cpu_s"])
                                              / statistics.median(result["zoo_cpu_s"]))
    print(json.dumps(result, indent=2))
    if args.markdown:
        print(_markdown(result, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
