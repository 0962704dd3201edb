"""Transfer learning: freeze and unfreeze layers, discriminative learning rates, new heads, pretrained sources.

    >>> from zoo import transfer
    >>> src = transfer.load_pretrained("keras:MobileNetV2", input_shape=(96, 96, 3))   # weights="imagenet"
    >>> model = transfer.with_new_head(src.model, classes=5, preprocess=src.preprocess)
    >>> transfer.freeze_backbone(model)              # everything but the new head
    >>> transfer.unfreeze(model, from_layer=120)     # later: the top of the backbone too
    >>> opt = transfer.discriminative_optimizer("adam", transfer.layerwise_lr_multipliers(model, decay=0.3))
    >>> print(transfer.trainable_summary(model, collapse=True))

Layers are picked by name, glob (`conv5_*`), regex (`re:block_1[0-9]_.*`), block name (`conv5`, `block_13`:
every layer named `<block>_...`), index or slice over the flattened layer list (nested models are walked, so
`from_layer=120` means what it means for `keras.applications.MobileNetV2().layers[120]`), or a predicate.

A BatchNormalization layer with `trainable=False` runs in inference mode in Keras 3 (it normalises with its
moving statistics and never updates them), so a frozen backbone's statistics stay those of the pre-training data;
`unfreeze` keeps BatchNormalization frozen unless `train_bn=True`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
import re

import keras
import numpy as np

from zoo import contract
from zoo.training.layerwise import (  # noqa: F401  (public here too: `transfer.discriminative_optimizer`)
    LAYERWISE_OPTIMIZERS,
    discriminative_optimizer,
)

globals().update({cls.__name__: cls for cls in LAYERWISE_OPTIMIZERS.values()})

HEAD_LAYERS = ("head_pool", "head_dropout", "predictions")
ADAPTER_LAYERS = ("input_resize", "input_channels", "input_preprocess")  # fixed maps, never trained

# ------------------------------------------------------------------------------------------- selection


def _leaves(model):
    """Layers of `model` in order, nested Functional/Sequential models replaced by their own layers."""
    seen, out = set(), []

    def walk(layer):
        if isinstance(layer, keras.Model) and hasattr(layer, "layers") and layer.layers:
            for sub in layer.layers:
                walk(sub)
        elif id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)

    for layer in model.layers:
        walk(layer)
    return out


def _match_string(leaves, s):
    names = [layer.name for layer in leaves]
    if s.startswith("re:"):
        try:
            pattern = re.compile(s[3:])
        except re.error as exc:
            raise ValueError(f"Invalid regex in layer selector {s!r}: {exc}") from None
        return [layer for layer in leaves if pattern.fullmatch(layer.name)]
    if any(c in s for c in "*?["):
        return [layer for layer in leaves if fnmatch.fnmatchcase(layer.name, s)]
    if s in names:
        return [leaves[names.index(s)]]
    return [layer for layer in leaves if layer.name.startswith(s + "_")]  # a block: conv5, block_13


def select_layers(model, layers=None, *, from_layer=None):
    """The layers of `model` picked by `layers` and/or `from_layer`, in model order.

    Args:
        model: A Keras model (nested models are walked).
        layers: None (every layer), or a selector or list of selectors: a layer name; a glob (`"conv5_*"`);
            a regex prefixed `re:`; a block name (`"conv5"`, `"block_13"`: the layers named `<block>_...`);
            an int index or a slice over the flattened layer list; a compiled `re.Pattern`; or a
            predicate `layer -> bool`.
        from_layer: Also limit the selection to the layers from this one (index or name) to the end.

    Raises:
        ValueError: A selector matches nothing (the message names the closest layer names).
    """
    leaves = _leaves(model)
    names = [layer.name for layer in leaves]
    if layers is None:
        picked = list(leaves)
    else:
        selectors = list(layers) if isinstance(layers, (list, tuple, set)) else [layers]
        ids = set()
        for sel in selectors:
            if isinstance(sel, bool):
                raise ValueError(f"Invalid layer selector {sel!r}.")
            if isinstance(sel, int):
                if not -len(leaves) <= sel < len(leaves):
                    raise ValueError(f"Layer index {sel} is out of range; the model has {len(leaves)} layers.")
                found = [leaves[sel]]
            elif isinstance(sel, slice):
                found = leaves[sel]
            elif isinstance(sel, re.Pattern):
                found = [layer for layer in leaves if sel.fullmatch(layer.name)]
            elif isinstance(sel, str):
                found = _match_string(leaves, sel)
            elif callable(sel):
                found = [layer for layer in leaves if sel(layer)]
            else:
                raise ValueError(
                    f"Invalid layer selector {sel!r}; allowed: a name, glob, 're:' regex, block name, "
                    "index, slice, compiled regex or predicate."
                )
            if not found and not isinstance(sel, slice):
                close = difflib.get_close_matches(str(sel), names, n=3, cutoff=0.5)
                hint = f" Closest layer names: {', '.join(close)}." if close else ""
                raise ValueError(f"No layer of model {model.name!r} matches {sel!r}.{hint}")
            ids.update(id(layer) for layer in found)
        picked = [layer for layer in leaves if id(layer) in ids]
    if from_layer is not None:
        if isinstance(from_layer, str):
            if from_layer not in names:
                close = difflib.get_close_matches(from_layer, names, n=3, cutoff=0.5)
                hint = f" Closest layer names: {', '.join(close)}." if close else ""
                raise ValueError(f"No layer named {from_layer!r} in model {model.name!r}.{hint}")
            start = names.index(from_layer)
        elif isinstance(from_layer, int) and not isinstance(from_layer, bool):
            if not -len(leaves) <= from_layer < len(leaves):
                raise ValueError(f"from_layer={from_layer} is out of range; the model has {len(leaves)} layers.")
            start = from_layer % len(leaves)
        else:
            raise ValueError(f"`from_layer` must be a layer index or name. Received: from_layer={from_layer!r}")
        tail = {id(layer) for layer in leaves[start:]}
        picked = [layer for layer in picked if id(layer) in tail]
    return picked


def _is_bn(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def _set_trainable(model, layers, value, *, train_bn=True):
    leaves = _leaves(model)
    state = {id(layer): layer.trainable for layer in leaves}
    changed = []
    for layer in layers:
        if layer.name in ADAPTER_LAYERS or (value and _is_bn(layer) and not train_bn):
            continue
        state[id(layer)] = value
        changed.append(layer.name)
    # Containers must be trainable for any leaf inside them to train; the setter propagates down,
    # so open every container first, then set each leaf to its wanted state.
    model.trainable = True
    for layer in leaves:
        layer.trainable = state[id(layer)]
    return changed


def freeze(model, layers=None, *, from_layer=None):
    """Sets the selected layers (default: all) to `trainable=False`; returns their names.

    Frozen BatchNormalization layers run in inference mode. Recompile the model afterwards.
    See `select_layers` for `layers` and `from_layer`.
    """
    return _set_trainable(model, select_layers(model, layers, from_layer=from_layer), False)


def unfreeze(model, layers=None, *, from_layer=None, train_bn=False):
    """Sets the selected layers (default: all) to `trainable=True`; returns their names.

    Args:
        model: A Keras model.
        layers: Selector(s), see `select_layers`.
        from_layer: Unfreeze only from this layer (index or name) on, e.g. `from_layer=120`.
        train_bn: Also unfreeze BatchNormalization layers. Defaults to False: with little data, batch
            statistics are noisy, so BN keeps its pre-trained moving statistics (inference mode).

    The input adapters `with_new_head` adds (`ADAPTER_LAYERS`) are never unfrozen. Recompile afterwards.
    """
    return _set_trainable(model, select_layers(model, layers, from_layer=from_layer), True, train_bn=train_bn)


def head_layers(model) -> list:
    """Names of the layers `with_new_head` added (`HEAD_LAYERS`) that `model` has."""
    names = {layer.name for layer in _leaves(model)}
    return [n for n in HEAD_LAYERS if n in names]


def freeze_backbone(model) -> list:
    """Freezes everything but the new head (`head_layers`); returns the names of the trainable layers."""
    freeze(model)
    return unfreeze(model, head_layers(model))


def _state(layer):
    if layer.name in ADAPTER_LAYERS:
        return "fixed (input adapter)"
    if layer.trainable:
        return "trainable"
    return "frozen (BN inference mode)" if _is_bn(layer) else "frozen"


def trainable_summary(model, *, all_layers=False, collapse=False) -> str:
    """A table of which layers train: index, name, type, parameters and state.

    Args:
        model: A Keras model.
        all_layers: Also list layers without weights.
        collapse: One row per run of consecutive layers in the same state (BatchNormalization layers
            do not break a run; the row counts the frozen ones), for long backbones.

    Returns:
        The table and a total line, as a string.
    """
    rows = []
    for i, layer in enumerate(_leaves(model)):
        params = sum(int(np.prod(w.shape)) for w in layer.weights)
        if params or all_layers:
            rows.append({"index": str(i), "layer": layer.name, "type": type(layer).__name__,
                         "params": params, "state": _state(layer), "bn": _is_bn(layer)})
    if collapse:
        runs = []
        for row in rows:
            key = runs[-1]["key"] if row["bn"] and runs else row["state"].split(" (BN")[0]
            if runs and runs[-1]["key"] == key:
                run = runs[-1]
                run["last"], run["params"] = row, run["params"] + row["params"]
                run["types"].add(row["type"])
            else:
                run = {"key": key, "first": row, "last": row, "params": row["params"], "types": {row["type"]},
                       "bn_frozen": 0, "count": 0}
                runs.append(run)
            run["count"] += 1
            run["bn_frozen"] += row["bn"] and row["state"].startswith("frozen")
        rows = []
        for run in runs:
            first, last = run["first"], run["last"]
            state = run["key"] + (f", {run['bn_frozen']} BN frozen (inference mode)"
                                  if run["bn_frozen"] and run["key"] != "frozen" else "")
            rows.append({
                "index": first["index"] if first is last else f"{first['index']}-{last['index']}",
                "layer": first["layer"] if first is last else f"{first['layer']} .. {last['layer']}",
                "type": first["type"] if len(run["types"]) == 1 else f"{run['count']} layers",
                "params": run["params"], "state": state,
            })
    header = ["index", "layer", "type", "params", "state"]
    table = [header] + [[r["index"], r["layer"], r["type"], f"{r['params']:,}", r["state"]] for r in rows]
    widths = [max(len(r[c]) for r in table) for c in range(5)]
    lines = ["  ".join(cell.rjust(w) if c in (0, 3) else cell.ljust(w) for c, (cell, w) in
                       enumerate(zip(r, widths))).rstrip() for r in table]
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.weights) - trainable
    frozen_bn = sum(1 for layer in _leaves(model) if _is_bn(layer) and not layer.trainable)
    lines.append(
        f"Trainable: {trainable:,} params; non-trainable: {frozen:,} params "
        f"({frozen_bn} BatchNormalization layers frozen in inference mode)."
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------- discriminative learning rates


_BLOCK = re.compile(r"^(.*?block_?\d+[a-z]?)(?:_|$)")


def layerwise_lr_multipliers(model, *, decay=0.5, groups=3, head=HEAD_LAYERS) -> dict:
    """Layer-wise decayed learning-rate multipliers for the trainable layers of `model`.

    The head keeps factor 1; the trainable layers below it are cut into `groups` consecutive groups, and
    the k-th group counted from the top gets `decay ** k` (the top of the backbone learns fastest, the
    early, generic layers slowest: "discriminative fine-tuning", Howard & Ruder 2018).

    Args:
        model: A Keras model; only its trainable layers with weights take part.
        decay: Factor between neighbouring groups, in (0, 1].
        groups: Number of groups (int >= 1), or "blocks" for one group per block of the layer names
            (`conv5_block3`, `block_13`; layers outside any block join the block before them), or one
            group per layer when no layer name has a block.
        head: Selectors of the head layers (factor 1). Missing ones are ignored.

    Returns:
        `{variable path: factor}` for `discriminative_optimizer`.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1]. Received: decay={decay!r}")
    leaves = [layer for layer in _leaves(model) if layer.trainable and layer.trainable_weights]
    head_ids = set()
    for sel in head if isinstance(head, (list, tuple)) else [head]:
        try:
            head_ids.update(id(layer) for layer in select_layers(model, sel))
        except ValueError:
            pass
    body = [layer for layer in leaves if id(layer) not in head_ids]
    if groups == "blocks":
        keys, current = [], None
        blocky = any(_BLOCK.match(layer.name) for layer in body)
        for layer in body:
            found = _BLOCK.match(layer.name)
            current = found.group(1) if found else (current if blocky and current else layer.name)
            keys.append(current)
        order = list(dict.fromkeys(keys))
        group_of = [order.index(k) for k in keys]
        n_groups = len(order)
    elif isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1:
        n_groups = min(groups, max(len(body), 1))
        group_of = [i * n_groups // max(len(body), 1) for i in range(len(body))]
    else:
        raise ValueError(f"`groups` must be an integer >= 1 or 'blocks'. Received: groups={groups!r}")
    out = {}
    for layer, g in zip(body, group_of):
        for v in layer.trainable_weights:
            out[v.path] = float(decay ** (n_groups - g))
    for layer in leaves:
        if id(layer) in head_ids:
            for v in layer.trainable_weights:
                out[v.path] = 1.0
    return out


# ----------------------------------------------------------------------------------------- new heads

# What each keras.applications family expects, as a map from [0, 1] RGB pixels.
KERAS_PREPROCESS = {
    **dict.fromkeys(("Xception", "InceptionV3", "InceptionResNetV2", "MobileNet", "MobileNetV2",
                     "NASNetMobile", "NASNetLarge", "ResNet50V2", "ResNet101V2", "ResNet152V2"), "tf"),
    **dict.fromkeys(("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152"), "caffe"),
    **dict.fromkeys(("DenseNet121", "DenseNet169", "DenseNet201"), "torch"),
}
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
    contract.check_classes(classes)
    if pooling not in ("avg", "max"):
        raise ValueError(f"`pooling` must be 'avg' or 'max'. Received: pooling={pooling!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    contract.check_activation(classifier_activation)
    if not hasattr(backbone, "inputs") or not backbone.inputs or len(backbone.inputs) != 1:
        raise ValueError(
            f"with_new_head needs a Functional or Sequential model with one input; {backbone.name!r} is "
            f"{type(backbone).__name__}."
        )
    features = _features(backbone, feature_layer)
    body = keras.Model(backbone.inputs, features, name=f"{backbone.name}_features")
    want = tuple(backbone.inputs[0].shape[1:])
    shape = tuple(input_shape) if input_shape is not None else want
    affine = preprocess_affine(preprocess, want[-1]) if want[-1] else None

    if shape == want and affine is None:
        inputs, x = body.inputs, body.outputs[0]
    else:
        inputs = keras.Input(shape=shape, name="image")
        x = inputs
        if len(shape) == 3 and any(w is not None and w != s for w, s in zip(want[:2], shape[:2])):
            if None in want[:2] or None in shape[:2]:
                raise ValueError(f"Cannot resize inputs {shape} to the backbone's {want}; give fixed sizes.")
            x = keras.layers.Resizing(want[0], want[1], dtype="float32", name="input_resize")(x)
        if shape[-1] != want[-1]:
            if (shape[-1], want[-1]) == (1, 3):
                x = _fixed_affine(x, np.ones((1, 3)), np.zeros(3), "input_channels")
            elif (shape[-1], want[-1]) == (3, 1):  # ITU-R BT.601 luma
                x = _fixed_affine(x, np.array([[0.299], [0.587], [0.114]]), np.zeros(1), "input_channels")
            else:
                raise ValueError(
                    f"Cannot adapt {shape[-1]} input channels to the backbone's {want[-1]}; "
                    "only grayscale <-> RGB is supported."
                )
        if affine is not None:
            x = _fixed_affine(x, *affine, "input_preprocess")
        try:  # Replay the backbone's graph on the adapted tensor: one flat model with the same layers.
            x = body._run_through_graph(x, operation_fn=lambda op: op)
        except AttributeError:  # Keras without this helper: nest the backbone instead.
            x = body(x)
    if len(x.shape) == 4:
        pool_layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        x = pool_layer(name="head_pool")(x)
    elif len(x.shape) == 3:
        pool_layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
        x = pool_layer(name="head_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = contract.classifier(x, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name or f"{backbone.name}_transfer")


# ---------------------------------------------------------------------------------- pretrained sources


@dataclasses.dataclass
class Pretrained:
    """A resolved pretrained source.

    Attributes:
        model: The Keras model (with or without its old classifier).
        preprocess: How [0, 1] inputs must be mapped for it (see `preprocess_affine`).
        source: The source as given.
        kind: "run", "keras_file", "keras_app" or "zoo".
        config: The run's `config.json` (runs only), else {}.
    """

    model: keras.Model
    preprocess: object
    source: str
    kind: str
    config: dict = dataclasses.field(default_factory=dict)


def _keras_home_models(fname):
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", fname)


def _keras_app(name, weights, input_shape):
    apps = sorted(n for n in dir(keras.applications) if n[:1].isupper())
    if name not in apps:
        close = difflib.get_close_matches(name, apps, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown keras.applications model {name!r}.{hint} Available: {', '.join(apps)}.")
    if weights not in (None, "imagenet") and not os.path.isfile(os.fspath(weights)):
        raise ValueError(f"`weights` must be None, 'imagenet' or an existing file. Received: weights={weights!r}")
    kwargs = {"include_top": False, "weights": weights}
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    try:
        return getattr(keras.applications, name)(**kwargs)
    except Exception as exc:
        found = re.search(r"URL fetch failure on (\S+?):? ", str(exc))
        if weights != "imagenet" or not found:
            raise ValueError(f"Cannot build keras.applications.{name}({kwargs}): {exc}") from None
        url = found.group(1)
        target = _keras_home_models(os.path.basename(url))
        raise ValueError(
            f"Cannot download the ImageNet weights of {name} (offline?). Download {url} on a machine with "
            f"network access and place it at {target!r} (Keras' cache: $KERAS_HOME/models, default "
            "~/.keras/models), or use weights=None."
        ) from None


def _load_keras_file(path):
    from zoo.training.rundir import load_keras

    return load_keras(path)


def load_pretrained(source, *, weights="auto", input_shape=None, preprocess=None) -> Pretrained:
    """Resolves a pretrained source to a model and the preprocessing it expects.

    Args:
        source: A zoo run directory (holding `model.keras` and `config.json`), a `.keras` file,
            `"keras:<Application>"` (e.g. `"keras:MobileNetV2"`, built without its top), or a registered
            zoo model name (optionally `"zoo:<name>"`, built with `include_top=False`).
        weights: For `keras:` names and zoo names: "imagenet" (Keras' cached file; offline, a ValueError
            names the file to place), None (random initialisation) or a local weights file. "auto" (the
            default) is "imagenet" for `keras:` names and None for zoo names.
        input_shape: Input shape to build `keras:`/zoo backbones at (ignored for saved models).
        preprocess: Override the preprocessing (see `preprocess_affine`).

    Raises:
        ValueError: The source is none of the above, or its weights cannot be found.
    """
    from zoo import registry

    if isinstance(source, keras.Model):
        return Pretrained(source, preprocess, source.name, "model")
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"Unknown pretrained source {source!r}: expected a path or a name.")
    text = os.fspath(source)
    if os.path.isdir(text):
        path = os.path.join(text, "model.keras")
        if not os.path.isfile(path):
            raise ValueError(f"{text!r} is not a zoo run directory: it has no model.keras.")
        config = {}
        if os.path.isfile(os.path.join(text, "config.json")):
            with open(os.path.join(text, "config.json")) as f:
                config = json.load(f)
        if preprocess is None:  # what the network saw in training; else what its recipe says its weights expect
            preprocess = (config.get("data") or {}).get("normalization") or (
                config.get("recipe") or {}).get("extra", {}).get("preprocess")
        return Pretrained(_load_keras_file(path), preprocess, text, "run", config)
    if text.endswith(".keras"):
        if not os.path.isfile(text):
            raise ValueError(f"Model file {text!r} does not exist.")
        return Pretrained(_load_keras_file(text), preprocess, text, "keras_file")
    if text.startswith("keras:"):
        name = text.split(":", 1)[1]
        weights = "imagenet" if weights == "auto" else weights
        model = _keras_app(name, weights, input_shape)
        default = KERAS_PREPROCESS.get(name, "raw") if weights is not None else "scale"
        return Pretrained(model, default if preprocess is None else preprocess, text, "keras_app")
    name = text.split(":", 1)[1] if text.startswith("zoo:") else text
    if name in registry.list_models():
        spec = registry.get_spec(name)
        kwargs = {"include_top": False}
        weights = None if weights == "auto" else weights
        if weights is not None:
            kwargs["weights"] = weights
        if input_shape is not None:
            kwargs["input_shape"] = tuple(input_shape)
        model = registry.create_model(name, **kwargs)
        extra = (spec.recipe.extra if spec.recipe is not None else {}) or {}
        default = extra.get("preprocess", "scale") if weights == "imagenet" else "scale"
        return Pretrained(model, default if preprocess is None else preprocess, text, "zoo")
    close = difflib.get_close_matches(name, registry.list_models(), n=3, cutoff=0.5)
    hint = f" Closest zoo models: {', '.join(close)}." if close else ""
    raise ValueError(
        f"Unknown pretrained source {text!r}: expected a run directory, a .keras file, 'keras:<Application>' "
        f"(e.g. keras:MobileNetV2) or a zoo model name.{hint}"
    )
