"""New heads on pretrained backbones: the classifier swap and the fixed input adapters in front of it.

`with_new_head` cuts a backbone at its feature layer and puts `head_pool`, `head_dropout` and a float32
`predictions` on top; where the new data's shape or pixel range differs from the backbone's, frozen adapter
layers (`input_resize`, `input_channels`, `input_preprocess`) map it, so the saved model takes [0, 1] inputs.
"""

from __future__ import annotations

import difflib

import keras
import numpy as np

from zoo import contract
from zoo.transfer.sources import load_pretrained

PREPROCESS_MODES = ("scale", "tf", "torch", "caffe", "raw")
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
_IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def preprocess_affine(preprocess, channels=3):
    """`(kernel, bias)` of the per-pixel map from [0, 1] pixels to what a backbone expects.

    Args:
        preprocess: "scale" (identity: zoo models trained on [0, 1] inputs), "tf" ([-1, 1]), "torch"
            (ImageNet mean/std), "caffe" (BGR, 0-255 minus the ImageNet mean), "raw" (0-255, for models that
            normalise inside, e.g. EfficientNet), or a zoo DataSpec normalisation record
            `{"kind", "scale", "mean", "std"}` (inputs `(x * scale - mean) / std`, x in 0-255).
        channels: Number of channels.

    Returns:
        `(kernel [C, C], bias [C])` with `y = x @ kernel + bias`, or None for the identity.
    """
    eye = np.eye(channels)
    if isinstance(preprocess, dict):
        kind = preprocess.get("kind")
        if kind == "none":
            return eye * 255.0, np.zeros(channels)
        if kind not in ("scale", "standardize"):
            raise ValueError(f"Unknown normalization kind {kind!r}; allowed: 'scale', 'standardize', 'none'.")
        scale = 255.0 * float(preprocess.get("scale", 1 / 255))
        mean = np.broadcast_to(np.asarray(preprocess.get("mean", 0.0), float), (channels,))
        std = np.broadcast_to(np.asarray(preprocess.get("std", 1.0), float), (channels,))
        if kind == "scale" and abs(scale - 1.0) < 1e-6:
            return None
        if kind == "scale":
            mean, std = np.zeros(channels), np.ones(channels)
        return eye * (scale / std), -mean / std
    if preprocess in (None, "scale"):
        return None
    if preprocess == "raw":
        return eye * 255.0, np.zeros(channels)
    if preprocess == "tf":
        return eye * 2.0, -np.ones(channels)
    if channels != 3 and preprocess in ("torch", "caffe"):
        raise ValueError(f"Preprocessing {preprocess!r} needs 3 channels; got {channels}.")
    if preprocess == "torch":
        return np.diag(1.0 / _IMAGENET_STD), -_IMAGENET_MEAN / _IMAGENET_STD
    if preprocess == "caffe":  # y[c] = 255 * x[2 - c] - mean_bgr[c]
        return np.fliplr(eye) * 255.0, -np.array([103.939, 116.779, 123.68])
    close = difflib.get_close_matches(str(preprocess), PREPROCESS_MODES, n=1)
    raise ValueError(
        f"Unknown preprocess {preprocess!r}; allowed: {', '.join(PREPROCESS_MODES)} or a normalization dict."
        + (f" Did you mean {close[0]!r}?" if close else "")
    )


def _fixed_affine(x, kernel, bias, name):
    """A frozen float32 Dense over the channel axis: a per-pixel affine map that saves with the model."""
    layer = keras.layers.Dense(kernel.shape[1], trainable=False, dtype="float32", name=name)
    y = layer(x)
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return y


def _producer(tensor):
    op, node_index, _ = tensor._keras_history
    return op, op._inbound_nodes[node_index]


def _features(model, feature_layer):
    """The feature tensor of `model`: the input of its classifier, or its output if it has none."""
    if feature_layer is not None:
        names = [layer.name for layer in model.layers]
        if feature_layer not in names:
            close = difflib.get_close_matches(feature_layer, names, n=3, cutoff=0.5)
            hint = f" Closest: {', '.join(close)}." if close else ""
            raise ValueError(f"No layer {feature_layer!r} in model {model.name!r}.{hint}")
        return model.get_layer(feature_layer).output
    t = model.outputs[0]
    op, node = _producer(t)
    if op.name != "predictions":
        return t  # no classifier: a feature map or a pooled feature vector
    # Walk back from "predictions" (zoo and keras.applications name the classifier so) to the classifier
    # itself (a Dense, or MobileNetV3's 1x1 conv "Logits"), then past any dropout before it.
    while not isinstance(op, (keras.layers.Dense, keras.layers.Conv2D)):
        if not isinstance(op, (keras.layers.Activation, keras.layers.Softmax, keras.layers.Flatten,
                               keras.layers.Reshape)):
            raise ValueError(
                f"Cannot find the classifier of model {model.name!r} (layer {op.name!r}); pass `feature_layer`."
            )
        op, node = _producer(node.input_tensors[0])
    t = node.input_tensors[0]
    op, node = _producer(t)
    while isinstance(op, keras.layers.Dropout):
        t = node.input_tensors[0]
        op, node = _producer(t)
    return t


def _check_head(classes, pooling, dropout, classifier_activation):
    contract.check_classes(classes)
    if pooling not in ("avg", "max"):
        raise ValueError(f"`pooling` must be 'avg' or 'max'. Received: pooling={pooling!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    contract.check_activation(classifier_activation)


def _channel_adapter(x, have, want):
    """A fixed grayscale <-> RGB map from `have` to `want` channels."""
    if (have, want) == (1, 3):
        return _fixed_affine(x, np.ones((1, 3)), np.zeros(3), "input_channels")
    if (have, want) == (3, 1):  # ITU-R BT.601 luma
        return _fixed_affine(x, np.array([[0.299], [0.587], [0.114]]), np.zeros(1), "input_channels")
    raise ValueError(
        f"Cannot adapt {have} input channels to the backbone's {want}; only grayscale <-> RGB is supported."
    )


def adapt_inputs(body, shape, affine):
    """`(inputs, features)`: `body` (a features model) behind the input adapters that `shape` and `affine` need.

    Args:
        body: A Functional model from the backbone's input to its features.
        shape: Input shape of the new data, `(H, W, C)`.
        affine: `(kernel, bias)` from `preprocess_affine`, or None.
    """
    want = tuple(body.inputs[0].shape[1:])
    if shape == want and affine is None:
        return body.inputs, body.outputs[0]
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    if len(shape) == 3 and any(w is not None and w != s for w, s in zip(want[:2], shape[:2])):
        if None in want[:2] or None in shape[:2]:
            raise ValueError(f"Cannot resize inputs {shape} to the backbone's {want}; give fixed sizes.")
        x = keras.layers.Resizing(want[0], want[1], dtype="float32", name="input_resize")(x)
    if shape[-1] != want[-1]:
        x = _channel_adapter(x, shape[-1], want[-1])
    if affine is not None:
        x = _fixed_affine(x, *affine, "input_preprocess")
    try:  # Replay the backbone's graph on the adapted tensor: one flat model with the same layers.
        x = body._run_through_graph(x, operation_fn=lambda op: op)
    except AttributeError:  # Keras without this helper: nest the backbone instead.
        x = body(x)
    return inputs, x


def _pool(x, pooling):
    if len(x.shape) == 4:
        layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        return layer(name="head_pool")(x)
    if len(x.shape) == 3:
        layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
        return layer(name="head_pool")(x)
    return x


def with_new_head(
    backbone,
    classes,
    *,
    pooling="avg",
    dropout=0.2,
    classifier_activation="softmax",
    feature_layer=None,
    input_shape=None,
    preprocess=None,
    name=None,
):
    """`backbone` with its classifier replaced by a new one for `classes` classes.

    The result is one flat model: input adapters (resize, channels, preprocessing; only where needed), the
    backbone's own layers (shared with `backbone`, so they keep their weights and names), then
    `head_pool` (for feature maps), `head_dropout` and a float32 Dense `predictions`.

    Args:
        backbone: A Functional or Sequential Keras model (a zoo model, a keras.applications model, a loaded
            `.keras` file), or anything `load_pretrained` accepts (run directory, `.keras` path,
            `"keras:MobileNetV2"`, zoo model name).
        classes: Number of classes of the new task.
        pooling: "avg" or "max" pooling of a feature-map output.
        dropout: Dropout rate before the classifier (0 for none).
        classifier_activation: Activation of the new classifier.
        feature_layer: Name of the layer whose output feeds the head. Defaults to the input of the
            backbone's classifier (the layer named `predictions`), or its output when it has none.
        input_shape: Input shape of the new data, `(H, W, C)`. When it differs from the backbone's, a
            `Resizing` layer and/or a fixed grayscale <-> RGB map are put in front.
        preprocess: How inputs in [0, 1] must be mapped for the backbone (see `preprocess_affine`);
            None leaves them as they are (or uses the `load_pretrained` default for a string source).
        name: Name of the new model. Defaults to `<backbone name>_transfer`.
    """
    if not isinstance(backbone, keras.Model):
        src = load_pretrained(backbone, input_shape=input_shape)
        backbone, preprocess = src.model, src.preprocess if preprocess is None else preprocess
    _check_head(classes, pooling, dropout, classifier_activation)
    if not hasattr(backbone, "inputs") or not backbone.inputs or len(backbone.inputs) != 1:
        raise ValueError(
            f"with_new_head needs a Functional or Sequential model with one input; {backbone.name!r} is "
            f"{type(backbone).__name__}."
        )
    body = keras.Model(backbone.inputs, _features(backbone, feature_layer), name=f"{backbone.name}_features")
    want = tuple(backbone.inputs[0].shape[1:])
    shape = tuple(input_shape) if input_shape is not None else want
    affine = preprocess_affine(preprocess, want[-1]) if want[-1] else None
    inputs, x = adapt_inputs(body, shape, affine)
    x = _pool(x, pooling)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = contract.classifier(x, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name or f"{backbone.name}_transfer")


def _fit_scale(feats, labels, means):
    """The logit scale minimising the leave-one-out cross-entropy of the nearest-class-mean logits on `feats`.

    Each example's own-class logit uses its class mean without it (when the class has another example): fitted
    on the same examples as the means, a sample that each example's own contribution separates pushed the scale
    up (31.6 on one 10-per-class glyph sample, 0.4 on another of the same task, BENCHMARKS.md), and phase 2
    then started at training losses of 37-55.
    """
    logits = feats @ means.T - 0.5 * (means ** 2).sum(1)
    n = np.bincount(labels, minlength=len(means))[labels][:, None].astype("float64")
    own = np.where(n > 1, (n * means[labels] - feats) / np.maximum(n - 1.0, 1.0), means[labels])
    logits[np.arange(len(labels)), labels] = (feats * own).sum(1) - 0.5 * (own ** 2).sum(1)
    best = (np.inf, 1.0)
    for s in np.logspace(-2, 3, 51):
        z = s * logits
        z = z - z.max(1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(labels)), labels]))
        best = min(best, (nll, s))
    return best[1]


def imprint(model, batches, *, layer="predictions"):
    """Sets the Dense classifier `layer` to the nearest-class-mean classifier of the features it receives.

    Weight imprinting (Qi, Brown & Lowe 2018) in its Euclidean form (the prototype classifier of Snell et al.
    2017): with class means `m_c` of the features over `batches`, the logits are `s * (f . m_c - |m_c|^2 / 2)`,
    so the arg max is the nearest class mean; the scale `s` minimises the leave-one-out cross-entropy on the
    same data.

    Args:
        model: A model whose classifier `layer` is a Dense fed by a feature vector.
        batches: An iterable of `(images, integer labels)` batches (not augmented).
        layer: Name of the classifier. Defaults to `"predictions"`.

    Returns:
        The scale `s`.

    Raises:
        ValueError: The classifier is not a Dense on a vector, or a class has no example in `batches`.
    """
    head = model.get_layer(layer)
    if not isinstance(head, keras.layers.Dense) or len(head.input.shape) != 2:
        raise ValueError(f"imprint needs a Dense classifier on a feature vector; {layer!r} is {type(head).__name__}.")
    features = keras.Model(model.inputs, head.input)
    pairs = [(np.asarray(features.predict_on_batch(x), "float64"), np.asarray(y).reshape(-1)) for x, y in batches]
    feats, labels = np.concatenate([f for f, _ in pairs]), np.concatenate([y for _, y in pairs]).astype(int)
    classes = head.units
    missing = sorted(set(range(classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"imprint needs an example of every class; classes {missing} have none.")
    means = np.stack([feats[labels == c].mean(0) for c in range(classes)])
    scale = _fit_scale(feats, labels, means)
    head.set_weights([(scale * means.T).astype("float32"), (-0.5 * scale * (means ** 2).sum(1)).astype("float32")])
    return scale
