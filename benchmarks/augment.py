"""Augmentation throughput: the pipeline's backends against the usual recipes, as ratios from one run.

Workload (issue 4): flip + crop + color + distort, 128x128 -> 112x112, batch 64, uint8 RGB in memory.

- `pipeline (default)`: `pipelines.build(..., backend="auto")` (picks from `measured.json`).
- `pipeline tf` / `pipeline albumentations`: each backend forced.
- `albumentations numpy_function`: the usual hand-written recipe, one A.Compose (built once, the same
  transforms) called per image through `tf.numpy_function` in a parallel map, then batch.
- `keras layers per batch`: RandomFlip, RandomCrop, RandomColorJitter, RandomPerspective applied to
  each batch inside `tf.data`.

Every pipeline is measured in interleaved rounds and the best round counts (the machine is shared).
`--write` also measures the CPU cost of each transform alone per backend and writes
`pipelines/augment/measured.json`,
the table `backend="auto"` chooses from. `--train` reports the fraction of step time a small zoo
model (lenet5) spends waiting for input.

    python benchmarks/augment.py [--rounds 3] [--batches 20] [--write] [--train]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import pipelines  # noqa: E402
from pipelines.augment import NAMES, Policy, albu  # noqa: E402

AUG = ("flip", "crop", "color", "distort")
IN, OUT, BATCH = 128, 112, 64
AUTOTUNE = tf.data.AUTOTUNE


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, IN, IN, 3), dtype=np.uint8)
    return x, (np.arange(n) % 10).astype(np.int64)


def pipeline(x, y, backend, names=AUG):
    return pipelines.build((x, y), image_size=OUT, batch_size=BATCH, augment=names, backend=backend, seed=0,
                           val_split=0.0).repeat()


def usual_albumentations(x, y, names=AUG):
    """As users write it by hand: one `A.Compose` built once, called per image (unseeded)."""
    aug = albu.compose(Policy(names=names), (OUT, OUT))

    def one(img):
        return aug(image=img)["image"]

    def fn(img, label):
        out = tf.numpy_function(one, [img], tf.uint8)
        return tf.cast(tf.ensure_shape(out, [OUT, OUT, 3]), tf.float32) / 255.0, label

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x)).repeat()
    return ds.map(fn, num_parallel_calls=AUTOTUNE).batch(BATCH).prefetch(AUTOTUNE)


def keras_layers(x, y):
    import keras

    p = Policy(names=AUG)
    aug = keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=0),
        keras.layers.RandomCrop(OUT, OUT, seed=0),
        keras.layers.RandomColorJitter(value_range=(0, 255), brightness_factor=p.brightness, contrast_factor=p.contrast,
                                       saturation_factor=p.saturation, hue_factor=p.hue, seed=0),
        keras.layers.RandomPerspective(factor=1.0, scale=p.distort, seed=0),
    ])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x)).repeat().batch(BATCH)
    ds = ds.map(lambda a, b: (aug(tf.cast(a, tf.float32), training=True) / 255.0, b), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def images_per_s(ds, batches, warmup=4, cpu=False):
    """Images per wall-clock second (or, with `cpu=True`, per CPU-second of this process)."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start, cpu0, n = time.perf_counter(), time.process_time(), 0
    for _ in range(batches):
        xb, _ = next(it)
        n += int(xb.shape[0])
    wall, used = time.perf_counter() - start, time.process_time() - cpu0
    return (n / wall, n / used) if cpu else n / wall


def compare(x, y, rounds, batches, only=None):
    makers = {
        "pipeline (default: auto)": lambda: pipeline(x, y, "auto"),
        "pipeline tf": lambda: pipeline(x, y, "tf"),
        "pipeline albumentations": lambda: pipeline(x, y, "albumentations"),
        "albumentations numpy_function (usual recipe)": lambda: usual_albumentations(x, y),
        "keras layers per batch": lambda: keras_layers(x, y),
    }
    if only:  # substrings of arm names; the two reference arms always run (the ratios need them)
        keep = [w.strip() for w in only.split(",")] + ["usual recipe", "keras layers"]
        makers = {k: m for k, m in makers.items() if any(w in k for w in keep)}
    datasets = {k: m() for k, m in makers.items()}
    best = {k: (0.0, 0.0) for k in makers}
    for _ in range(rounds):
        for k, ds in datasets.items():
            wall, cpu = images_per_s(ds, batches, cpu=True)
            best[k] = (max(best[k][0], wall), max(best[k][1], cpu))
    return best


def per_transform(x, y, rounds, batches):
    """CPU us per image of each transform alone (minus the no-augmentation base) per backend."""
    table = {}
    for backend in ("tf", "albumentations"):
        for names in [()] + [(n,) for n in NAMES]:
            ds = pipeline(x, y, backend, names) if names else None
            if not names:  # base: the backend's own path with no transform but the resize
                ds = (pipelines.build((x, y), image_size=OUT, batch_size=BATCH, seed=0, val_split=0.0).repeat()
                      if backend == "tf" else usual_albumentations(x, y, names=()))
            # CPU time, not wall time: robust to other load on a shared machine, and what two busy cores divide.
            rate = max(images_per_s(ds, batches, cpu=True)[1] for _ in range(rounds))
            table.setdefault(names[0] if names else "base", {})[backend] = 1e6 / rate
    for n in NAMES:
        for b in ("tf", "albumentations"):
            table[n][b] = round(max(0.0, table[n][b] - table["base"][b]), 1)
    for b in ("tf", "albumentations"):
        table["base"][b] = round(table["base"][b], 1)
    return table


def input_wait(x, y, steps=40):
    """Fraction of lenet5 train-step time spent waiting for the augmented input."""
    import keras

    import zoo

    model = zoo.create_model("lenet5", input_shape=(OUT, OUT, 3), classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    it = iter(pipeline(x, y, "auto"))
    for _ in range(3):
        model.train_on_batch(*next(it))
    waited = total = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        xb, yb = next(it)
        t1 = time.perf_counter()
        model.train_on_batch(xb, yb)
        t2 = time.perf_counter()
        waited += t1 - t0
        total += t2 - t0
    del keras
    return waited / total, steps * BATCH / total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--write", action="store_true", help="measure per-transform costs into measured.json")
    ap.add_argument("--train", action="store_true", help="report lenet5's input-wait fraction")
    ap.add_argument("--arms", default=None, help="comma-separated substrings of the pipeline arms to run")
    args = ap.parse_args(argv)
    x, y = data(args.images)
    machine = f"{os.cpu_count()}-core CPU, {platform.machine()}, TF {tf.__version__}"
    if args.write:
        table = per_transform(x, y, max(1, args.rounds - 1), args.batches // 2 or 1)
        path = os.path.join(os.path.dirname(pipelines.augment.__file__), "measured.json")
        with open(path, "w") as f:
            json.dump({"note": f"benchmarks/augment.py --write; {machine}; {IN}->{OUT}, batch {BATCH}",
                       "us_per_image": table}, f, indent=2)
            f.write("\n")
        print("per-transform us/image:", json.dumps(table))
    best = compare(x, y, args.rounds, args.batches, args.arms)
    base_a = best["albumentations numpy_function (usual recipe)"]
    base_k = best["keras layers per batch"]
    print(f"\n{machine}; flip+crop+color+distort {IN}x{IN} -> {OUT}x{OUT}, batch {BATCH}; best of {args.rounds} rounds\n")
    print("| pipeline | images/s | vs albumentations numpy_function | vs keras layers | images per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for k, (v, c) in best.items():
        print(f"| {k} | {v:,.0f} | {v / base_a[0]:.2f}x | {v / base_k[0]:.2f}x | {c:,.0f} |")
    if args.train:
        frac, rate = input_wait(x, y)
        print(f"\nlenet5 ({OUT}x{OUT}x3) training on the default augmented pipeline: "
              f"{100 * frac:.1f}% of step time waiting for input ({rate:,.0f} images/s end to end)")


if __name__ == "__main__":
    main()
