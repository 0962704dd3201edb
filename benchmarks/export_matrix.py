"""Which registered model exports to which format: every model x (SavedModel, LiteRT float32 / int8, ONNX float32 / int8).

    .venv/bin/python benchmarks/export_matrix.py                       # every model, table on stdout
    .venv/bin/python benchmarks/export_matrix.py --models yolo unet --json matrix.json

Each model is built untrained at the registry's smallest input (`zoo.get_spec(name).test_overrides`: the
cheap variant the registry's own tests build) and saved as a tiny run directory (model.keras, config.json)
whose source is synthetic data of the task's shape: an `.npz` (classification, sequence, embedding,
segmentation masks) or a YOLO-txt folder (detection), with train and test splits. Every cell is one call
of `zoo.export(run, base, format=..., quantize=...)`, the function `zoo export` runs: convert, verify
against Keras (float formats: max abs diff <= 1e-4), and for int8 calibrate on the run's train split and
score on its test split (`allow_drop=True`: an untrained model's int8 drop is not what is measured here).
A cell is `ok` or the error's first line. Each model runs in its own process, so a converter that kills the
process (a segfault) marks that cell and leaves the other models' cells alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import export as export_lib  # noqa: E402

FORMATS = [("savedmodel", None), ("tflite", None), ("tflite", "int8"), ("onnx", None), ("onnx", "int8")]
N_TRAIN, N_TEST = 12, 6


def _npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _yolo_folder(root, shape, classes, rng):
    """A YOLO-txt folder: one random box per image, its pixels brightened."""
    h, w, c = shape
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        os.makedirs(os.path.join(root, "images", split))
        os.makedirs(os.path.join(root, "labels", split))
        for i in range(n):
            img = rng.integers(0, 80, (h, w, c), dtype=np.uint8)
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            bh, bw = h // 3, w // 3
            img[y0:y0 + bh, x0:x0 + bw] = 220
            from PIL import Image

            Image.fromarray(img[..., 0] if c == 1 else img).save(os.path.join(root, "images", split, f"{i}.png"))
            with open(os.path.join(root, "labels", split, f"{i}.txt"), "w") as f:
                f.write(f"{i % classes} {(x0 + bw / 2) / w} {(y0 + bh / 2) / h} {bw / w} {bh / h}\n")
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("".join(f"c{i}\n" for i in range(classes)))
    return root


def tiny_source(task, shape, classes, tmp):
    """A synthetic source with train and test splits for `task` at image `shape` (H, W, C)."""
    rng = np.random.default_rng(0)
    if task == "detection":
        return _yolo_folder(os.path.join(tmp, "data"), shape, classes, rng)
    x = rng.integers(0, 256, (N_TRAIN + N_TEST, *shape), dtype=np.uint8)
    if task == "segmentation":
        y = rng.integers(0, classes, (N_TRAIN + N_TEST, *shape[:2])).astype(np.uint8)
    else:
        y = np.arange(N_TRAIN + N_TEST) % classes
    return _npz(os.path.join(tmp, "data.npz"), x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:])


def served_shape(model):
    """The image `(H, W, C)` a model serves (`image_rows`: `(T, F, 1)`), or `(D,)` for a feature vector."""
    shape = tuple(model.inputs[0].shape[1:])
    return shape if len(shape) != 2 else (*shape, 1)


def classes_of(model, task):
    if task == "detection":
        return int(model.outputs[0].shape[-1]) - 5
    n = model.outputs[0].shape[-1]
    return max(int(n), 2) if task in ("classification", "sequence", "segmentation") and n else 2  # 1: sigmoid


def tiny_run(name, tmp):
    """A run directory holding the untrained `name` at its registry test size; returns its path."""
    spec = zoo.get_spec(name)
    keras.utils.set_random_seed(0)
    model = zoo.create_model(name, **spec.test_overrides)
    task, shape = spec.task, served_shape(model)
    classes = classes_of(model, task)
    source = tiny_source(task, shape, classes, tmp) if len(shape) == 3 else None
    run = os.path.join(tmp, "run")
    os.makedirs(run)
    model.save(os.path.join(run, "model.keras"))
    names = [str(i) for i in range(classes)] if task in export_lib.CLASSIFIER_TASKS + ("segmentation",) else None
    if task == "detection":
        names = [f"c{i}" for i in range(classes)]
    data = {"task": task, "num_classes": classes, "class_names": names, "image_shape": list(shape),
            "normalization": "scale" if len(shape) == 3 else "none", "source": source, "max_boxes": 4,
            "split_seed": 0, "extra": {}}
    config = {"model": name, "task": task, "model_kwargs": spec.test_overrides, "recipe": {"val_split": 0.0},
              "data": data, "source": source, "precision": "float32"}
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(config, f, default=list)
    return run


def one_line(exc):
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text[:200]


def cell(run, base, fmt, quantize):
    """`{"result": "ok" | reason, "seconds", "file" record}` of one export."""
    start = time.process_time()
    try:
        version = export_lib.export(run, base, format=fmt, quantize=quantize, allow_drop=True, verbose=False)
        with open(os.path.join(version, "assets.extra", "export.json")) as f:
            files = json.load(f).get("files") or [{}]
        result, record = "ok", files[0]
    except Exception as exc:  # noqa: BLE001  (the table records why)
        result, record = one_line(exc), {}
    keep = {k: record[k] for k in ("file", "bytes", "max_abs_diff", "test") if k in record}
    return {"result": result, "cpu_seconds": round(time.process_time() - start, 1), **keep}


def model_rows(name):
    """The rows of one model, in this process."""
    with tempfile.TemporaryDirectory(prefix=f"zoo-matrix-{name}-") as tmp:
        try:
            run = tiny_run(name, tmp)
        except Exception as exc:  # noqa: BLE001
            return [{"model": name, "format": f, "quantize": q, "result": "build: " + one_line(exc)} for f, q in FORMATS]
        rows = []
        for fmt, quantize in FORMATS:
            rows.append({"model": name, "format": fmt, "quantize": quantize,
                         **cell(run, os.path.join(tmp, "out"), fmt, quantize)})
            print(ROW + json.dumps(rows[-1]), flush=True)
        return rows


ROW = "matrix-row: "


def matrix(names):
    """Every model in its own process: a converter that crashes the process (a segfault) fails its cells only."""
    rows = []
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
        got = [json.loads(line[len(ROW):]) for line in proc.stdout.splitlines() if line.startswith(ROW)]
        done = {(r["format"], r["quantize"]) for r in got}
        if proc.returncode:
            reason = f"the process died (exit code {proc.returncode}) converting this format"
            missing = [(f, q) for f, q in FORMATS if (f, q) not in done]
            got += [{"model": name, "format": f, "quantize": q,
                     "result": reason if i == 0 else "not run (the process died before)"}
                    for i, (f, q) in enumerate(missing)]
        rows += got
        for row in got:
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def markdown(rows):
    """The model x format table; cells are `ok` or a footnote number, the reasons below it."""
    heads = [f"{f} {q or 'float32'}" if f != "savedmodel" else f for f, q in FORMATS]
    reasons, table = [], {}
    for r in rows:
        key = (r["model"], r["format"], r["quantize"])
        if r["result"] == "ok":
            table[key] = "ok"
            continue
        if r["result"] not in reasons:
            reasons.append(r["result"])
        table[key] = f"({reasons.index(r['result']) + 1})"
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| model | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(table.get((m, f, q), "-") for f, q in FORMATS) + " |")
    lines += [""] + [f"({i + 1}) {text}" for i, text in enumerate(reasons)]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=zoo.list_models(), choices=zoo.list_models())
    p.add_argument("--json")
    p.add_argument("--one", choices=zoo.list_models(), help=argparse.SUPPRESS)  # a child of `matrix`
    args = p.parse_args()
    if args.one:
        model_rows(args.one)
        return
    rows = matrix(args.models)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    print(markdown(rows))


if __name__ == "__main__":
    main()
