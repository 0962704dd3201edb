"""Export formats side by side: file size, single-image latency and (where real data exists) accuracy.

    .venv/bin/python benchmarks/export.py                                   # every model
    .venv/bin/python benchmarks/export.py --models lenet5 mobilenet_v2 --reps 50 --json export.json

Per model and format: the file's size, the median and p95 latency of one image (uint8 at the served size;
LiteRT with XNNPACK, ONNX Runtime CPU, the TF SavedModel's `serving_default`), all with `--threads` threads,
measured in one process with the formats taking turns in blocks of 10 images (so the load of a shared machine
falls on all alike: same-run ratios are what to compare).
`hand` rows convert the same Keras model by hand (`TFLiteConverter.from_keras_model`, `tf2onnx.convert.
from_keras`) with no preprocessing in the graph: the zoo's file should be within 10% of it.

Accuracy: lenet5 is the legacy fixture's trained run (`tests/fixtures/legacy`: LeNet-5, 3 epochs on
scikit-learn's real digits 0-4, 16x16), exported with `zoo.export` (int8 calibrated on its train split) and
scored on its 100 test images. The other models are untrained (no offline data for them): size and latency
only, int8 calibrated on 32 random images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo import export as export_lib  # noqa: E402
from zoo.export import onnx as onnx_fmt  # noqa: E402
from zoo.export import runtimes  # noqa: E402
from zoo.training.rundir import load_keras  # noqa: E402

LEGACY = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "legacy")
MODELS = ("lenet5", "mobilenet_v2", "resnet50", "yolo", "unet")
FORMATS = [("savedmodel", None), ("tflite", None), ("tflite", "float16"), ("tflite", "dynamic"),
           ("tflite", "int8"), ("onnx", None), ("onnx", "int8")]


def latencies(arms, reps, block=10):
    """{arm: (median ms, p95 ms)} of `fn(x)` for every `arm: (fn, x)`, the arms taking turns in blocks of
    `block` calls (one warm-up call each, untimed), so the load of a shared machine falls on all of them alike
    (their ratios are the comparable numbers) while one runtime's idle spinning threads do not slow the next."""
    times = {arm: [] for arm in arms}
    for _ in range(max(1, reps // block)):
        for arm, (fn, x) in arms.items():
            fn(x)
            for _ in range(block):
                start = time.perf_counter()
                fn(x)
                times[arm].append(time.perf_counter() - start)
    return {arm: (1000 * float(np.median(t)), 1000 * float(np.percentile(t, 95))) for arm, t in times.items()}


def lenet5_run(tmp):
    run = os.path.join(tmp, "run")
    shutil.copytree(os.path.join(LEGACY, "run"), run)
    with open(os.path.join(run, "config.json")) as f:
        config = json.load(f)
    config["source"] = config["data"]["source"] = os.path.abspath(os.path.join(LEGACY, "digits04.npz"))
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(config, f)
    return run


def files_for(name, tmp):
    """{(format, quantize): (path, test record or None)} for one model, plus the Keras model and spec."""
    if name == "lenet5":
        source = lenet5_run(tmp)
        model = load_keras(os.path.join(source, "model.keras"))
        kw = {}
    else:
        model = zoo.create_model(name)
        source, kw = model, {"preprocessing": "scale"}
    out = {}
    base = os.path.join(tmp, name)
    version = export_lib.export(source, base, verbose=False, **kw)
    out["savedmodel", None] = (version, None)
    _, spec, _, _ = export_lib.spec_lib.resolve(source, **kw)
    calibration = np.random.default_rng(0).integers(0, 256, (32, *spec.image_shape), dtype=np.uint8)
    pspec = dataclasses.replace(spec, portable=True)
    for fmt, quantize in FORMATS[1:]:
        module = export_lib.FORMATS[fmt]
        if name == "lenet5":  # a run: the real command, int8 calibrated and scored on the run's data
            version = export_lib.export(source, base, format=fmt, quantize=quantize, verbose=False)
            (record,) = json.load(open(os.path.join(version, "assets.extra", "export.json")))["files"]
            out[fmt, quantize] = (os.path.join(version, record["file"]), record.get("test"))
        else:
            path = os.path.join(tmp, f"{name}-{module.file_name(quantize)}")
            module.convert(path, export_lib.graph.float32_model(model), pspec, quantize, calibration)
            out[fmt, quantize] = (path, None)
    out["tflite", "hand"] = (_hand_tflite(model, tmp, name), None)
    out["onnx", "hand"] = (_hand_onnx(model, tmp, name), None)
    return out, spec


def _hand_tflite(model, tmp, name):
    path = os.path.join(tmp, f"{name}-hand.tflite")
    with open(path, "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def _hand_onnx(model, tmp, name):
    import tf2onnx

    path = os.path.join(tmp, f"{name}-hand.onnx")
    spec = [tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="x")]
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
    tf2onnx.convert.from_function(fn, input_signature=spec, opset=onnx_fmt.OPSET, output_path=path)
    return path


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
                   if "assets.extra" not in d)
    return os.path.getsize(path)


def measure(name, reps, threads):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files, spec = files_for(name, tmp)
        image = np.random.default_rng(1).integers(0, 256, (1, *spec.image_shape), dtype=np.uint8)
        arms = {}
        for key, (path, _) in files.items():
            fmt, quantize = key
            x = image.astype(np.float32) / 255 if quantize == "hand" else image
            if fmt == "savedmodel":
                sig = tf.saved_model.load(path).signatures["serving_default"]
                arms[key] = (lambda im, sig=sig: sig(images=tf.constant(im)), x)
            else:
                arms[key] = (runtimes.load(path, num_threads=threads), x)
        for (fmt, quantize), (med, p95) in latencies(arms, reps).items():
            path, test = files[fmt, quantize]
            rows.append({"model": name, "format": fmt, "quantize": quantize or "float32", "bytes": size_of(path),
                         "latency_ms_median": round(med, 3), "latency_ms_p95": round(p95, 3), "test": test})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    rows = [row for name in args.models for row in measure(name, args.reps, args.threads)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
