"""Label noise on real digits: what random and systematic label errors cost, and how many `--label-issues` finds.

The curriculum's point: deep learning is robust to random label errors but not to systematic ones. Data:
scikit-learn's bundled UCI digits (1,797 8x8 scans, offline), as 8-bit images; a stratified 20% test split
keeps its true labels. The rest is the training source (a keras.datasets-layout .npz; `zoo train` holds out
its 10% dev split) with labels flipped:

- random p: p of the training labels get another class, uniformly.
- systematic p: p of the training labels flipped one class -> another (c -> c + 1 mod 10), taking 45% of
  a class (so its true label stays the majority) class after class until p of all labels are flipped.

Each condition: `zoo train MODEL` on the noisy source (the model's recipe with the epochs, batch size and
learning rate below), test accuracy on the clean test split, then `zoo analyze --label-issues --folds K`
(K-fold cross-training with the same recipe, confident learning) and the precision / recall of the flagged
training examples against the truly flipped ones.

    .venv/bin/python benchmarks/label_noise.py                      # softmax_regression, 4 folds, seed 0
    .venv/bin/python benchmarks/label_noise.py --seeds 1 2 --only random:0.05      # one condition, more seeds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ZOO_QUIET", "1")

import numpy as np  # noqa: E402

CONDITIONS = (("none", 0.0), ("random", 0.05), ("random", 0.20), ("systematic", 0.05), ("systematic", 0.20))
SYSTEMATIC_SHARE = 0.45


def digits(seed):
    """`(x_train, y_train, x_test, y_test)`: uint8 `(N, 8, 8, 1)` digits, a stratified 20% test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[..., None]
    return train_test_split(x, d.target.astype(np.int64), test_size=0.2, stratify=d.target, random_state=seed)


def flip(y, kind, rate, seed, classes=10):
    """Noisy labels and the boolean mask of flipped examples."""
    rng = np.random.default_rng(seed)
    noisy, flipped = y.copy(), np.zeros(len(y), bool)
    target = int(round(rate * len(y)))
    if kind == "random":
        idx = rng.choice(len(y), target, replace=False)
        noisy[idx] = (y[idx] + rng.integers(1, classes, len(idx))) % classes
        flipped[idx] = True
    elif kind == "systematic":
        for c in rng.permutation(classes):
            members = rng.permutation(np.flatnonzero(y == c))
            take = members[:min(int(SYSTEMATIC_SHARE * len(members)), target - int(flipped.sum()))]
            noisy[take], flipped[take] = (c + 1) % classes, True
            if flipped.sum() >= target:
                break
    return noisy, flipped


def run_condition(kind, rate, seed, args, workdir):
    from pipelines import splits as splits_lib
    from zoo import analysis
    from zoo.training import loop

    x_train, x_test, y_train, y_test = digits(seed)
    noisy, flipped = flip(y_train, kind, rate, seed)
    npz = os.path.join(workdir, f"{kind}-{rate}-{seed}.npz")
    np.savez(npz, x_train=x_train, y_train=noisy, x_test=x_test, y_test=y_test)
    out = os.path.join(workdir, f"run-{kind}-{rate}-{seed}")
    start = time.process_time()
    run = loop.train(args.model, npz, out=out, seed=seed, epochs=args.epochs, batch_size=args.batch_size,
                     lr=args.lr, precision="float32", xla="off", verbose=0)
    result = analysis.analyze(out, label_issues=True, folds=args.folds, log=lambda line: None)
    cpu = time.process_time() - start
    order = splits_lib.split_indices(len(x_train), run.config["recipe"]["val_split"], ("val",))["train"]
    flagged = np.zeros(len(x_train), bool)
    flagged[order[np.asarray(result["label_issues"]["indices"], np.int64)]] = True
    truth = flipped[order]  # the examples the analysis saw: the training split, dev held out
    hits = int((flagged[order] & truth).sum())
    return {"noise": kind, "rate": rate, "seed": seed, "test_accuracy": run.metrics["test"]["accuracy"],
            "flipped": int(truth.sum()), "flagged": int(flagged.sum()),
            "precision": hits / max(int(flagged.sum()), 1) if flagged.any() else None,
            "recall": hits / int(truth.sum()) if truth.any() else None, "cpu_s": round(cpu, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="softmax_regression")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", metavar="KIND:RATE", help="a subset, e.g. random:0.05 systematic:0.2")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    conditions = CONDITIONS
    if args.only:
        conditions = [(kind, float(rate)) for kind, _, rate in (c.partition(":") for c in args.only)]
    rows = []
    print("| noise | flipped | test accuracy | flagged | precision | recall | CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            for kind, rate in conditions:
                row = run_condition(kind, rate, seed, args, workdir)
                rows.append(row)
                fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
                print(f"| {kind} {rate:.0%} (seed {seed}) | {row['flipped']} | {row['test_accuracy']:.4f} | "
                      f"{row['flagged']} | {fmt(row['precision'])} | {fmt(row['recall'])} | {row['cpu_s']} |",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
