"""Benchmark: does mixed_bfloat16 cost accuracy? The `zoo demo` recipe in both precisions over several seeds.

Each run is its own process: `zoo demo`'s model, data and settings (resnet20 on the built-in
`shapes/classification`, see `zoo.cli.train.DEMO_*`), one seed, one precision. The report gives
each run's dev and test accuracy, the per-seed difference (bf16 - float32, same seed, same data order)
and the mean difference with its standard error, so a gap can be told from seed-to-seed noise.

    .venv/bin/python benchmarks/precision_accuracy.py --seeds 1 2 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
PRECISIONS = ("mixed_bfloat16", "float32")


def one_run(seed, precision, out):
    """Trains the demo recipe once; prints its metrics as one JSON line."""
    from zoo.cli.train import DEMO_DATA, DEMO_KWARGS, DEMO_MODEL, DEMO_SETTINGS
    from zoo.training import loop

    cpu = time.process_time()
    result = loop.train(DEMO_MODEL, DEMO_DATA, out=out, model_kwargs=DEMO_KWARGS, seed=seed,
                        precision=precision, **DEMO_SETTINGS)
    with open(os.path.join(result.run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    print(json.dumps({"seed": seed, "precision": precision, "val": metrics["val"]["accuracy"],
                      "test": metrics["test"]["accuracy"], "cpu_s": time.process_time() - cpu}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--one", nargs=3, metavar=("SEED", "PRECISION", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.one:
        return one_run(int(args.one[0]), args.one[1], args.one[2])

    work = tempfile.mkdtemp(prefix="zoo-precision-")
    runs = []
    for seed in args.seeds:
        for precision in PRECISIONS:
            out = os.path.join(work, f"{precision}-{seed}")
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", str(seed), precision, out],
                                  capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(f"seed {seed} {precision} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            run["wall_s"] = time.perf_counter() - start
            runs.append(run)
            print(json.dumps(run), flush=True)

    by = {(r["seed"], r["precision"]): r for r in runs}
    summary = {}
    for split in ("val", "test"):
        diffs = [by[s, "mixed_bfloat16"][split] - by[s, "float32"][split] for s in args.seeds]
        summary[split] = {
            **{p: statistics.mean(by[s, p][split] for s in args.seeds) for p in PRECISIONS},
            "mean_diff": statistics.mean(diffs),
            "stderr": statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan"),
        }
    print(json.dumps(summary, indent=2))
    if args.markdown:
        print("| seed | bf16 dev | float32 dev | bf16 test | float32 test | test diff (points) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for s in args.seeds:
            b, f = by[s, "mixed_bfloat16"], by[s, "float32"]
            print(f"| {s} | {b['val']:.3f} | {f['val']:.3f} | {b['test']:.3f} | {f['test']:.3f} | "
                  f"{100 * (b['test'] - f['test']):+.1f} |")
        t = summary["test"]
        print(f"\nmean test: bf16 {t['mixed_bfloat16']:.4f}, float32 {t['float32']:.4f}; "
              f"difference {100 * t['mean_diff']:+.2f} points (standard error {100 * t['stderr']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
