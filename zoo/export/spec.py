"""What an export serves: `ExportSpec`, resolved from a run directory, a `.keras` file or a model."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import keras
import numpy as np

from pipelines import normalize as normalize_lib

RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
# pipelines/core.py resizes a folder of mixed-size images with antialias and casts back to uint8.
DEFAULT_RESIZE = {"method": "bilinear", "antialias": True, "to_uint8": True}
CLASSIFIER_TASKS = ("classification", "sequence")  # a [batch, classes] head, labelled by class_names


@dataclasses.dataclass
class ExportSpec:
    """What the serving graph needs to know; written to `assets.extra/export.json`.

    Attributes:
        task: One of `zoo.tasks.names()`.
        model_name: Registry (or Keras) name of the model.
        input_kind: "image" (`[B, H, W, C]` model input), "image_rows" (`[B, H, W*C]`, an
            image read row by row by a sequence model) or "features" (`[B, D]`).
        image_shape: Served image `(H, W, C)` after the in-graph resize (H, W None: any size,
            no resize), or `(D,)` for features.
        normalization: `{"kind": "scale"|"standardize"|"none", "scale": s, "mean": [...],
            "std": [...]}`: inputs are `(x * scale - mean) / std` (x: raw pixel values), as in
            `pipelines.normalize.apply`.
        resize: How an image whose size differs from `image_shape` is resized:
            `{"method", "antialias", "to_uint8"}` (`to_uint8`: truncate back to uint8 before
            normalising). Defaults to the pipeline's resize of folders of mixed-size images.
        class_names: Label names (classification), or None.
        config: The run's `config.json` ({} for a bare model); hooks read their settings here.
        portable: The outputs are for a runtime without TensorFlow's own ops (LiteRT, ONNX):
            `serving_outputs` hooks then leave out what those lack (detection: NMS).
    """

    task: str
    model_name: str
    input_kind: str
    image_shape: tuple
    normalization: dict
    resize: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_RESIZE))
    class_names: Optional[list] = None
    config: dict = dataclasses.field(default_factory=dict)
    portable: bool = False

    @property
    def has_bytes(self):
        """Whether there is a `serving_bytes` signature (images with 1 or 3 channels)."""
        return self.input_kind != "features" and self.image_shape[-1] in (1, 3)

    @property
    def num_classes(self):
        return len(self.class_names) if self.class_names else None

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


def resolve(model_or_run: Any, preprocessing=None, class_names=None, task=None, image_shape=None, metrics=None):
    """`(keras model, ExportSpec, metrics, RunDir or None)` from a run, a .keras file or a model."""
    from zoo.training.rundir import RunDir, load_keras

    run = None
    if isinstance(model_or_run, keras.Model):
        model = model_or_run
    elif isinstance(model_or_run, (str, os.PathLike)):
        path = os.fspath(model_or_run)
        if os.path.isdir(path):
            run = RunDir(path)
            model = run.load_model()
        elif path.endswith(".keras") and os.path.isfile(path):
            model = load_keras(path)
        else:
            raise ValueError(f"{path!r} is neither a run directory nor a .keras file.")
    else:
        raise ValueError(
            f"`model_or_run` must be a keras.Model, a run directory or a .keras file. "
            f"Received: {type(model_or_run).__name__}"
        )
    if len(model.inputs) != 1:
        raise ValueError(f"Model {model.name!r} has {len(model.inputs)} inputs; export supports one image input.")
    config = run.config if run else {}
    spec = _spec(model, config, preprocessing, class_names, task, image_shape)
    return model, spec, metrics if metrics is not None else (run.metrics if run else None), run


def _spec(model, config, preprocessing, class_names, task, image_shape):
    from zoo import tasks

    data = config.get("data") or {}
    task = task or config.get("task") or _registry_task(model.name) or "classification"
    if task not in tasks.names():
        raise ValueError(f"Unknown task {task!r}; allowed: {', '.join(tasks.names())}.")
    input_kind, shape = _input_layout(model, image_shape or data.get("image_shape"))
    pre = preprocessing if preprocessing is not None else data.get("normalization")
    norm = _normalization(pre, channels=shape[-1], image=input_kind != "features")
    resize = _resize_spec((pre.get("resize") if isinstance(pre, dict) else None)
                          or (data.get("extra") or {}).get("resize"))
    if task in CLASSIFIER_TASKS:
        n = _num_classes(model)
        class_names = list(class_names or data.get("class_names") or [str(i) for i in range(n)])
        if len(class_names) != n:
            raise ValueError(f"{len(class_names)} class names for a model with {n} classes: {class_names!r}")
    return ExportSpec(
        task=task,
        model_name=config.get("model") or model.name,
        input_kind=input_kind,
        image_shape=shape,
        normalization=norm,
        resize=resize,
        class_names=[str(c) for c in class_names] if class_names else None,
        config=config,
    )


def _registry_task(name):
    from zoo.registry import _REGISTRY

    return _REGISTRY[name].task if name in _REGISTRY else None


def _normalization(pre, *, channels, image):
    """A validated `{"kind", "scale", "mean", "std"}` record from a kind name or a dict."""
    if pre is None:
        raise ValueError(
            "Export needs the training preprocessing: pass preprocessing='scale', 'standardize' "
            "(with mean/std) or 'none', or export a run directory, which records it."
        )
    pre = {"kind": pre} if isinstance(pre, str) else dict(pre)
    kind = pre.get("kind")
    if kind not in normalize_lib.KINDS:
        raise ValueError(f"Unknown normalization kind {kind!r}; allowed: {', '.join(normalize_lib.KINDS)}.")
    scale = float(pre.get("scale", 1.0 / 255.0 if image else 1.0))
    mean = [float(v) for v in np.ravel(pre.get("mean") or [0.0] * channels)]
    std = [float(v) for v in np.ravel(pre.get("std") or [1.0] * channels)]
    if kind == "standardize" and (pre.get("mean") is None or pre.get("std") is None):
        raise ValueError("normalization 'standardize' needs per-channel 'mean' and 'std' lists.")
    if len(mean) not in (1, channels) or len(std) not in (1, channels) or any(v <= 0 for v in std):
        raise ValueError(
            f"mean/std need 1 or {channels} values and std > 0; got mean={mean}, std={std}."
        )
    if kind == "none":
        scale, mean, std = 1.0, [0.0] * channels, [1.0] * channels
    return {"kind": kind, "scale": scale, "mean": mean, "std": std}


def _resize_spec(resize):
    out = {**DEFAULT_RESIZE, **(resize or {})}
    if out["method"] not in RESIZE_METHODS:
        raise ValueError(f"Unknown resize method {out['method']!r}; allowed: {', '.join(RESIZE_METHODS)}.")
    if set(out) != set(DEFAULT_RESIZE):
        raise ValueError(f"Unknown resize keys {sorted(set(out) - set(DEFAULT_RESIZE))}; allowed: {sorted(DEFAULT_RESIZE)}.")
    return out


def _input_layout(model, image_shape):
    """("image" | "image_rows" | "features", served shape) from the model input and the data spec."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) == 3:
        h, w, c = shape
        if c is None:
            raise ValueError(f"Model {model.name!r} has an unknown channel count; cannot export.")
        if image_shape is not None:
            ih, iw, ic = (tuple(image_shape) + (c,))[:3]
            if ic != c:
                raise ValueError(f"image_shape {tuple(image_shape)} has {ic} channels; the model takes {c}.")
            h, w = (h or ih), (w or iw)
        return "image", (h, w, c)
    if len(shape) == 2:  # a sequence model reading an image row by row
        t, f = shape
        c = int(image_shape[2]) if image_shape is not None and len(image_shape) == 3 else 1
        if t is None or f is None or f % c:
            raise ValueError(f"Cannot serve sequence input {shape} as images with {c} channel(s).")
        return "image_rows", (t, f // c, c)
    if len(shape) == 1 and shape[0] is not None:
        return "features", (shape[0],)
    raise ValueError(f"Unsupported model input shape {shape} for export.")


def _num_classes(model):
    n = model.outputs[0].shape[-1]
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2 or n is None:
        raise ValueError(
            f"A classification export needs one [batch, classes] output; model {model.name!r} "
            f"returns {[tuple(o.shape) for o in model.outputs]}."
        )
    return 2 if n == 1 else int(n)
