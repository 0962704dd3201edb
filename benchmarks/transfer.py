"""Pre-train, then fine-tune with 30 (and 10) examples per class, against the same network trained from scratch.

Task A (pre-training): recognise `--a-classes` procedural glyph identities (`pipelines.shapes.render`, the
generator behind the built-in `shapes/glyphs` data), `--a-per-class` renderings each. Task B (the new task):
`--b-classes` *different* glyph identities with only `--b-per-class` training images each (plus a dev set for
early stopping and a larger test set). Every image is drawn with its own rotation, scale, shear, shift, stroke
width and colours, so B needs features that generalise across renderings; A teaches them.

Whole `zoo` processes, the same architecture (`--model`, default resnet20) and the same B data:

    zoo train MODEL --data A                       # pre-training, once
    zoo finetune RUN_A --data B                    # head on the frozen backbone, then fine-tune all of it
    zoo train MODEL --data B                       # from scratch, more epochs allowed, early stopping

and the test accuracies of the last two on B's held-out test split are compared, for each `--b-per-class`
size (the smaller sizes' training images are a subset of the larger ones'; dev and test are shared). Both B
arms use batch 32, `pad_crop` and the same precision (with `resnet20`'s recipe batch of 128, 300 images are 3
steps per epoch). Pre-training uses batch 32 as well: at batch 128 the 12-epoch run was still far from
converged (A test accuracy 0.485) and its features transferred poorly.

    .venv/bin/python benchmarks/transfer.py                  # ~30 min wall, ~900 CPU-s on a 2-core CPU
    .venv/bin/python benchmarks/transfer.py --quick          # a smoke run of the same steps
    .venv/bin/python benchmarks/transfer.py --append BENCHMARKS.md

`--defaults` (issue 19) compares the two B arms as a new user runs them, with no options at all:

    zoo finetune RUN_A --data B         vs         zoo train MODEL --data B

over several seeds (`--seeds 0,1,2`: each seed draws another sample of B's training images; dev and test stay
the same; both arms keep their own default training seed), on glyphs or on real handwritten digits
(`--task digits`: scikit-learn's bundled 8x8 digits upscaled to 28x28, pre-training on digits 0-4 with
`zoo train MODEL --data A` and its defaults, task B digits 5-9; offline). It reports each arm's mean test
accuracy and the standard error over seeds, and the margin (fine-tune minus scratch) the same way:

    .venv/bin/python benchmarks/transfer.py --defaults --task digits --model lenet5 --seeds 0,1,2
    .venv/bin/python benchmarks/transfer.py --defaults --task glyphs --model lenet5 --seeds 0,1,2 \
        --a-per-class 50

`--task shapes` does the same with the built-in `shapes` data resized to 32x32: pre-training on star / cross / ring,
task B circle / square / triangle (20 dev images per class from its validation split, all its test images).

`--arms finetune` runs the fine-tuning arm only (a change to `zoo finetune` leaves the scratch arm as it was); each
arm's dev accuracy is printed with its test accuracy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SIZE = 32
B_FIRST_ID = 10_000  # task B's identities never overlap task A's (A uses 0 .. a_classes - 1)


def write_glyphs(root, first_id, n_ids, counts, seed=7, sample=0, gray=False):
    """An image folder `root/<split>/g<id>/<k>.png` with `counts[split]` renderings per identity.

    `seed` fixes the identities (their strokes); `sample` > 0 draws other renderings of the same identities;
    `gray` writes single-channel images.
    """
    from PIL import Image  # noqa: PLC0415

    from pipelines.shapes import render  # noqa: PLC0415

    split_ids = {"train": 0, "val": 1, "test": 2}
    for split, n in counts.items():
        for j in range(n_ids):
            ident = first_id + j
            strokes = render.glyph_strokes(np.random.default_rng([seed, 99, ident]))
            folder = os.path.join(root, split, f"g{ident:05d}")
            os.makedirs(folder, exist_ok=True)
            for k in range(n):
                rng = np.random.default_rng([seed, split_ids[split], ident, k] + ([sample] if sample else []))
                img = render.glyph_image(rng, strokes, SIZE)
                Image.fromarray(img.mean(-1).astype("uint8") if gray else img).save(os.path.join(folder, f"{k}.png"))


def write_digits(path, digits, *, per_class=None, dev=20, test_share=None, seed=0, size=28):
    """scikit-learn's bundled handwritten digits (8x8, 0-16) of `digits`, upscaled to `size`, as a `.npz`.

    Labels are renumbered 0..len(digits)-1. Each class is shuffled with `seed`, then cut into `dev` dev images,
    a test set of everything from index `dev + 100` on (the same images for every seed and size up to 100),
    and the first `per_class` of the rest for training (all of them when None). With `per_class=None` the
    set is the pre-training set: 80% train, 20% test, no dev split (zoo carves one).
    """
    from PIL import Image  # noqa: PLC0415
    from sklearn.datasets import load_digits  # noqa: PLC0415

    data = load_digits()
    up = lambda im: np.asarray(Image.fromarray((im * 255 / 16).astype("uint8")).resize((size, size),  # noqa: E731
                                                                                        Image.BILINEAR))
    parts = {k: ([], []) for k in ("train", "val", "test")}
    for label, digit in enumerate(digits):
        idx = np.flatnonzero(data.target == digit)
        if per_class is None:
            idx = np.random.default_rng([0, digit]).permutation(idx)
            cut = int(0.8 * len(idx))
            cuts = {"train": idx[:cut], "test": idx[cut:]}
        else:
            fixed = np.random.default_rng([0, digit]).permutation(idx)  # dev and test: the same for every seed
            pool = np.random.default_rng([seed, digit]).permutation(fixed[dev:dev + 100])
            cuts = {"train": pool[:per_class], "val": fixed[:dev], "test": fixed[dev + 100:]}
        for split, chosen in cuts.items():
            parts[split][0].extend(up(data.images[i]) for i in chosen)
            parts[split][1].extend([label] * len(chosen))
    arrays = {}
    for split, (x, y) in parts.items():
        if x:
            arrays[f"x_{split}"] = np.stack(x)[..., None]
            arrays[f"y_{split}"] = np.asarray(y, dtype="int64")
    np.savez_compressed(path, **arrays)
    return path


SHAPES_A, SHAPES_B = ("star", "cross", "ring"), ("circle", "square", "triangle")


def write_shapes(path, names, *, per_class=None, dev=20, seed=0, size=32):
    """The built-in `shapes/classification` images of the classes `names`, resized to `size`, as a `.npz`.

    Labels are renumbered 0..len(names)-1. Without `per_class`: the pre-training set (the train and test splits).
    With it: `per_class` training images per class drawn with `seed`, the first `dev` validation images of each
    class as the dev split and all its test images (the same for every seed and size).
    """
    import tensorflow as tf  # noqa: PLC0415
    import tensorflow_datasets as tfds  # noqa: PLC0415

    from pipelines import shapes  # noqa: PLC0415
    from pipelines.shapes.render import SHAPES  # noqa: PLC0415

    builder, arrays = shapes.prepare("classification"), {}
    splits = {"train": "train", "test": "test"} if per_class is None else {"train": "train", "val": "validation",
                                                                             "test": "test"}
    for split, source in splits.items():
        examples = list(tfds.as_numpy(builder.as_dataset(split=source)))
        labels = np.asarray([ex["label"] for ex in examples])
        chosen, y = [], []
        for new, name in enumerate(names):
            idx = np.flatnonzero(labels == SHAPES.index(name))
            if split == "train" and per_class is not None:
                idx = np.random.default_rng([seed, SHAPES.index(name)]).permutation(idx)[:per_class]
            elif split == "val":
                idx = idx[:dev]
            chosen.extend(idx)
            y.extend([new] * len(idx))
        images = tf.image.resize(np.stack([examples[i]["image"] for i in chosen]), (size, size)).numpy()
        arrays[f"x_{split}"] = images.round().clip(0, 255).astype("uint8")
        arrays[f"y_{split}"] = np.asarray(y, dtype="int64")
    np.savez(path, **arrays)
    return path


def _child_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def zoo_cmd(*args, log):
    """Runs `zoo ARGS` as its own process; returns its (wall, CPU) seconds."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "zoo"), *map(str, args)]
    print("$ zoo " + " ".join(map(str, args)), flush=True)
    start, cpu = time.perf_counter(), _child_cpu()
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "ZOO_QUIET": "1"})
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"zoo {' '.join(map(str, args))} failed ({proc.returncode}):\n{tail}")
    return round(time.perf_counter() - start, 1), round(_child_cpu() - cpu, 1)


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def sizes(text):
    """`--b-per-class 30,10` -> [30, 10]."""
    values = [int(v) for v in str(text).split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 30 or 30,10. Received: {text!r}")
    return values


def _mean_se(values):
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def _prepare_defaults(args, work, log, seconds):
    """Task A written and pre-trained with `zoo train MODEL --data A` and its defaults; returns (run_a, A acc, make_b)."""
    data_a, run_a = os.path.join(work, "A"), args.pretrained or os.path.join(work, "pretrain")
    if not args.pretrained:
        shutil.rmtree(run_a, ignore_errors=True)
    if args.task in ("digits", "shapes"):
        write, a_classes, b_classes = ((write_digits, list(range(5)), list(range(5, 10))) if args.task == "digits"
                                       else (write_shapes, SHAPES_A, SHAPES_B))
        if not args.pretrained:
            write(data_a + ".npz", a_classes)
            seconds["pretrain"] = zoo_cmd("train", args.model, "--data", data_a + ".npz", "--out", run_a, log=log)

        def make_b(n, seed):
            return write(os.path.join(work, f"B{n}-s{seed}.npz"), b_classes, per_class=n, dev=args.b_dev or 20,
                         seed=seed)
    elif not args.pretrained:
        shutil.rmtree(data_a, ignore_errors=True)
        write_glyphs(data_a, 0, args.a_classes, {"train": args.a_per_class, "test": max(args.a_per_class // 5, 2)},
                     gray=args.gray)
        seconds["pretrain"] = zoo_cmd("train", args.model, "--data", data_a, "--out", run_a, log=log)
    if args.task == "glyphs":

        def make_b(n, seed):
            root = os.path.join(work, f"B{n}-s{seed}")
            shutil.rmtree(root, ignore_errors=True)
            write_glyphs(root, B_FIRST_ID, args.b_classes, {"val": args.b_dev or 10, "test": args.b_test},
                         gray=args.gray)
            write_glyphs(root, B_FIRST_ID, args.b_classes, {"train": n}, sample=seed, gray=args.gray)
            return root
    return run_a, metrics(run_a)["test"]["accuracy"], make_b


def run_defaults(args, work, log):
    """`zoo finetune RUN_A --data B` against `zoo train MODEL --data B`, no options, per size and seed."""
    seconds, rows = {}, {}
    run_a, acc_a, make_b = _prepare_defaults(args, work, log, seconds)
    arms = [a for a in ("finetune", "scratch") if a in args.arms]
    for n in args.b_per_class:
        rows[n] = {"scratch": [], "finetune": [], "head_only": [], "plan": [], "dev": []}
        for seed in args.seeds:
            data_b = make_b(n, seed)
            runs = {k: os.path.join(work, f"{k}{n}-s{seed}") for k in arms}
            for path in runs.values():
                shutil.rmtree(path, ignore_errors=True)
            if "finetune" in runs:
                seconds[f"finetune{n}-s{seed}"] = zoo_cmd("finetune", run_a, "--data", data_b, "--out",
                                                          runs["finetune"], log=log)
            if "scratch" in runs:
                seconds[f"scratch{n}-s{seed}"] = zoo_cmd("train", args.model, "--data", data_b, "--out",
                                                         runs["scratch"], log=log)
            _record(rows[n], runs)
            print(json.dumps({"n": n, "seed": seed, **{k: v[-1] for k, v in rows[n].items() if v}}), flush=True)
        rows[n]["margin"] = [f - s for f, s in zip(rows[n]["finetune"], rows[n]["scratch"])]
    return {"task": args.task, "pretrain_test_accuracy_A": acc_a, "B": rows, "seconds_wall_cpu": seconds}


def _record(row, runs):
    """Appends each arm's test accuracy (and dev accuracies, the fine-tuning plan) of one B sample to `row`."""
    scores = {arm: metrics(path) for arm, path in runs.items()}
    for arm, m in scores.items():
        row[arm].append(m["test"]["accuracy"])
    row["dev"].append({arm: m.get("val", {}).get("accuracy") for arm, m in scores.items()})
    if "finetune" in runs:
        with open(os.path.join(runs["finetune"], "config.json")) as f:
            ft = json.load(f)["finetune"]
        head = [p["metrics"]["test"]["accuracy"] for p in ft["phases"] if p["dir"] == "phase1-head"]
        row["head_only"].append(head[0] if head else None)  # None: phase 1 skipped (imprinted head)
        row["plan"].append(ft.get("plan"))


def report_defaults(args, result, argv):
    """The `--defaults` result as a Markdown table (mean and standard error over seeds)."""
    def cell(n, k):
        values = [v for v in result["B"][n][k] if v is not None]
        return "{:.3f} ± {:.3f}".format(*_mean_se(values)) if values else "skipped" if k == "head_only" else "-"

    lines = [f"| {n} | {cell(n, 'scratch')} | {cell(n, 'head_only')} | {cell(n, 'finetune')} | "
             f"{cell(n, 'margin')} | {_above(result['B'][n]['margin'], len(args.seeds))} |"
             for n in args.b_per_class]
    cpu = sum(c for _, c in result["seconds_wall_cpu"].values())
    return (f"\n{datetime.date.today().isoformat()}, `{args.model}` on {args.task}, seeds {args.seeds}, "
            f"A test accuracy {result['pretrain_test_accuracy_A']:.3f}; CPU {cpu:.0f} s (whole `zoo` processes). "
            f"Command: `.venv/bin/python benchmarks/transfer.py {' '.join(argv if argv is not None else sys.argv[1:])}`."
            "\n\n| B train images / class | `zoo train` (scratch) | finetune phase 1 only | `zoo finetune` | "
            "margin | seeds with margin > 5 points |\n|---:|---:|---:|---:|---:|---:|\n" + "\n".join(lines) + "\n")


def _above(margins, seeds):
    return f"{sum(m > 0.05 for m in margins)}/{seeds}" if margins else "-"


def arm_list(text):
    arms = text.split(",")
    if any(a not in ("finetune", "scratch") for a in arms):
        raise argparse.ArgumentTypeError(f"--arms {text!r}: a comma-separated list of finetune and scratch")
    return arms


def sizes_or_zero(text):
    """`--seeds 0,1,2` -> [0, 1, 2]."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0 like 0,1,2. Received: {text!r}")
    return values


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--a-classes", type=int, default=40)
    p.add_argument("--a-per-class", type=int, default=100)
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--pretrain-batch", type=int, default=32)
    p.add_argument("--pretrain-lr", type=float, default=2e-3)
    p.add_argument("--b-classes", type=int, default=10)
    p.add_argument("--b-per-class", type=sizes, default=[30, 10],
                   help="training images per class of task B; a list (30,10) runs each size on the same backbone")
    p.add_argument("--b-dev", type=int, help="dev images per class of task B (early stopping; 10, digits 20)")
    p.add_argument("--b-test", type=int, default=50, help="test images per class of task B")
    p.add_argument("--head-epochs", type=int, default=8)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--scratch-epochs", type=int, default=40)
    p.add_argument("--unfreeze", default="all")
    p.add_argument("--precision", default="auto", help="for both task-B arms (auto: resolved once, see zoo train)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="working folder (default: a temporary one, removed afterwards)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the steps, not the claim")
    p.add_argument("--defaults", action="store_true",
                   help="pass no options to either task-B arm (zoo finetune RUN_A --data B vs zoo train MODEL --data B)")
    p.add_argument("--task", choices=("glyphs", "digits", "shapes"), default="glyphs",
                   help="--defaults: glyph identities, scikit-learn's digits (0-4 -> 5-9) or the built-in shapes "
                        "(star, cross, ring -> circle, square, triangle)")
    p.add_argument("--gray", action="store_true", help="--defaults: grayscale glyphs")
    p.add_argument("--pretrained", help="--defaults: reuse this task-A run directory instead of pre-training")
    p.add_argument("--arms", type=arm_list, default=["finetune", "scratch"],
                   help="--defaults: the B arms to run, finetune,scratch (a fine-tuning change leaves scratch as it was)")
    p.add_argument("--seeds", type=sizes_or_zero, default=[0], help="--defaults: seeds of B's training sample")
    p.add_argument("--append", help="append the result as a Markdown section to this file")
    args = p.parse_args(argv)
    if not args.defaults:
        args.b_dev = args.b_dev or 10
    if args.quick:
        args.a_classes, args.a_per_class, args.b_classes, args.b_per_class = 6, 12, 3, [6]
        args.b_dev, args.b_test = 2, 4
        args.pretrain_epochs, args.head_epochs, args.finetune_epochs, args.scratch_epochs = 1, 1, 1, 2
    if args.defaults:
        work = args.work or tempfile.mkdtemp(prefix="zoo-transfer-")
        os.makedirs(work, exist_ok=True)
        result = run_defaults(args, work, os.path.join(work, "log.txt"))
        print(json.dumps(result, indent=2))
        text = report_defaults(args, result, argv)
        print(text)
        if args.append:
            with open(args.append, "a") as f:
                f.write(text)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        return result
    from zoo.training import policy  # noqa: PLC0415

    precision = policy.resolve_precision(args.precision)

    work = args.work or tempfile.mkdtemp(prefix="zoo-transfer-")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "log.txt")
    data_a, run_a = os.path.join(work, "A"), os.path.join(work, "pretrain")
    for path in (data_a, run_a):
        shutil.rmtree(path, ignore_errors=True)
    write_glyphs(data_a, 0, args.a_classes, {"train": args.a_per_class, "test": max(args.a_per_class // 5, 2)})
    seconds = {}
    seconds["pretrain"] = zoo_cmd(
        "train", args.model, "--data", data_a, "--out", run_a, "--epochs", args.pretrain_epochs,
        "--batch-size", args.pretrain_batch, "--lr", args.pretrain_lr, "--lr-schedule", "cosine",
        "--optimizer", "adam", "--augment", "pad_crop", "--seed", args.seed, log=log)
    result = {"pretrain_test_accuracy_A": metrics(run_a)["test"]["accuracy"], "precision_B": precision, "B": {}}

    for n in args.b_per_class:
        # Renderings are seeded per (identity, index): a smaller size's images are the first n of a larger one's,
        # and the dev and test images are the same for every size.
        data_b = os.path.join(work, f"B{n}")
        runs = {k: os.path.join(work, f"{k}{n}") for k in ("finetune", "scratch")}
        for path in (data_b, *runs.values()):
            shutil.rmtree(path, ignore_errors=True)
        write_glyphs(data_b, B_FIRST_ID, args.b_classes, {"train": n, "val": args.b_dev, "test": args.b_test})
        seconds[f"finetune{n}"] = zoo_cmd(
            "finetune", run_a, "--data", data_b, "--out", runs["finetune"],
            "--head-epochs", args.head_epochs, "--head-lr", 3e-3,
            "--finetune-epochs", args.finetune_epochs, "--finetune-lr", 3e-4, "--unfreeze", args.unfreeze,
            "--early-stopping", 8, "--batch-size", 32, "--optimizer", "adam", "--augment", "pad_crop",
            "--precision", precision, "--seed", args.seed, log=log)
        seconds[f"scratch{n}"] = zoo_cmd(
            "train", args.model, "--data", data_b, "--out", runs["scratch"],
            "--epochs", args.scratch_epochs, "--lr", 2e-3, "--lr-schedule", "cosine", "--early-stopping", 10,
            "--batch-size", 32, "--optimizer", "adam", "--augment", "pad_crop",
            "--precision", precision, "--seed", args.seed, log=log)
        m = {k: metrics(v) for k, v in runs.items()}
        with open(os.path.join(runs["finetune"], "config.json")) as f:
            head = json.load(f)["finetune"]["phases"][0]["metrics"]
        row = {"scratch": m["scratch"]["test"]["accuracy"], "head_only": head["test"]["accuracy"],
               "finetune": m["finetune"]["test"]["accuracy"],
               "scratch_dev": m["scratch"]["val"]["accuracy"], "finetune_dev": m["finetune"]["val"]["accuracy"]}
        row["margin"] = row["finetune"] - row["scratch"]
        result["B"][n] = row
        print(json.dumps({n: row}), flush=True)
    result["seconds_wall_cpu"] = seconds
    print(json.dumps(result, indent=2))

    if args.append:
        with open(args.append, "a") as f:
            f.write(report(args, result, argv))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def report(args, result, argv):
    """The result as a Markdown section."""
    ns = args.b_per_class
    cells = lambda key: " | ".join(f"{result['B'][n][key]:.3f}" for n in ns)  # noqa: E731
    cpu = sum(c for _, c in result["seconds_wall_cpu"].values())
    wall = sum(w for w, _ in result["seconds_wall_cpu"].values())
    return f"""
## Transfer learning: pre-train, then fine-tune with few examples per class (`benchmarks/transfer.py`)

{datetime.date.today().isoformat()}, {platform.machine()} CPU ({os.cpu_count()} cores), `{args.model}`, seed {args.seed}{' (--quick)' if args.quick else ''}.
Task A: {args.a_classes} glyph identities x {args.a_per_class} renderings (32x32 RGB), {args.pretrain_epochs} epochs at
batch {args.pretrain_batch}; test accuracy on A {result['pretrain_test_accuracy_A']:.3f}. Task B: {args.b_classes} *other*
identities, {args.b_dev} dev and {args.b_test} test images each; both B arms batch 32, `pad_crop`, `{result['precision_B']}`.

| task B, test accuracy | {' | '.join(f'{n} / class' for n in ns)} |
|---|{'---:|' * len(ns)}
| from scratch ({args.scratch_epochs} epochs max, early stopping 10) | {cells('scratch')} |
| fine-tune phase 1 only (new head, frozen backbone, {args.head_epochs} epochs) | {cells('head_only')} |
| fine-tune both phases (then `--unfreeze {args.unfreeze}`, {args.finetune_epochs} epochs max, early stopping 8) | {cells('finetune')} |

Wall {wall:.0f} s, CPU {cpu:.0f} s (whole `zoo` processes).
Command: `.venv/bin/python benchmarks/transfer.py {' '.join(argv if argv is not None else sys.argv[1:])}`.
"""


if __name__ == "__main__":
    main()
