"""Image-folder startup: opening a folder source (listing + probing every image) vs folder size.

Arms, each timed in this process on the same folder (page cache warm for all), with the
in-process probe cache cleared before each; `--rounds` interleaved repeats, best wall and CPU time kept.
"CPU critical path" is this process's CPU time plus its probe processes' CPU time divided by their number:
the wall time to expect on an idle machine, and a ratio that holds while other jobs load the CPUs.

- `baseline`: the probe as before issue 24: every file, single-threaded, no manifest.
- `thread pool`: the first scan on a thread pool of as many threads as CPUs (no manifest).
- `first run`: no manifest yet: the first scan on a forked process pool, then the manifest is written.
- `second run`: the manifest is there and the folder unchanged: stat every file, read the manifest.
- `second run, follow_symlinks=True`: the same without the symlink confinement's realpath of every file
  (issue 23), to show its share of the second run.

The folder holds N tiny JPEGs (a few distinct encodings written again and again, so generation is fast)
in 10 class folders, and one corrupt file per class (skipped with a warning by every arm).

    python benchmarks/folder_startup.py [--sizes 2000,20000,200000] [--rounds 3] [--image-size 64] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from pipelines.sources import folder, manifest  # noqa: E402

CLASSES = 10


def make_folder(root, n, size=64, variants=16, seed=0):
    """N JPEGs of `size`x`size` in CLASSES folders, plus one truncated JPEG per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(variants):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    for c in range(CLASSES):
        os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
        with open(os.path.join(root, f"class{c}", "broken.jpg"), "wb") as f:
            f.write(blobs[0][: len(blobs[0]) // 3])
    for i in range(n):
        with open(os.path.join(root, f"class{i % CLASSES}", f"{i:07d}.jpg"), "wb") as f:
            f.write(blobs[i % variants])
    return root


def timed_open(root, **kw):
    """Seconds (wall, CPU of this process and its children) to open the folder source; the 1-min load."""
    manifest._SEEN.clear()
    t0, (own0, kids0) = time.perf_counter(), _cpu()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder.open_folder(root, **kw)
    skipped = [w for w in caught if str(w.message).startswith("Skipped ")]
    assert skipped and f"Skipped {CLASSES} corrupt" in str(skipped[0].message), [str(w.message) for w in caught]
    wall, (own, kids) = time.perf_counter() - t0, _cpu()
    own, kids = own - own0, kids - kids0
    # On an idle machine the probe processes (balanced chunks) run side by side: this is the wall time to expect.
    path = own + kids / manifest.workers()
    return wall, own + kids, path, os.getloadavg()[0]


def _cpu():
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def _remove_manifest(root):
    for path in manifest.locations(root):
        if os.path.exists(path):
            os.remove(path)


def run_size(root, n, image_size, rounds):
    """Each arm `rounds` times, interleaved; the best wall and the best CPU time of each."""
    make_folder(root, n, image_size)
    best = {}
    for _ in range(rounds):
        _remove_manifest(root)
        os.environ["ZOO_MANIFEST"] = "0"
        arms = {"baseline (1 thread, no manifest)": _arm(root, workers=1),
                f"thread pool ({manifest.workers()} threads, no manifest)": _arm(root, pool="thread")}
        os.environ["ZOO_MANIFEST"] = "1"
        arms[f"first run ({manifest.workers()} processes, writes manifest)"] = _arm(root)
        arms["second run (manifest)"] = _arm(root)
        arms["second run, follow_symlinks=True (no per-file realpath)"] = _arm(root, follow_symlinks=True)
        for k, now in arms.items():
            old = best.get(k, now)
            best[k] = (*(min(a, b) for a, b in zip(now[:3], old[:3])), max(now[3], old[3]))
    return best


def _arm(root, workers=None, pool="process", **kw):
    original = manifest.probe_all
    manifest.probe_all = lambda paths, num_workers=None: original(paths, workers, pool)
    try:
        return timed_open(root, **kw)
    finally:
        manifest.probe_all = original


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,20000,200000", help="comma-separated file counts")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats; the best of each arm counts")
    ap.add_argument("--dir", default=None, help="where to generate the folders (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    base = args.dir or tempfile.mkdtemp(prefix="zoo-folder-bench-")
    print(f"{os.cpu_count()}-core CPU, {platform.machine()}; {args.image_size}x{args.image_size} JPEGs, "
          f"{CLASSES} class folders (+1 corrupt file each)\n")
    print("| files | arm | startup s | CPU s | CPU critical path s | vs baseline (wall / critical path) | "
          "vs first run (wall / critical path) | load |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            root = os.path.join(base, f"folder-{n}")
            arms = run_size(root, n, args.image_size, args.rounds)
            ref = next(iter(arms.values()))
            first = arms[next(k for k in arms if k.startswith("first run"))]
            for name, (wall, cpu, path, load) in arms.items():
                path_s = "-" if name.startswith("thread") else f"{path:.2f}"  # threads share the GIL: unknown
                vs_base = f"{ref[0] / wall:.2f}x / " + ("-" if name.startswith("thread") else f"{ref[2] / path:.2f}x")
                vs_first = f"{100 * wall / first[0]:.1f}% / {100 * path / first[2]:.1f}%"
                print(f"| {n:,} | {name} | {wall:.3f} | {cpu:.2f} | {path_s} | {vs_base} | {vs_first} | {load:.1f} |",
                      flush=True)
            shutil.rmtree(root)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
