"""The serving graph: in-graph resize and normalisation around a float32 Keras model, named outputs.

Every op here has a mapping in tf2onnx and the LiteRT converter: the antialiased bilinear resize
(TensorFlow's `ScaleAndTranslate`, which neither converts) is two matrix products with the same
triangle-kernel weights.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pipelines import normalize as normalize_lib
from zoo.export.spec import ExportSpec


def float32_model(model):
    """The model rebuilt under float32 (weights copied) when any layer uses a mixed precision policy."""
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


class L2Normalize(keras.layers.Layer):
    """`keras.layers.UnitNormalization` written as `tf.math.l2_normalize` (same values: `x * rsqrt(max(sum x^2,
    1e-24))`), which the LiteRT converter fuses to its L2_NORMALIZATION op; UnitNormalization's
    `x * min(rsqrt(sum x^2), 1e12)` stays five ops that do not quantize well."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return tf.math.l2_normalize(x, axis=self.axis, epsilon=1e-24)


def l2_normalize_layers(model):
    """`model` with every `UnitNormalization` replaced by `L2Normalize` (other layers shared), or `model`
    itself when it has none."""
    if not any(isinstance(layer, keras.layers.UnitNormalization) for layer in model._flatten_layers()):
        return model

    def swap(layer):
        if isinstance(layer, keras.layers.UnitNormalization):
            return L2Normalize(layer.axis, dtype=layer.dtype_policy, name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=swap, recursive=True)


def triangle_weights(in_size, out_size):
    """`[out, in]` float32 weights of `tf.image.resize(..., "bilinear", antialias=True)` along one axis.

    As `ScaleAndTranslate` computes them: sample at `(x + 0.5) / scale`, triangle kernel widened
    by `1 / scale` when downsampling, each row normalised to sum 1 (which also clamps at the edges).
    """
    in_f, out_f = tf.cast(in_size, tf.float32), tf.cast(out_size, tf.float32)
    inv_scale = 1.0 / (out_f / in_f)
    inv_kernel_scale = 1.0 / tf.maximum(inv_scale, 1.0)
    sample = (tf.range(out_f) + 0.5) * inv_scale
    pos = tf.range(in_f)[None, :] + 0.5 - sample[:, None]
    w = tf.maximum(0.0, 1.0 - tf.abs(pos * inv_kernel_scale))
    return w * (1.0 / tf.reduce_sum(w, axis=1, keepdims=True))  # as the op: times the reciprocal


def _antialiased_bilinear(images, size):
    """`[B, h, w, C]` float -> `[B, H, W, C]`: rows then columns, as plain 2-D matrix products (a broadcast
    batched matmul converted to ONNX gave wrong results past the first image)."""
    shape = tf.shape(images)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    wh, ww = triangle_weights(h, size[0]), triangle_weights(w, size[1])
    x = tf.reshape(tf.transpose(images, [1, 0, 2, 3]), [h, -1])  # [h, B*w*C]
    x = tf.reshape(tf.matmul(wh, x), [size[0], b, w, c])
    x = tf.reshape(tf.transpose(x, [2, 1, 0, 3]), [w, -1])  # [w, B*H*C]
    x = tf.reshape(tf.matmul(ww, x), [size[1], b, size[0], c])
    return tf.transpose(x, [1, 2, 0, 3])


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
        x = tf.cast(images, tf.float32)
        batch = x if len(images.shape) == 4 else x[None]
        if r["method"] == "bilinear" and r["antialias"]:
            out = _antialiased_bilinear(batch, (h, w))
        else:
            out = tf.image.resize(batch, size, method=r["method"], antialias=r["antialias"])
        out = out if len(images.shape) == 4 else out[0]
        if r["to_uint8"]:
            out = tf.cast(tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8), tf.float32)
        return out

    same = tf.reduce_all(tf.equal(tf.shape(images)[-3:-1], size))
    x = tf.cond(same, lambda: tf.cast(images, tf.float32), resized)
    return tf.ensure_shape(x, [None] * (len(images.shape) - 3) + [h, w, c])


def normalize(x, spec: ExportSpec):
    """float32 raw values -> the model's input: `pipelines.normalize.apply`, rows for a sequence model."""
    x = normalize_lib.apply(x, spec.normalization)
    if spec.input_kind == "image_rows":
        h, w, c = spec.image_shape
        x = tf.reshape(x, [-1, h, w * c])
    return x


def preprocess(images, spec: ExportSpec):
    """A uint8 batch `[B, h, w, C]` (float32 `[B, D]` features) -> the model's input."""
    if spec.input_kind == "features":
        return normalize(tf.cast(images, tf.float32), spec)
    return normalize(resize(images, spec), spec)


def raw_outputs(model, outputs, spec=None):
    """The model's outputs as `raw_output` (`raw_<key>`, `raw_output_<i>`), floats as float32."""
    if isinstance(outputs, dict):
        return {f"raw_{k}": tf.cast(v, tf.float32) if v.dtype.is_floating else v for k, v in outputs.items()}
    flat = tf.nest.flatten(outputs)
    cast = [tf.cast(v, tf.float32) if v.dtype.is_floating else v for v in flat]
    if len(cast) == 1:
        return {"raw_output": cast[0]}
    return {f"raw_output_{i}": v for i, v in enumerate(cast)}


def output_fn(spec):
    """The task's `serving_outputs` hook, else the raw outputs."""
    from zoo import tasks

    hook = getattr(tasks.get_task(spec.task), "serving_outputs", None) if spec.task in tasks.names() else None
    return hook or raw_outputs


def _check_shape(x, shape, name):
    """Runtime shape check (a loaded signature does not check shapes itself): a wrong rank or
    channel count fails with "Shape of tensor NAME [...] is not compatible with expected shape"."""
    return tf.ensure_shape(x, shape, name=f"check_{name}")


def named_outputs(model, spec, x):
    """`{name: tensor}` of the (float32) model on its preprocessed input `x`, via the task's hook."""
    named = output_fn(spec)(model, model(x, training=False), spec)
    if not isinstance(named, dict) or not named:
        raise ValueError(f"serving_outputs for task {spec.task!r} must return a non-empty dict of tensors.")
    return {k: tf.convert_to_tensor(v) for k, v in named.items()}


class ServingModule:
    """The signature functions around a (float32) Keras model.

    Both image signatures call one `infer` function (model + named outputs), so the model's graph
    is traced and stored once. No autograph: hooks and preprocessing use graph ops only.
    """

    def __init__(self, model, spec):
        self.model, self.spec = model, spec
        x_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
        self.infer = tf.function(lambda x: named_outputs(self.model, self.spec, x), input_signature=[x_spec],
                                 autograph=False)

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
        def concrete(fn, *specs):
            return tf.function(fn, input_signature=list(specs), autograph=False).get_concrete_function()

        if self.spec.input_kind == "features":
            return {"serving_default": concrete(
                self.serve_features, tf.TensorSpec([None, self.spec.image_shape[0]], tf.float32, name="features"))}
        images = tf.TensorSpec([None, None, None, self.spec.image_shape[-1]], tf.uint8, name="images")
        sigs = {"serving_default": concrete(self.serve_images, images)}
        if self.spec.has_bytes:
            sigs["serving_bytes"] = concrete(self.serve_bytes, tf.TensorSpec([None], tf.string, name="image_bytes"))
        return sigs

    def save(self, path, signatures=None):
        root = tf.Module()
        root.model_variables = list(self.model.variables)  # only the variables: saving the Keras object is slower
        tf.saved_model.save(root, path, signatures=signatures or self.signatures())


def portable_function(model, spec: ExportSpec, *, float_input=False, batch=None):
    """The graph LiteRT and ONNX files hold: images at the served size -> normalise -> model -> outputs.

    Args:
        model: The float32 Keras model.
        spec: Its ExportSpec (`portable` set, so hooks leave out ops the runtimes lack).
        float_input: Take float32 pixel values (0..255) instead of uint8 (for the int8 LiteRT
            converter, which then quantizes the input to uint8 with scale 1, zero point 0).
        batch: A fixed batch size (LiteRT: 1, which also gives recurrent layers the static shapes
            its converter needs), or None.

    Returns:
        A `tf.function` with one input, `images` uint8 (or float32) `[batch, H, W, C]`
        (`features` float32 `[batch, D]` for feature-vector models).
    """
    if spec.input_kind == "features":
        sig = tf.TensorSpec([batch, spec.image_shape[0]], tf.float32, name="features")
    else:
        sig = tf.TensorSpec([batch, *spec.image_shape], tf.float32 if float_input else tf.uint8, name="images")

    def serve(x):
        return named_outputs(model, spec, normalize(tf.cast(x, tf.float32), spec))

    return tf.function(serve, input_signature=[sig], autograph=False)
