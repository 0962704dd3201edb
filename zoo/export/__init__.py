"""Export a trained model as a SavedModel that TF Serving (or plain TensorFlow) runs.

    >>> zoo.export("runs/lenet5", "saved_models/lenet5")       # a run directory
    saved_models/lenet5/1
    >>> zoo.export(model, "saved_models/m", preprocessing="scale", class_names=["cat", "dog"])

`BASE/<version>/` holds the SavedModel with two signatures that share their named outputs:

* `serving_default`: `images`, uint8 `[None, H, W, C]` (any H, W: resized in the graph to the
  model's size), preprocessed exactly as in training (`/255`, or `(x/255 - mean) / std`).
* `serving_bytes`: `image_bytes`, a string `[None]` batch of encoded JPEG/PNG/BMP/GIF files,
  decoded in the graph.

Outputs: `probabilities` and `classes` for classification; for other tasks whatever the task's
`serving_outputs` hook returns (see `zoo.tasks.Task`), else the model's raw outputs as `raw_output`.
`assets.extra/` holds `labels.txt`, `export.json` (input spec, preprocessing, outputs),
`metrics.json` (the run's) and `tf_serving_warmup_requests`. Models whose input is a feature
vector get one `serving_default` signature taking float32 `features` `[None, D]`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import types
from typing import Any, Optional

import numpy as np
import tensorflow as tf
import keras

NORMALIZATIONS = ("scale", "standardize", "none")
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
CLASSIFIER_TASKS = ("classification", "sequence")  # a [batch, classes] head
# pipelines/core.py resizes a folder of mixed-size images with antialias and casts back to uint8.
DEFAULT_RESIZE = {"method": "bilinear", "antialias": True, "to_uint8": True}
ASSETS = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


@dataclasses.dataclass
class ExportSpec:
    """What the serving graph needs to know; written to `assets.extra/export.json`.

    Attributes:
        task: One of `zoo.registry.TASKS`.
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
    """

    task: str
    model_name: str
    input_kind: str
    image_shape: tuple
    normalization: dict
    resize: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_RESIZE))
    class_names: Optional[list] = None
    config: dict = dataclasses.field(default_factory=dict)

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


def export(
    model_or_run: Any,
    base_dir: str,
    version: Optional[int] = None,
    *,
    preprocessing: Any = None,
    class_names: Optional[list] = None,
    task: Optional[str] = None,
    image_shape: Optional[tuple] = None,
    metrics: Optional[dict] = None,
    warmup_images: Optional[np.ndarray] = None,
    verbose: bool = True,
) -> str:
    """Writes `base_dir/<version>/` as TF Serving expects and returns its path.

    The SavedModel is written to a hidden temporary folder inside `base_dir`, loaded back and
    run on the warm-up images (outputs checked against the Keras model), and only then renamed
    to its version number, so a server watching `base_dir` never sees a partial version.

    Args:
        model_or_run: A run directory (with `model.keras` and `config.json`), a `.keras` file
            or a `keras.Model`.
        base_dir: The model's folder (e.g. `saved_models/lenet5`); created if missing.
        version: Positive integer version; defaults to one more than the highest present.
            An existing version is never overwritten.
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
        ValueError: Bad arguments, an existing version, or a SavedModel that does not
            reproduce the Keras model.
    """
    model, spec, metrics = _resolve(model_or_run, preprocessing, class_names, task, image_shape, metrics)
    base_dir = os.fspath(base_dir)
    version = _pick_version(base_dir, version)
    final = os.path.join(base_dir, str(version))
    serving_model = _float32_model(model)
    module = _ServingModule(serving_model, spec)
    warmup = _warmup_inputs(spec, warmup_images)

    os.makedirs(base_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_dir)
    try:
        module.save(tmp)
        _write_assets(tmp, spec, metrics, warmup, os.path.basename(os.path.normpath(base_dir)))
        outputs = _verify(tmp, model, module, spec, warmup)
        _add_outputs_to_info(tmp, outputs)
        if os.path.exists(final):
            raise ValueError(f"Version {version} appeared at {final!r} during export; not overwriting it.")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if verbose:
        print(final)
    return final


# ----------------------------------------------------------------------------- inputs


def _resolve(model_or_run, preprocessing, class_names, task, image_shape, metrics):
    """The Keras model, its ExportSpec and metrics from a run, a .keras file or a model."""
    from zoo.training import rundir

    config, run_metrics = {}, None
    if isinstance(model_or_run, keras.Model):
        model = model_or_run
    elif isinstance(model_or_run, (str, os.PathLike)):
        path = os.fspath(model_or_run)
        if os.path.isdir(path):
            run = rundir.RunDir(path)
            config, run_metrics, model = run.config, run.metrics, run.load_model()
        elif path.endswith(".keras") and os.path.isfile(path):
            model = rundir.load_keras(path)
        else:
            raise ValueError(f"{path!r} is neither a run directory nor a .keras file.")
    else:
        raise ValueError(
            f"`model_or_run` must be a keras.Model, a run directory or a .keras file. "
            f"Received: {type(model_or_run).__name__}"
        )
    if len(model.inputs) != 1:
        raise ValueError(f"Model {model.name!r} has {len(model.inputs)} inputs; export supports one image input.")

    data = config.get("data") or {}
    task = task or config.get("task") or _registry_task(model.name) or "classification"
    from zoo import tasks

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
    spec = ExportSpec(
        task=task,
        model_name=config.get("model") or model.name,
        input_kind=input_kind,
        image_shape=shape,
        normalization=norm,
        resize=resize,
        class_names=[str(c) for c in class_names] if class_names else None,
        config=config,
    )
    return model, spec, metrics if metrics is not None else run_metrics


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
    if kind not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization kind {kind!r}; allowed: {', '.join(NORMALIZATIONS)}.")
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


def _pick_version(base_dir, version):
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"{base_dir!r} is a file; the export base must be a folder (e.g. saved_models/NAME).")
    present = []
    if os.path.isdir(base_dir):
        present = [int(d) for d in os.listdir(base_dir) if d.isdigit()]
    if version is None:
        return max(present, default=0) + 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    if int(version) in present or os.path.exists(os.path.join(base_dir, str(version))):
        raise ValueError(
            f"Version {version} already exists in {base_dir!r}; versions are never overwritten. "
            f"Next free version: {max(present, default=0) + 1}."
        )
    return int(version)


# ----------------------------------------------------------------------------- the graph


def _float32_model(model):
    """The model rebuilt under float32 when any layer uses a mixed precision policy."""
    if all(not layer.dtype_policy.name.startswith("mixed") for layer in model._flatten_layers()):
        return model

    def retype(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") == "DTypePolicy" and str(obj.get("config", {}).get("name", "")).startswith("mixed"):
                return {**obj, "config": {**obj["config"], "name": "float32"}}
            return {k: retype(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [retype(v) for v in obj]
        return obj

    clone = keras.saving.deserialize_keras_object(retype(keras.saving.serialize_keras_object(model)))
    clone.set_weights(model.get_weights())
    return clone


def resize(images, spec: ExportSpec):
    """uint8/float pixels `[h, w, C]` or `[B, h, w, C]` -> float32 at the served size.

    Skips the resize when the size already matches, like the training pipeline.
    """
    h, w, c = spec.image_shape
    if h is None or w is None:
        return tf.cast(images, tf.float32)
    size = tf.constant([h, w], tf.int32)
    r = spec.resize

    def resized():
        out = tf.image.resize(images, size, method=r["method"], antialias=r["antialias"])
        if r["to_uint8"]:
            out = tf.cast(tf.cast(out, tf.uint8), tf.float32)
        return out

    same = tf.reduce_all(tf.equal(tf.shape(images)[-3:-1], size))
    x = tf.cond(same, lambda: tf.cast(images, tf.float32), resized)
    return tf.ensure_shape(x, [None] * (len(images.shape) - 3) + [h, w, c])


def normalize(x, spec: ExportSpec):
    """float32 raw values -> the model's input: `(x * scale - mean) / std`, as in training."""
    norm = spec.normalization
    if norm["kind"] != "none":
        x = x * norm["scale"]
    if norm["kind"] == "standardize":
        x = (x - tf.constant(norm["mean"], tf.float32)) / tf.constant(norm["std"], tf.float32)
    if spec.input_kind == "image_rows":
        h, w, c = spec.image_shape
        x = tf.reshape(x, [-1, h, w * c])
    return x


def preprocess(images, spec: ExportSpec):
    """A uint8 batch `[B, h, w, C]` (float32 `[B, D]` features) -> the model's input."""
    if spec.input_kind == "features":
        return normalize(tf.cast(images, tf.float32), spec)
    return normalize(resize(images, spec), spec)


def classification_outputs(model, outputs, spec):
    """`probabilities` [B, classes] float32 and `classes` [B] int64 (argmax)."""
    out = tf.cast(outputs, tf.float32)
    activation = getattr(_output_layer(model), "activation", None)
    name = getattr(activation, "__name__", "")
    if out.shape[-1] == 1:  # binary: one sigmoid (or logit) unit
        p = out if name == "sigmoid" else tf.sigmoid(out)
        probs = tf.concat([1.0 - p, p], axis=-1)
    elif name in ("softmax", "sigmoid"):
        probs = out
    else:  # logits
        probs = tf.nn.softmax(out, axis=-1)
    return {"probabilities": probs, "classes": tf.argmax(probs, axis=-1)}


def _output_layer(model):
    history = getattr(model.outputs[0], "_keras_history", None)
    return history[0] if history else None


def _raw_outputs(outputs):
    if isinstance(outputs, dict):
        return {f"raw_{k}": tf.cast(v, tf.float32) if v.dtype.is_floating else v for k, v in outputs.items()}
    flat = tf.nest.flatten(outputs)
    cast = [tf.cast(v, tf.float32) if v.dtype.is_floating else v for v in flat]
    if len(cast) == 1:
        return {"raw_output": cast[0]}
    return {f"raw_output_{i}": v for i, v in enumerate(cast)}


def _output_fn(spec):
    """The task's `serving_outputs` hook, the built-in classification head, or raw outputs."""
    from zoo import tasks

    hook = getattr(tasks.get_task(spec.task) if spec.task in tasks.names() else None, "serving_outputs", None)
    if hook is not None:
        return hook
    if spec.task in CLASSIFIER_TASKS:
        return classification_outputs
    return lambda model, outputs, spec: _raw_outputs(outputs)


def _check_shape(x, shape, name):
    """Runtime shape check (a loaded signature does not check shapes itself): a wrong rank or
    channel count fails with "Shape of tensor NAME [...] is not compatible with expected shape"."""
    return tf.ensure_shape(x, shape, name=f"check_{name}")


class _ServingModule:
    """The signature functions around a (float32) Keras model.

    Both signatures call one `infer` function (model + named outputs), so the model's graph is
    traced and stored once. No autograph: hooks and preprocessing use graph ops only.
    """

    def __init__(self, model, spec):
        self.model, self.spec = model, spec
        self.outputs_fn = _output_fn(spec)
        x_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
        self.infer = tf.function(self._serve, input_signature=[x_spec], autograph=False)

    def _serve(self, x):
        outputs = self.model(x, training=False)
        named = self.outputs_fn(self.model, outputs, self.spec)
        if not isinstance(named, dict) or not named:
            raise ValueError(f"serving_outputs for task {self.spec.task!r} must return a non-empty dict of tensors.")
        return dict(named)

    def serve_images(self, images):
        images = _check_shape(images, [None, None, None, self.spec.image_shape[-1]], "images")
        return self.infer(preprocess(images, self.spec))

    def serve_bytes(self, image_bytes):
        h, w, c = self.spec.image_shape
        image_bytes = _check_shape(image_bytes, [None], "image_bytes")

        def decode(b):  # as pipelines.sources.images.decode: RGB, then grayscale if needed
            img = tf.io.decode_image(b, channels=3, expand_animations=False)
            if c == 1:
                img = tf.image.rgb_to_grayscale(img)
            return resize(tf.ensure_shape(img, [None, None, c]), self.spec)

        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([h, w, c], tf.float32))
        return self.infer(normalize(images, self.spec))

    def serve_features(self, features):
        features = _check_shape(features, [None, self.spec.image_shape[0]], "features")
        return self.infer(preprocess(features, self.spec))

    def signatures(self):
        """{signature name: concrete function}."""
        if self.spec.input_kind == "features":
            sig = tf.TensorSpec([None, self.spec.image_shape[0]], tf.float32, name="features")
            return {"serving_default": tf.function(self.serve_features, input_signature=[sig], autograph=False).get_concrete_function()}
        images = tf.TensorSpec([None, None, None, self.spec.image_shape[-1]], tf.uint8, name="images")
        sigs = {"serving_default": tf.function(self.serve_images, input_signature=[images], autograph=False).get_concrete_function()}
        if self.spec.has_bytes:
            image_bytes = tf.TensorSpec([None], tf.string, name="image_bytes")
            sigs["serving_bytes"] = tf.function(self.serve_bytes, input_signature=[image_bytes], autograph=False).get_concrete_function()
        return sigs

    def save(self, path):
        root = tf.Module()
        root.model_variables = list(self.model.variables)  # only the variables: saving the Keras object is slower
        tf.saved_model.save(root, path, signatures=self.signatures())


# ----------------------------------------------------------------------------- assets, warm-up, checks


def _warmup_inputs(spec, images):
    """uint8 `[N, H, W, C]` images (float32 `[N, D]` for features) used for warm-up and checks."""
    if spec.input_kind == "features":
        if images is not None:
            return np.asarray(images, np.float32)
        return np.random.default_rng(0).normal(size=(2,) + tuple(spec.image_shape)).astype(np.float32)
    if images is not None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != spec.image_shape[-1]:
            raise ValueError(
                f"`warmup_images` must be uint8 [N, H, W, {spec.image_shape[-1]}]; "
                f"got {images.dtype} {images.shape}."
            )
        return images
    h, w, c = [d or 32 for d in spec.image_shape]
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 7 % 256)], -1)
    noise = np.random.default_rng(0).integers(0, 256, size=(h, w, 3))
    imgs = np.stack([base, noise])[..., :c] if c <= 3 else np.random.default_rng(1).integers(0, 256, (2, h, w, c))
    return imgs.astype(np.uint8)


def encode_png(image):
    """PNG bytes of one uint8 `[H, W, C]` image."""
    return tf.io.encode_png(tf.constant(image)).numpy()


def _request_inputs(spec, warmup):
    """{signature: {input name: numpy array}} for the warm-up requests and checks."""
    if spec.input_kind == "features":
        return {"serving_default": {"features": warmup}}
    requests = {"serving_default": {"images": warmup}}
    if spec.has_bytes:
        requests["serving_bytes"] = {"image_bytes": np.array([encode_png(im) for im in warmup], dtype=object)}
    return requests


def _write_assets(path, spec, metrics, warmup, model_name):
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    extra = os.path.join(path, ASSETS)
    os.makedirs(extra, exist_ok=True)
    if spec.class_names:
        with open(os.path.join(extra, "labels.txt"), "w") as f:
            f.write("\n".join(spec.class_names) + "\n")
    info = spec.to_dict()
    info["signatures"] = _describe_signatures(spec)
    with open(os.path.join(extra, "export.json"), "w") as f:
        json.dump(info, f, indent=2, default=str)
    with open(os.path.join(extra, "metrics.json"), "w") as f:
        json.dump(metrics or {}, f, indent=2, default=str)
    with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
        for signature, inputs in _request_inputs(spec, warmup).items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _describe_signatures(spec):
    if spec.input_kind == "features":
        return {"serving_default": {"features": {"dtype": "float32", "shape": [None, spec.image_shape[0]]}}}
    sigs = {"serving_default": {"images": {"dtype": "uint8", "shape": [None, None, None, spec.image_shape[-1]]}}}
    if spec.has_bytes:
        sigs["serving_bytes"] = {"image_bytes": {"dtype": "string", "shape": [None]}}
    return sigs


def _verify(path, keras_model, module, spec, warmup):
    """Loads the SavedModel back and checks every signature against the Keras model."""
    loaded = tf.saved_model.load(path)
    requests = _request_inputs(spec, warmup)
    x = preprocess(tf.constant(warmup), spec)
    expected = module.outputs_fn(module.model, keras_model(x, training=False), spec)
    mixed = module.model is not keras_model
    atol = 5e-2 if mixed else 1e-4
    specs = {}
    for signature, inputs in requests.items():
        got = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        if set(got) != set(expected):
            raise ValueError(f"{signature} returns {sorted(got)}, expected {sorted(expected)}.")
        for name, want in expected.items():
            a, b = np.asarray(got[name]), np.asarray(want)
            sig_out = loaded.signatures[signature].structured_outputs[name]
            specs[name] = {"dtype": sig_out.dtype.name, "shape": sig_out.shape.as_list()}
            if a.shape != b.shape or (
                a.dtype.kind == "f" and not np.allclose(a, b.astype(a.dtype), atol=atol, rtol=atol)
            ):
                raise ValueError(
                    f"Export check failed: {signature} output {name!r} differs from the Keras model "
                    f"(shape {a.shape} vs {b.shape}, max abs diff "
                    f"{np.max(np.abs(a - b)) if a.shape == b.shape else 'n/a'})."
                )
    return specs


def _add_outputs_to_info(path, outputs):
    info_file = os.path.join(path, ASSETS, "export.json")
    with open(info_file) as f:
        info = json.load(f)
    info["outputs"] = outputs
    with open(info_file, "w") as f:
        json.dump(info, f, indent=2, default=str)


class _CallableModule(types.ModuleType):
    """`zoo.export(...)` calls `export`; `zoo.export.ExportSpec` etc. stay reachable."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
