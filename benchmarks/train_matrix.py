"""Benchmark: `zoo train` for every classification model from every source kind (1 epoch, tiny data).

Issue 5's done-criterion as a table. Classification models are the registry entries whose task is
"classification" or "sequence" (the RNN classifies images read row by row); each is built at its
`test_overrides` size (class count from the data) and trained for one epoch, batch 8, on tiny data from
each source kind:

    arrays         (x, y) uint8 arrays in Python (`zoo.train(model, (x, y))`), 16x16 gray
    npz            a .npz in the keras.datasets layout (x_train, y_train, x_test, y_test), 16x16 RGB
    folder         root/CLASS/*.jpg (val and test carved out), 20x20 RGB
    folder_splits  root/{train,val,test}/CLASS/*.png, 18x18 gray
    tfds           tfds:mnist under tfds.testing.mock_data (the catalogue entry, random 28x28 gray, no download)
    shapes         the built-in shapes/classification, a tiny generated copy (6 classes, 64x64 RGB)

Every cell is a whole in-process `zoo train` (`zoo.cli.main(["train", ...])`; `zoo.train` for arrays,
which have no command-line form) into its own run directory, then the run directory is checked: model.keras,
config.json, history.csv, metrics.json with finite train/val/test loss, accuracy, precision, recall and F1,
curves.png, confusion_matrix.png and TensorBoard event files. A binary-only model (logistic regression) on
a source with more than two classes must be refused with one clear line: that cell reads "n/a".

    .venv/bin/python benchmarks/train_matrix.py                       # every model x every kind
    .venv/bin/python benchmarks/train_matrix.py --models lenet5,rnn --kinds npz,tfds

Prints a Markdown table (model x kind: seconds, or the error) and exits 1 when any cell fails.
tests/test_train_matrix.py runs one cell per model and one per kind through `make_sources` / `run_cell`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

KINDS = ("arrays", "npz", "folder", "folder_splits", "tfds", "shapes")
GENERATED = ("arrays", "npz", "folder", "folder_splits")  # written here, with as many classes as a model needs
TASKS = ("classification", "sequence")
EPOCHS, BATCH, VAL_SPLIT = 1, 8, 0.2
TFDS_NAME, TFDS_EXAMPLES, TFDS_SPLITS = "tfds:mnist", 16, {"train": 40, "test": 8}
SHAPES_SIZES = {"train": 24, "validation": 8, "test": 8}
RUN_FILES = ("model.keras", "config.json", "history.csv", "metrics.json", "curves.png", "confusion_matrix.png")
METRIC_KEYS = ("loss", "accuracy", "precision", "recall", "f1")


# ---- models ----------------------------------------------------------------------------------------------
def classification_models() -> list[str]:
    """Registered models whose task is classification (or sequence classification)."""
    import zoo

    return [n for n in zoo.list_models() if zoo.get_spec(n).task in TASKS]


def model_kwargs(name: str) -> dict:
    """The model's small test size: its `test_overrides` without `classes` (that comes from the data)."""
    import zoo

    return {k: v for k, v in zoo.get_spec(name).test_overrides.items() if k != "classes"}


def binary_only(name: str) -> bool:
    """Whether the builder refuses more than one output unit (a sigmoid classifier such as logistic regression)."""
    import inspect

    import keras

    import zoo

    spec = zoo.get_spec(name)
    param = inspect.signature(spec.builder).parameters.get("classes")
    if param is None or param.default != 1:
        return False
    try:
        spec.builder(**{**model_kwargs(name), "classes": 3})
    except ValueError:
        return True
    finally:
        keras.backend.clear_session()
    return False


def round_robin(models, kinds=KINDS) -> list[tuple[str, str]]:
    """One `(model, kind)` per model, the kinds in turn; a binary-only model skips to a kind with 2 classes."""
    pairs = []
    for i, name in enumerate(models):
        usable = [k for k in kinds if k in GENERATED] if binary_only(name) else list(kinds)
        kind = kinds[i % len(kinds)]
        pairs.append((name, kind if kind in usable else usable[i % len(usable)]))
    return pairs


# ---- tiny sources ----------------------------------------------------------------------------------------
def tiny_images(n, shape, classes, seed=0):
    """uint8 images whose class is the bright quadrant (learnable), and int64 labels covering every class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = rng.integers(0, 60, (n, *shape)).astype("uint8")
    h, w = shape[0] // 2, shape[1] // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c) % 4, 2)
        x[i, r * h:(r + 1) * h, q * w:(q + 1) * w] += 150
    return x, y.astype("int64")


def _write_images(root, x, y, ext):
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y)):
        d = os.path.join(root, f"class{label}")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(os.path.join(d, f"{i}.{ext}"))


def prepare_tiny_shapes(data_dir):
    """Generates a small `shapes/classification` (SHAPES_SIZES) under its real name in `data_dir`."""
    import tensorflow_datasets as tfds

    from pipelines.shapes import Shapes

    cfg = next(c for c in Shapes.BUILDER_CONFIGS if c.name == "classification")
    full, cfg.split_sizes = cfg.split_sizes, dict(SHAPES_SIZES)
    try:
        builder = tfds.builder("shapes/classification", data_dir=str(data_dir))
        if not builder.is_prepared():
            builder.download_and_prepare()
    finally:
        cfg.split_sizes = full
    return str(data_dir)


def write_tfds_metadata(data_dir):
    """MNIST's dataset_info.json (split sizes TFDS_SPLITS) for `mock_data(policy=USE_FILES)`; no download.

    Mocked from its code alone a catalogue dataset has no split sizes, and `zoo train` needs the training
    split's size (steps per epoch). The mock still yields TFDS_EXAMPLES random examples for every split.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAME.split(":", 1)[1], data_dir=str(data_dir))
    if os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json")):
        return str(data_dir)
    template = tfds.core.ShardedFileTemplate(
        data_dir=builder.data_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
        dataset_name=builder.name, filetype_suffix="tfrecord",
    )
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0, filename_template=template)
        for s, n in TFDS_SPLITS.items()
    ]))
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    return str(data_dir)


class Sources:
    """The data of each source kind, written under `root` on first use (one variant per class count)."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self._made = {}

    def classes(self, kind, binary=False):
        """How many classes `kind` holds (2 for binary models where the data is ours to make)."""
        if kind in GENERATED:
            return 2 if binary else 3
        return {"tfds": 10, "shapes": 6}[kind]

    def get(self, kind, classes):
        """The source for `zoo train` (a path, a name, or an (x, y) pair)."""
        key = (kind, classes)
        if key not in self._made:
            self._made[key] = self._make(kind, classes)
        return self._made[key]

    def _make(self, kind, classes):
        import numpy as np

        base = os.path.join(self.root, f"{kind}-{classes}")
        if kind == "arrays":
            return tiny_images(40, (16, 16, 1), classes, seed=1)  # 24 train / 8 val / 8 test
        if kind == "npz":
            x, y = tiny_images(48, (16, 16, 3), classes, seed=2)
            os.makedirs(base, exist_ok=True)
            path = os.path.join(base, "tiny.npz")
            np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
            return path
        if kind == "folder":
            _write_images(base, *tiny_images(40, (20, 20, 3), classes, seed=3), "jpg")
            return base
        if kind == "folder_splits":
            x, y = tiny_images(40, (18, 18, 1), classes, seed=4)
            for split, (a, b) in {"train": (0, 24), "val": (24, 32), "test": (32, 40)}.items():
                _write_images(os.path.join(base, split), x[a:b], y[a:b], "png")
            return base
        if kind == "tfds":
            write_tfds_metadata(os.path.join(self.root, "tfds-metadata"))
            return TFDS_NAME
        if kind == "shapes":
            prepare_tiny_shapes(os.path.join(self.root, "tfds"))
            return "shapes/classification"
        raise ValueError(f"Unknown source kind {kind!r}; allowed: {', '.join(KINDS)}.")

    @contextlib.contextmanager
    def context(self, kind):
        """What a kind needs around training: TFDS mocking, or the tiny shapes' TFDS data dir."""
        if kind == "tfds":
            import tensorflow_datasets as tfds

            with tfds.testing.mock_data(num_examples=TFDS_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES,
                                        data_dir=os.path.join(self.root, "tfds-metadata")):
                yield
        elif kind == "shapes":
            old = os.environ.get("TFDS_DATA_DIR")
            os.environ["TFDS_DATA_DIR"] = os.path.join(self.root, "tfds")
            try:
                yield
            finally:
                if old is None:
                    os.environ.pop("TFDS_DATA_DIR", None)
                else:
                    os.environ["TFDS_DATA_DIR"] = old
        else:
            yield


# ---- one cell --------------------------------------------------------------------------------------------
def train_args(name, source, out):
    """The `zoo train` command line of one cell."""
    args = ["train", name, "--data", source, "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
            "--val-split", str(VAL_SPLIT), "--seed", "0", "--out", os.fspath(out)]
    for key, value in model_kwargs(name).items():
        args += ["--model-arg", f"{key}={value!r}"]
    return args


def check_run(run_dir, name, classes) -> list[str]:
    """Problems with a finished run directory (empty when it holds everything issue 5 asks for)."""
    problems = []
    for f in RUN_FILES:
        path = os.path.join(run_dir, f)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            problems.append(f"missing {f}")
        elif f.endswith(".png"):
            with open(path, "rb") as fh:
                if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                    problems.append(f"{f} is not a PNG")
    events = [f for _, _, files in os.walk(os.path.join(run_dir, "logs")) for f in files if "tfevents" in f]
    if not events:
        problems.append("no TensorBoard event files in logs/")
    if problems:
        return problems
    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    if config.get("model") != name or config.get("task") not in TASKS:
        problems.append(f"config.json model/task {config.get('model')!r}/{config.get('task')!r}")
    if config.get("data", {}).get("num_classes") != classes:
        problems.append(f"config.json num_classes {config.get('data', {}).get('num_classes')} != {classes}")
    with open(os.path.join(run_dir, "history.csv")) as fh:
        rows = list(csv.DictReader(fh))
    if [r.get("epoch") for r in rows] != [str(e) for e in range(1, EPOCHS + 1)]:
        problems.append(f"history.csv epochs {[r.get('epoch') for r in rows]}")
    elif not all(math.isfinite(float(r["loss"])) for r in rows):
        problems.append("history.csv loss not finite")
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    if sorted(metrics) != ["test", "train", "val"]:
        problems.append(f"metrics.json splits {sorted(metrics)}")
    for split, m in metrics.items():
        bad = [k for k in METRIC_KEYS if not isinstance(m.get(k), (int, float)) or not math.isfinite(m[k])]
        if bad:
            problems.append(f"metrics.json {split}: {bad} missing or not finite")
        cm = m.get("confusion_matrix") or []
        n = max(classes, 2)
        if len(cm) != n or any(len(r) != n for r in cm) or sum(map(sum, cm)) != m.get("examples", -1) or not cm:
            problems.append(f"metrics.json {split}: confusion matrix not {n}x{n} summing to the examples")
        elif not m["examples"]:
            problems.append(f"metrics.json {split}: no examples")
    return problems


def run_cell(name, kind, sources, out, *, log=None) -> dict:
    """One `zoo train` of `name` from `kind` into `out`, then `check_run`.

    Returns:
        `{"status": "ok" | "n/a" | "error", "seconds", "message", "run_dir"}`; "n/a" is a binary-only model
        refused a source with more classes, in one line naming the classes.
    """
    import keras

    import zoo
    from zoo import cli

    binary = binary_only(name)
    classes = sources.classes(kind, binary)
    source = sources.get(kind, classes)
    err = io.StringIO()
    sink = log if log is not None else io.StringIO()
    start = time.perf_counter()
    rc, message = 0, ""
    keras.backend.clear_session()
    try:
        with sources.context(kind), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(err):
            if kind == "arrays":
                try:
                    zoo.train(name, source, out=out, epochs=EPOCHS, batch_size=BATCH, val_split=VAL_SPLIT, seed=0,
                              model_kwargs=model_kwargs(name), verbose=0)
                except ValueError as exc:
                    rc, message = 2, str(exc).splitlines()[0]
            else:
                rc = cli.main(train_args(name, source, out))
                if rc == 130:  # zoo's CLI turns Ctrl-C / SIGTERM into exit 130: stop the matrix, not the cell
                    raise KeyboardInterrupt
    except BaseException as exc:  # noqa: BLE001  (a cell's crash is its result, not the matrix's)
        if isinstance(exc, KeyboardInterrupt):
            raise
        rc, message = 1, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    seconds = time.perf_counter() - start
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    if rc and not message:
        message = lines[-1] if lines else f"exit status {rc}"
    if log is not None:
        log.write(err.getvalue())
    keras.backend.clear_session()
    if rc:
        refused = binary and classes > 2 and rc == 2 and len(lines) <= 1 and str(classes) in message
        return {"status": "n/a" if refused else "error", "seconds": seconds, "message": message, "run_dir": out}
    problems = check_run(out, name, 2 if binary and classes == 2 else classes)
    return {"status": "error" if problems else "ok", "seconds": seconds, "message": "; ".join(problems),
            "run_dir": out}


# ---- the matrix ------------------------------------------------------------------------------------------
def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _cell_text(r):
    if r["status"] == "ok":
        return f"ok {r['seconds']:.1f} s"
    text = r["message"].replace("|", "\\|")
    text = text if len(text) <= 90 else text[:87] + "..."
    return f"{r['status']}: {text}" if r["status"] == "n/a" else f"**error** ({r['seconds']:.1f} s): {text}"


def markdown(results, models, kinds) -> str:
    rows = ["| model | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for m in models:
        rows.append(f"| {m} | " + " | ".join(_cell_text(results[m, k]) for k in kinds) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated (default: every classification model)")
    parser.add_argument("--kinds", help=f"comma-separated from {','.join(KINDS)} (default: all)")
    parser.add_argument("--out", help="keep the data, run directories and logs here (default: a temp dir)")
    args = parser.parse_args(argv)

    import zoo

    models = args.models.split(",") if args.models else classification_models()
    for m in models:
        zoo.get_spec(m)  # unknown names fail here, with the closest names
    kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        parser.error(f"unknown kind(s) {bad}; allowed: {', '.join(KINDS)}")
    root = args.out or tempfile.mkdtemp(prefix="zoo-train-matrix-")
    os.makedirs(root, exist_ok=True)
    sources = Sources(os.path.join(root, "data"))
    results = {}
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` still gets the table of the cells that finished
    try:
        with open(os.path.join(root, "train_matrix.log"), "w") as log:
            # Diagonals first: every model once (different kinds), then again, so a cut-short run still covers all.
            cells = [(m, kinds[(i + r) % len(kinds)]) for r in range(len(kinds)) for i, m in enumerate(models)]
            for m, k in cells:
                log.write(f"\n===== {m} x {k}\n")
                r = run_cell(m, k, sources, os.path.join(root, "runs", f"{m}-{k}"), log=log)
                log.flush()
                results[m, k] = r
                print(f"{m:>20} x {k:<13} {r['status']:<5} {r['seconds']:6.1f} s {r['message']}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: cells not run are marked 'not run'", flush=True)
    for key in ((m, k) for m in models for k in kinds):
        results.setdefault(key, {"status": "error", "seconds": 0.0, "message": "not run (interrupted)"})
    total = time.perf_counter() - start
    failed = [key for key, r in results.items() if r["status"] == "error"]
    na = [key for key, r in results.items() if r["status"] == "n/a"]
    print()
    print(f"`zoo train` matrix, {time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()}-core CPU, "
          f"{len(models)} models x {len(kinds)} source kinds, {EPOCHS} epoch, batch {BATCH}: "
          f"{len(results) - len(failed) - len(na)} ok, {len(na)} n/a, {len(failed)} failed, {total:.0f} s in all "
          f"(logs and runs in {root})")
    print()
    print(markdown(results, models, kinds))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
