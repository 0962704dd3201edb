"""What every portable format (LiteRT, ONNX) shares: argument checks, conversion, verification, scoring.

A portable file is kept only when its outputs match the Keras model's on the warm-up images within
the format's tolerance (float formats), and, quantized, after its metric on the run's test split is
measured next to the float model's: an int8 file that loses more than `MAX_DROP` points is refused
unless `allow_drop`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from zoo.export import savedmodel

MAX_DROP = 1.0  # points (accuracy, mAP@0.5, mean IoU, in %)
CALIBRATION_IMAGES = 200
MAX_TEST_IMAGES = 1000


def check_exportable(fmt, spec, quantize, run, model=None):
    """One-line ValueErrors for exports a format cannot make (before any work is done)."""
    if fmt.NAME == "tflite" and quantize == "int8" and model is not None and _recurrent(model):
        raise ValueError(
            f"--format tflite --quantize int8 is not available for {spec.model_name!r}: LiteRT's full-integer "
            "converter crashes the process (segmentation fault, TF 2.21) on recurrent layers; use --quantize "
            "dynamic or float16, or --format onnx --quantize int8."
        )
    if spec.input_kind != "features" and None in spec.image_shape[:2]:
        raise ValueError(
            f"--format {fmt.NAME} needs a fixed image size; model {spec.model_name!r} takes any size "
            "(export a run, whose data records its size)."
        )
    if quantize == "int8" and run is None:
        raise ValueError(
            f"--quantize int8 calibrates on a run's train split and scores on its test split; "
            f"export a run directory, not a model or .keras file ({spec.model_name!r})."
        )
    if quantize == "int8" and spec.input_kind == "features":
        raise ValueError(f"--quantize int8 takes image models; {spec.model_name!r} takes a feature vector.")


def _recurrent(model):
    import keras

    return any(isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)) for layer in model._flatten_layers())


def write(fmt, path, keras_model, float_model, spec, quantize, warmup, run, *, allow_drop=False):
    """Converts, verifies and scores one portable file in the version folder `path`; returns its record."""
    pspec = dataclasses.replace(spec, portable=True)
    name = fmt.file_name(quantize)
    target = os.path.join(path, name)
    calibration = split_images(run, spec, "train", CALIBRATION_IMAGES)[0] if quantize == "int8" else None
    if calibration is not None:  # full 0..255 range: the uint8 input quantizes with scale 1, zero point 0
        calibration = np.concatenate([np.zeros_like(calibration[:1]), np.full_like(calibration[:1], 255),
                                      calibration])
    fmt.convert(target, float_model, pspec, quantize, calibration)
    runner = fmt.load(target)
    inputs = served_inputs(warmup, spec)
    want = savedmodel.expected_outputs(keras_model, float_model, pspec, inputs)
    record = {"file": name, "format": fmt.NAME, "quantize": quantize, "bytes": os.path.getsize(target),
              **runner.describe()}
    atol = fmt.TOLERANCE[quantize]
    got = runner(inputs)
    if atol is None:
        savedmodel.check_close(got, want, np.inf, name)  # names and shapes only
    else:
        record["max_abs_diff"] = savedmodel.check_close(got, want, atol, name)
        record["tolerance"] = atol
    if quantize and run is not None:
        record["test"] = _score(run, spec, pspec, float_model, runner)
        _check_drop(record["test"], name, allow_drop)
    return record


def served_inputs(warmup, spec):
    """The warm-up images at the served size (resized as the SavedModel resizes them), as uint8."""
    if spec.input_kind == "features" or tuple(warmup.shape[1:3]) == tuple(spec.image_shape[:2]):
        return warmup
    from zoo.export import graph

    return graph.resize(warmup, spec).numpy().astype(np.uint8)


def split_images(run, spec, split, limit):
    """`(uint8 images [N, H, W, C] at the served size, targets)` of one split of the run's source."""
    import pipelines

    recipe = run.config.get("recipe") or {}
    h, w, c = spec.image_shape
    task = "classification" if spec.task == "sequence" else spec.task
    ds = pipelines.build(run.source, split=split, task=task, image_size=(h, w), channels=c, batch_size=None,
                         normalization="none", shuffle=False, cache=False,
                         val_split=recipe.get("val_split", 0.1))
    images, targets = [], []
    for x, y in ds.take(limit).as_numpy_iterator():
        images.append(np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(h, w, c))
        targets.append(y)
    if not images:
        raise ValueError(f"The run's source {run.source!r} has no {split!r} examples to quantize with.")
    return np.stack(images), targets


def _score(run, spec, pspec, float_model, runner):
    """The metric of the float Keras model and of the converted file on the run's test split."""
    import tensorflow as tf

    from zoo.export import graph

    images, targets = split_images(run, spec, "test", MAX_TEST_IMAGES)
    fn = graph.portable_function(float_model, pspec)
    keras_out = [{k: v.numpy() for k, v in fn(tf.constant(images[i:i + 32])).items()}
                 for i in range(0, len(images), 32)]
    keras_out = {k: np.concatenate([o[k] for o in keras_out]) for k in keras_out[0]}
    metric, float_value = _metric(keras_out, targets, spec)
    if metric is None:
        return {"split": "test", "examples": len(images), "metric": None}
    _, value = _metric(runner(images), targets, spec)
    return {"split": "test", "examples": len(images), "metric": metric,
            "float": round(float_value, 6), "quantized": round(value, 6),
            "drop_points": round(100 * (float_value - value), 4)}


def _metric(out, targets, spec):
    """`(name, value)` from the outputs the file names: accuracy, mean IoU or mAP@0.5 (None: no metric)."""
    if "probabilities" in out and out["probabilities"].ndim == 2:
        return "accuracy", float(np.mean(np.argmax(out["probabilities"], -1) == np.asarray(targets).reshape(-1)))
    if "mask" in out:
        from zoo.tasks.segmentation import metrics

        k = out["probabilities"].shape[-1]
        return "mean_iou", metrics.mean_iou(metrics.confusion_matrix(np.stack(targets), out["mask"], k))
    if "boxes" in out and "scores" in out:
        return "map50", _map50(out, targets, spec)
    return None, None


def _map50(out, targets, spec):
    from zoo.tasks.detection import metrics, nms

    extra = (spec.config.get("recipe") or {}).get("extra") or {}
    predictions = []
    for boxes, scores in zip(out["boxes"], out["scores"]):
        b, s, c = nms.filter_scores(boxes, scores, extra.get("score_threshold", 0.01))
        keep = nms.non_max_suppression(b, s, c, iou_threshold=extra.get("iou_threshold", 0.5),
                                       max_boxes=extra.get("max_detections", 20))
        predictions.append((b[keep], s[keep], c[keep]))
    truth = [(t["boxes"][t["classes"] >= 0], t["classes"][t["classes"] >= 0]) for t in targets]
    return float(metrics.mean_average_precision(predictions, truth, out["scores"].shape[-1])["map50"])


def _check_drop(test, name, allow_drop):
    drop = test.get("drop_points")
    if drop is None or drop <= MAX_DROP:
        return
    message = (f"{name} loses {drop:.2f} points of {test['metric']} on the test split "
               f"({test['float']:.4f} -> {test['quantized']:.4f}; more than {MAX_DROP:g})")
    if not allow_drop:
        raise ValueError(message + "; pass --allow-drop to keep it anyway.")
    warnings.warn(message + " (kept: --allow-drop).", stacklevel=3)
    print(f"zoo: WARNING: {message}; kept because of --allow-drop.")
