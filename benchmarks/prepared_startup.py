"""Startup from `zoo prepare`'s TFDS shards vs the image folder they were written from (issue 24 item 3).

One process, one generated folder (`folder_startup.make_folder`: N 64x64 JPEGs in 10 class folders, one corrupt
file each), page cache warm. Each arm is `pipelines.inspect(source)` plus the first batch of 128 of
`pipelines.build(source, split="train", shuffle=False)`, with the in-process probe caches cleared first:

- `folder, first run`: no manifest yet (every image probed, on a process pool).
- `folder, second run`: the manifest is there (listing + stat of every file).
- `prepared shards`: the folder written once by `pipelines.prepare.prepare` (its own time is shown as `prepare`).

`--rounds` interleaved repeats; the best wall and CPU time of each arm are kept. CPU includes child processes.

    python benchmarks/prepared_startup.py [--sizes 2000,20000] [--rounds 3] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import folder_startup  # noqa: E402

import pipelines  # noqa: E402
from pipelines import prepare  # noqa: E402
from pipelines.sources import images, manifest  # noqa: E402

BATCH = 128


def _cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn):
    """(wall s, CPU s) of `fn()`, warnings silenced (the corrupt files are reported by every arm)."""
    images._PROBE_CACHE.clear()
    manifest._SEEN.clear()
    t0, c0 = time.perf_counter(), _cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()
    return time.perf_counter() - t0, _cpu() - c0


def startup(source):
    """Inspect the source and take the first training batch (unshuffled)."""
    pipelines.inspect(source)
    next(iter(pipelines.build(source, split="train", batch_size=BATCH, shuffle=False)))


def run_size(base, n, rounds):
    root = folder_startup.make_folder(os.path.join(base, f"folder-{n}"), n)
    out = os.path.join(base, f"prepared-{n}")
    best = {}
    for r in range(rounds):
        folder_startup._remove_manifest(root)
        arms = {"folder, first run (no manifest)": timed(lambda: startup(root)),
                "folder, second run (manifest)": timed(lambda: startup(root))}
        if r == 0:
            best["prepare (once)"] = timed(lambda: prepare.prepare(root, out))
        arms["prepared shards"] = timed(lambda: startup(out))
        for k, now in arms.items():
            best[k] = tuple(min(a, b) for a, b in zip(now, best.get(k, now)))
    shutil.rmtree(root)
    shutil.rmtree(out)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000", help="comma-separated file counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to generate the data (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    base = args.dir or tempfile.mkdtemp(prefix="zoo-prepared-bench-")
    os.environ["ZOO_MANIFEST"] = "1"
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()  # TFDS' writer bars would break the table
    print(f"{os.cpu_count()}-core CPU, {platform.machine()}; load {os.getloadavg()[0]:.1f}; inspect + first batch "
          f"of {BATCH}\n")
    print("| files | arm | wall s | CPU s | CPU vs folder first run | CPU vs folder second run |")
    print("|---:|---|---:|---:|---:|---:|")
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            arms = run_size(base, n, args.rounds)
            first, second = arms["folder, first run (no manifest)"][1], arms["folder, second run (manifest)"][1]
            for name, (wall, cpu) in arms.items():
                print(f"| {n:,} | {name} | {wall:.2f} | {cpu:.2f} | {100 * cpu / first:.0f}% | "
                      f"{100 * cpu / second:.0f}% |", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
