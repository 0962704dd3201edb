"""Export formats side by side: file size, single-image latency and (where real data exists) accuracy.

    .venv/bin/python benchmarks/export.py                                   # every model
    .venv/bin/python benchmarks/export.py --models lenet5 mobilenet_v2 --reps 50 --json export.json

Per model and format: the file's size, the median and p95 latency of one image (uint8 at the served size;
LiteRT with XNNPACK, ONNX Runtime CPU, the TF SavedModel's `serving_default`), all with `--threads` threads,
measured in one process with the formats taking turns in blocks of 10 images (so the load of a shared machine
falls on all alike: same-run ratios are what to compare).
`hand` rows convert the same Keras model by hand (`TFLiteConverter.from_keras_model`, `tf2onnx.convert.
from_keras`) with no preprocessing in the graph: the zoo's file should be within 10% of it (`hand int8`: full-int8
with int8 input and output, calibrated on the same images, fed pre-quantized pixels).

LiteRT rows also list `outside_xnnpack`: the ops the XNNPACK delegate leaves to LiteRT's builtin kernels.
`--stages` cuts MobileNetV2 into its stages, converts each by hand to float32 and full-int8 and times them in turns:
where int8 gains and where it does not (LiteRT's Python API has no per-op profiler).

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

import keras  # noqa: E402
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
    ends = np.zeros_like(calibration[:1]), np.full_like(calibration[:1], 255)
    calibration = np.concatenate([*ends, calibration])  # the full 0..255 range, as portable.write calibrates
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
    out["tflite", "hand int8"] = (_hand_tflite(model, tmp, name, calibration), None)
    out["onnx", "hand"] = (_hand_onnx(model, tmp, name), None)
    return out, spec


def _hand_tflite(model, tmp, name, calibration=None):
    """`from_keras_model`: float32, or full-int8 with int8 input and output when `calibration` (uint8 images)."""
    path = os.path.join(tmp, f"{name}-hand{'' if calibration is None else '-int8'}.tflite")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None].astype(np.float32) / 255] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with open(path, "wb") as f:
        f.write(converter.convert())
    return path


def _hand_onnx(model, tmp, name):
    import tf2onnx

    path = os.path.join(tmp, f"{name}-hand.onnx")
    spec = [tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="x")]
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
    tf2onnx.convert.from_function(fn, input_signature=spec, opset=onnx_fmt.OPSET, output_path=path)
    return path


def outside_xnnpack(path):
    """{op name: count} of the ops in a LiteRT file that XNNPACK does not take (they run on builtin kernels).

    With node fusion off, every op the delegate takes becomes its own DELEGATE node with that op's outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, experimental_disable_delegate_node_fusion=True)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    delegated = {tuple(op["outputs"]) for op in ops if op["op_name"] == "DELEGATE"}
    kept = [op["op_name"] for op in ops if op["op_name"] != "DELEGATE" and tuple(op["outputs"]) not in delegated]
    return {op: kept.count(op) for op in sorted(set(kept))}


STAGE_CUTS = ("expanded_conv_project_BN", "block_2_add", "block_5_add", "block_9_add", "block_12_add",
              "block_15_add", "block_16_project_BN", "out_relu", "predictions")  # 112, 56, 28, 14, 14, 7, 7, 7 px, head


def _invoke(path, threads):
    """`interpreter.invoke` of a LiteRT file (XNNPACK), its input set to random values of its own dtype."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    d = interpreter.get_input_details()[0]
    x = np.random.default_rng(1).integers(-128, 128, d["shape"])
    interpreter.set_tensor(d["index"], x.astype(d["dtype"]) if d["dtype"] == np.int8 else x.astype(np.float32) / 128)
    return interpreter.invoke


def _convert_stage(stage, calibration, path, int8):
    """Hand conversion of one stage: float32, or full-int8 (int8 in and out) calibrated on its float inputs."""
    converter = tf.lite.TFLiteConverter.from_keras_model(stage)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with open(path, "wb") as f:
        f.write(converter.convert())


def stages(reps, threads):
    """MobileNetV2 cut into stages (`STAGE_CUTS`), each a model of its own converted by hand to float32 and
    full-int8 (calibrated on the float activations of 16 random images); prints each stage's medians, in turns."""
    model = zoo.create_model("mobilenet_v2")
    activations = np.random.default_rng(0).random((16, 224, 224, 3), np.float32)
    arms, start = {}, model.inputs[0]
    with tempfile.TemporaryDirectory() as tmp:
        for cut in STAGE_CUTS:
            stage = keras.Model(start, model.get_layer(cut).output)
            for kind in ("float32", "int8"):
                path = os.path.join(tmp, f"{cut}-{kind}.tflite")
                _convert_stage(stage, activations, path, kind == "int8")
                arms[cut, kind] = (lambda _, fn=_invoke(path, threads): fn(), None)
            activations, start = np.asarray(stage.predict(activations, verbose=0)), model.get_layer(cut).output
        times = latencies(arms, reps)
    for cut in STAGE_CUTS:
        f32, int8 = times[cut, "float32"][0], times[cut, "int8"][0]
        print(json.dumps({"stage_until": cut, "threads": threads, "float32_ms": round(f32, 3),
                          "int8_ms": round(int8, 3), "ratio": round(f32 / int8, 2)}), flush=True)
    total = [sum(times[cut, kind][0] for cut in STAGE_CUTS) for kind in ("float32", "int8")]
    print(json.dumps({"stage_until": "all (sum)", "threads": threads, "float32_ms": round(total[0], 3),
                      "int8_ms": round(total[1], 3), "ratio": round(total[0] / total[1], 2)}), flush=True)


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
            x = image.astype(np.float32) / 255 if quantize in ("hand", "hand int8") else image
            if fmt == "savedmodel":
                sig = tf.saved_model.load(path).signatures["serving_default"]
                arms[key] = (lambda im, sig=sig: sig(images=tf.constant(im)), x)
                continue
            runner = runtimes.load(path, num_threads=threads)
            if quantize == "hand int8":  # quantized here, once: the arm times the file, not numpy
                scale, zero = runner.input["quantization"]
                x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
            arms[key] = (runner, x)
        for (fmt, quantize), (med, p95) in latencies(arms, reps).items():
            path, test = files[fmt, quantize]
            rows.append({"model": name, "format": fmt, "quantize": quantize or "float32", "bytes": size_of(path),
                         "latency_ms_median": round(med, 3), "latency_ms_p95": round(p95, 3), "test": test,
                         **({"outside_xnnpack": outside_xnnpack(path)} if fmt == "tflite" else {})})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    p.add_argument("--stages", action="store_true", help="MobileNetV2's float32 and int8 time per stage instead")
    args = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.stages:
        return stages(args.reps, args.threads)
    rows = [row for name in args.models for row in measure(name, args.reps, args.threads)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
