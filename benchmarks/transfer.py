"""Pre-train, then fine-tune with 30 examples per class, against the same network trained from scratch.

Task A (pre-training): recognise `--a-classes` procedural glyph identities (`pipelines.shapes.render`, the
generator behind the built-in `shapes/glyphs` data), `--a-per-class` renderings each. Task B (the new task):
`--b-classes` *different* glyph identities with only `--b-per-class` training images each (plus a small dev
set and a larger test set). Every image is drawn with its own rotation, scale, shear, shift, stroke width and
colours, so B needs features that generalise across renderings; A teaches them.

Three whole `zoo` processes, the same architecture (`--model`, default resnet20) and the same B data:

    zoo train MODEL --data A                       # pre-training
    zoo finetune RUN_A --data B                    # head on the frozen backbone, then fine-tune the top
    zoo train MODEL --data B                       # from scratch, same epochs budget, early stopping

and the test accuracies of the last two on B's held-out test split are compared. Both use batch 32 (with
`resnet20`'s recipe batch of 128, 300 images are 3 steps per epoch, too few for BatchNormalization's moving
statistics to settle, which would handicap the from-scratch run).

    .venv/bin/python benchmarks/transfer.py                  # ~15-25 min on a 2-core CPU
    .venv/bin/python benchmarks/transfer.py --quick          # a smoke run of the same steps
    .venv/bin/python benchmarks/transfer.py --append BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SIZE = 32
B_FIRST_ID = 10_000  # task B's identities never overlap task A's (A uses 0 .. a_classes - 1)


def write_glyphs(root, first_id, n_ids, counts, seed=7):
    """An image folder `root/<split>/g<id>/<k>.png` with `counts[split]` renderings per identity."""
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
                rng = np.random.default_rng([seed, split_ids[split], ident, k])
                Image.fromarray(render.glyph_image(rng, strokes, SIZE)).save(os.path.join(folder, f"{k}.png"))


def zoo_cmd(*args, log):
    """Runs `zoo ARGS` as its own process; returns its wall time in seconds."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "zoo"), *map(str, args)]
    print("$ zoo " + " ".join(map(str, args)), flush=True)
    start = time.perf_counter()
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "ZOO_QUIET": "1"})
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"zoo {' '.join(map(str, args))} failed ({proc.returncode}):\n{tail}")
    return time.perf_counter() - start


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--a-classes", type=int, default=40)
    p.add_argument("--a-per-class", type=int, default=50)
    p.add_argument("--b-classes", type=int, default=10)
    p.add_argument("--b-per-class", type=int, default=30)
    p.add_argument("--pretrain-epochs", type=int, default=12)
    p.add_argument("--head-epochs", type=int, default=8)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--scratch-epochs", type=int, default=40)
    p.add_argument("--unfreeze", default="all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="working folder (default: a temporary one, removed afterwards)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the steps, not the claim")
    p.add_argument("--append", help="append the result as a Markdown section to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.a_classes, args.a_per_class, args.b_classes, args.b_per_class = 6, 12, 3, 6
        args.pretrain_epochs, args.head_epochs, args.finetune_epochs, args.scratch_epochs = 1, 1, 1, 2

    work = args.work or tempfile.mkdtemp(prefix="zoo-transfer-")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "log.txt")
    data_a, data_b = os.path.join(work, "A"), os.path.join(work, "B")
    runs = {k: os.path.join(work, k) for k in ("pretrain", "finetune", "scratch")}
    for path in (data_a, data_b, *runs.values()):
        shutil.rmtree(path, ignore_errors=True)
    write_glyphs(data_a, 0, args.a_classes, {"train": args.a_per_class, "test": max(args.a_per_class // 6, 2)})
    b_counts = {"train": args.b_per_class, "val": max(args.b_per_class // 3, 2), "test": 50 if not args.quick else 4}
    write_glyphs(data_b, B_FIRST_ID, args.b_classes, b_counts)

    common = ["--seed", args.seed, "--optimizer", "adam", "--augment", "pad_crop"]
    times = {}
    times["pretrain"] = zoo_cmd("train", args.model, "--data", data_a, "--out", runs["pretrain"],
                                "--epochs", args.pretrain_epochs, "--lr", 2e-3, "--lr-schedule", "cosine",
                                *common, log=log)
    times["finetune"] = zoo_cmd("finetune", runs["pretrain"], "--data", data_b, "--out", runs["finetune"],
                                "--head-epochs", args.head_epochs, "--head-lr", 3e-3,
                                "--finetune-epochs", args.finetune_epochs, "--finetune-lr", 3e-4,
                                "--unfreeze", args.unfreeze, "--early-stopping", 8, "--seed", args.seed,
                                "--augment", "pad_crop", "--batch-size", 32, log=log)
    times["scratch"] = zoo_cmd("train", args.model, "--data", data_b, "--out", runs["scratch"],
                               "--epochs", args.scratch_epochs, "--lr", 2e-3, "--lr-schedule", "cosine",
                               "--early-stopping", 10, "--batch-size", 32, *common, log=log)

    m = {k: metrics(v) for k, v in runs.items()}
    head = json.load(open(os.path.join(runs["finetune"], "config.json")))["finetune"]["phases"][0]["metrics"]
    result = {
        "pretrain_test_accuracy_A": m["pretrain"]["test"]["accuracy"],
        "head_only_test_accuracy_B": head["test"]["accuracy"],
        "finetune_test_accuracy_B": m["finetune"]["test"]["accuracy"],
        "scratch_test_accuracy_B": m["scratch"]["test"]["accuracy"],
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    result["margin"] = result["finetune_test_accuracy_B"] - result["scratch_test_accuracy_B"]
    print(json.dumps(result, indent=2))

    if args.append:
        b_train = args.b_classes * args.b_per_class
        text = f"""
## Transfer learning: pre-train, then fine-tune with {args.b_per_class} examples per class (`benchmarks/transfer.py`)

{datetime.date.today().isoformat()}, {platform.machine()} CPU ({os.cpu_count()} cores), `{args.model}`, seed {args.seed}{' (--quick)' if args.quick else ''}.
Task A: {args.a_classes} glyph identities x {args.a_per_class} renderings (32x32 RGB). Task B: {args.b_classes} *other*
identities, {args.b_per_class} training images each ({b_train} in all), {b_counts['val']} dev and {b_counts['test']} test images each.

| on task B's test split | accuracy |
|---|---:|
| `zoo train {args.model}` from scratch on B (batch 32, {args.scratch_epochs} epochs max, early stopping 10) | {result['scratch_test_accuracy_B']:.3f} |
| `zoo finetune` phase 1 only: new head on the frozen pre-trained backbone ({args.head_epochs} epochs) | {result['head_only_test_accuracy_B']:.3f} |
| `zoo finetune` both phases (batch 32, then `--unfreeze {args.unfreeze}`, {args.finetune_epochs} epochs max, early stopping 8) | {result['finetune_test_accuracy_B']:.3f} |

Fine-tuning beats training from scratch by **{100 * result['margin']:+.1f} points**. The pre-trained network reaches
{result['pretrain_test_accuracy_A']:.3f} on task A's own test split. Wall time (whole processes): pre-training
{result['seconds']['pretrain']:.0f} s, fine-tuning {result['seconds']['finetune']:.0f} s, from scratch {result['seconds']['scratch']:.0f} s.
Command: `.venv/bin/python benchmarks/transfer.py {' '.join(argv or sys.argv[1:])}`.
"""
        with open(args.append, "a") as f:
            f.write(text)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
