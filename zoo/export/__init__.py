"""Export a trained model: a TF Serving SavedModel, plus a LiteRT or ONNX file beside it.

    >>> zoo.export("runs/lenet5", "saved_models/lenet5")                     # a run directory
    saved_models/lenet5/1
    >>> zoo.export("runs/mnv2", "saved_models/mnv2", format="tflite", quantize="int8")
    saved_models/mnv2/2                                                       # .../2/model_int8.tflite
    >>> zoo.export(model, "saved_models/m", preprocessing="scale", class_names=["cat", "dog"])

`BASE/<version>/` always holds the SavedModel with two signatures that share their named outputs:

* `serving_default`: `images`, uint8 `[None, H, W, C]` (any H, W: resized in the graph to the
  model's size), preprocessed exactly as in training (`/255`, or `(x/255 - mean) / std`).
* `serving_bytes`: `image_bytes`, a string `[None]` batch of encoded JPEG/PNG/BMP/GIF files,
  decoded in the graph.

Outputs are what the task's `serving_outputs` hook returns (see `zoo.tasks.Task`: `probabilities`
and `classes` for classification), else the model's raw outputs as `raw_output`. `assets.extra/`
holds `labels.txt`, `export.json` (input spec, preprocessing, outputs, the extra file and its
checks), `metrics.json` (the run's) and `tf_serving_warmup_requests`. Models whose input is a
feature vector get one `serving_default` signature taking float32 `features` `[None, D]`.

Formats (`FORMATS`; a new one is a module with `QUANTIZE`, `TOLERANCE`, `file_name`, `convert` and
`load`, plus its line here): "savedmodel" (only the above), "tflite" (LiteRT) and "onnx".
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Optional

import numpy as np

from zoo.export import graph, onnx, portable, savedmodel, tflite
from zoo.export import spec as spec_lib
from zoo.export.graph import normalize, preprocess, resize  # noqa: F401  (public helpers)
from zoo.export.savedmodel import ASSETS, WARMUP_FILE, encode_png  # noqa: F401
from zoo.export.spec import CLASSIFIER_TASKS, DEFAULT_RESIZE, RESIZE_METHODS, ExportSpec  # noqa: F401

FORMATS = {"savedmodel": None, "tflite": tflite, "onnx": onnx}  # None: the SavedModel alone


def check_format(format, quantize):
    """Raises ValueError (one line, naming what is allowed) for an unknown format or quantization."""
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; allowed: {', '.join(FORMATS)}.")
    allowed = FORMATS[format].QUANTIZE if FORMATS[format] else ()
    if quantize is not None and quantize not in allowed:
        raise ValueError(
            f"--quantize {quantize} is not available for --format {format}; "
            + (f"allowed: {', '.join(allowed)}." if allowed else "it takes no --quantize.")
        )


def export(
    model_or_run: Any,
    base_dir: str,
    version: Optional[int] = None,
    *,
    format: str = "savedmodel",
    quantize: Optional[str] = None,
    allow_drop: bool = False,
    preprocessing: Any = None,
    class_names: Optional[list] = None,
    task: Optional[str] = None,
    image_shape: Optional[tuple] = None,
    metrics: Optional[dict] = None,
    warmup_images: Optional[np.ndarray] = None,
    verbose: bool = True,
) -> str:
    """Writes `base_dir/<version>/` as TF Serving expects and returns its path.

    The version is written to a hidden temporary folder inside `base_dir`, loaded back and run on
    the warm-up images (outputs checked against the Keras model), and only then renamed to its
    version number, so a server watching `base_dir` never sees a partial version.

    Args:
        model_or_run: A run directory (with `model.keras` and `config.json`), a `.keras` file
            or a `keras.Model`.
        base_dir: The model's folder (e.g. `saved_models/lenet5`); created if missing.
        version: Positive integer version; defaults to one more than the highest present.
            An existing version is never overwritten.
        format: "savedmodel", "tflite" or "onnx" (the latter two also write the SavedModel).
        quantize: "float16", "dynamic" or "int8" (tflite); "int8" (onnx). int8 is calibrated on
            the run's train split and scored on its test split (a run directory is needed).
        allow_drop: Keep an int8 export that loses more than 1 point (with a warning).
        preprocessing: For a model or `.keras` file (a run records its own): a normalization
            kind ("scale", "standardize", "none") or a dict `{"kind", "scale", "mean", "std"}`
            (a `DataSpec.normalization`; "scale" defaults to 1/255 for images), optionally
            with "resize" (see `ExportSpec`).
        class_names: Label names (classification); defaults to the run's, else "0", "1", ...
        task: Defaults to the run's task, else the registry's task for `model.name`, else
            "classification".
        image_shape: Served `(H, W, C)`; defaults to the run's data shape, else the model input.
        metrics: Metrics to store in `assets.extra/metrics.json`; defaults to the run's.
        warmup_images: uint8 `[N, H, W, C]` images for the warm-up requests and the
            verification; defaults to a fixed synthetic pattern.
        verbose: Print the version directory.

    Returns:
        The version directory.

    Raises:
        ValueError: Bad arguments, an existing version, or an export that does not reproduce
            the Keras model (or, quantized, loses more than 1 point without `allow_drop`).
    """
    check_format(format, quantize)
    model, spec, metrics, run = spec_lib.resolve(model_or_run, preprocessing, class_names, task, image_shape,
                                                    metrics)
    base_dir = os.fspath(base_dir)
    requested, version = version, savedmodel.pick_version(base_dir, version)
    float_model = graph.float32_model(model)
    warmup = savedmodel.warmup_inputs(spec, warmup_images)
    if FORMATS[format] is not None:
        portable.check_exportable(FORMATS[format], spec, quantize, run, model)
    with savedmodel.staged_version(base_dir, version, next_free=requested is None) as tmp:
        info = savedmodel.write(tmp, model, float_model, spec, metrics, warmup,
                                os.path.basename(os.path.normpath(base_dir)))
        if FORMATS[format] is not None:
            info["files"] = [portable.write(FORMATS[format], tmp, model, float_model, spec, quantize, warmup, run,
                                            allow_drop=allow_drop)]
            savedmodel.write_info(tmp, info)
    final = tmp.final  # another version if a concurrent export took this one
    if verbose:
        print(final)
    return final


class _CallableModule(types.ModuleType):
    """`zoo.export(...)` calls `export`; `zoo.export.ExportSpec` etc. stay reachable."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
