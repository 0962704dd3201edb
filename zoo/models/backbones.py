"""Backbones as feature extractors, and Keras' published ImageNet weights.

`FEATURE_LAYERS[name]` names, for every ResNet and MobileNet, the layer that ends each resolution level:
`"C{k}"` is a feature map at stride `2**k` (C2 = stride 4 ... C5 = stride 32; the CIFAR ResNets only reach
stride 4, so they have C0..C2). Detection heads tap C3..C5, U-Net encoders C1..C5.

`weights="imagenet"` resolves Keras' own files (the names, URLs and hashes keras.applications uses) through
`keras.utils.get_file`, so a file already in Keras' cache (`$KERAS_HOME/models`, default `~/.keras/models`)
is used without network; offline, the error says which file to place where.
"""

from __future__ import annotations

import difflib
import hashlib
import os

import keras

from zoo import contract
from zoo.registry import create_model

RESNET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
MOBILENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
MOBILENET_V2_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
# keras.applications.resnet.WEIGHTS_HASHES: (with top, without top), md5.
RESNET_HASHES = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}
# Published MobileNet files (keras.applications gives no hashes for them).
MOBILENET_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
MOBILENET_ROWS = (128, 160, 192, 224)
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_V2_ROWS = (96, 128, 160, 192, 224)
OFFLINE_ENV = "ZOO_OFFLINE"  # set to 1 to never attempt a download


def _resnet_levels(blocks, cifar=False):
    stages = [f"conv{i + 2}_block{n}_out" for i, n in enumerate(blocks)]
    if cifar:
        return {"C0": stages[0], "C1": stages[1], "C2": stages[2]}
    return {"C1": "conv1_relu", "C2": stages[0], "C3": stages[1], "C4": stages[2], "C5": stages[3]}


FEATURE_LAYERS = {
    "resnet18": _resnet_levels((2, 2, 2, 2)),
    "resnet34": _resnet_levels((3, 4, 6, 3)),
    "resnet50": _resnet_levels((3, 4, 6, 3)),
    "resnet101": _resnet_levels((3, 4, 23, 3)),
    "resnet152": _resnet_levels((3, 8, 36, 3)),
    "resnet20": _resnet_levels((3, 3, 3), cifar=True),
    "resnet32": _resnet_levels((5, 5, 5), cifar=True),
    "resnet56": _resnet_levels((9, 9, 9), cifar=True),
    # The last pointwise conv at each stride.
    "mobilenet": {
        "C1": "conv_pw_1_relu", "C2": "conv_pw_3_relu", "C3": "conv_pw_5_relu",
        "C4": "conv_pw_11_relu", "C5": "conv_pw_13_relu",
    },
    # The expansion of the first block at the next stride (wide maps, as in the TF segmentation tutorial
    # and SSDLite), and the final 1x1 conv for C5.
    "mobilenet_v2": {
        "C1": "block_1_expand_relu", "C2": "block_3_expand_relu", "C3": "block_6_expand_relu",
        "C4": "block_13_expand_relu", "C5": "out_relu",
    },
}


def feature_extractor(name, input_shape=None, levels=("C3", "C4", "C5"), weights=None, **kwargs):
    """A model returning the backbone's feature maps at `levels`.

    Args:
        name: A key of `FEATURE_LAYERS` (a registered ResNet or MobileNet).
        input_shape: Input shape; defaults to the model's default.
        levels: Level names, e.g. `("C3", "C4", "C5")` for strides 8/16/32.
        weights: None, "imagenet" or a local weights file (with or without top).
        **kwargs: Further builder keywords (e.g. `alpha`, `input_tensor`).

    Returns:
        A `keras.Model` whose output is the list of feature maps, in the order of `levels`.

    Raises:
        ValueError: Unknown backbone or level.
    """
    if name not in FEATURE_LAYERS:
        close = difflib.get_close_matches(str(name), list(FEATURE_LAYERS), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"No feature layers for {name!r}.{hint} Backbones: {', '.join(sorted(FEATURE_LAYERS))}.")
    available = FEATURE_LAYERS[name]
    levels = [levels] if isinstance(levels, str) else list(levels)
    bad = [lvl for lvl in levels if lvl not in available]
    if bad or not levels:
        raise ValueError(
            f"Unknown feature level(s) {bad or levels!r} for {name!r}; allowed: {', '.join(available)}."
        )
    for key in ("include_top", "pooling"):
        if key in kwargs:
            raise ValueError(f"feature_extractor builds the backbone without top; do not pass `{key}`.")
    base = create_model(name, include_top=False, input_shape=input_shape, weights=weights, **kwargs)
    outputs = [base.get_layer(available[lvl]).output for lvl in levels]
    return keras.Model(base.inputs, outputs, name=f"{base.name}_features")


def preprocess_input(name):
    """The `preprocess_input` function matching backbone `name`'s ImageNet weights."""
    from zoo.models import mobilenet, resnet  # noqa: PLC0415 (avoid an import cycle)

    if name not in FEATURE_LAYERS:
        raise ValueError(f"No backbone {name!r}; allowed: {', '.join(sorted(FEATURE_LAYERS))}.")
    return mobilenet.preprocess_input if name.startswith("mobilenet") else resnet.preprocess_input


# --------------------------------------------------------------------------------------------- weights
def imagenet_file(weights_name, *, include_top, alpha=1.0, rows=224):
    """`(file_name, url, md5 or None)` of Keras' published ImageNet weights.

    Args:
        weights_name: "resnet50", "resnet101", "resnet152", "mobilenet" or "mobilenet_v2".
        include_top: Whether the file holds the classifier.
        alpha: Width multiplier (MobileNets).
        rows: Input size the MobileNet file was trained at.
    """
    if weights_name in RESNET_HASHES:
        fname = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
        return fname, RESNET_URL + fname, RESNET_HASHES[weights_name][0 if include_top else 1]
    if weights_name == "mobilenet":
        fname = f"mobilenet_{MOBILENET_ALPHAS[alpha]}_{rows}_tf{'' if include_top else '_no_top'}.h5"
        return fname, MOBILENET_URL + fname, None
    if weights_name == "mobilenet_v2":
        fname = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{'' if include_top else '_no_top'}.h5"
        return fname, MOBILENET_V2_URL + fname, None
    raise ValueError(
        f"No published ImageNet weights for {weights_name!r}; allowed: "
        f"{', '.join([*RESNET_HASHES, 'mobilenet', 'mobilenet_v2'])}."
    )


def keras_cache_dir():
    """Keras' cache folder: `$KERAS_HOME`, else `~/.keras` (read now, not at import)."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def imagenet_weights_path(weights_name, *, include_top, alpha=1.0, rows=224):
    """Local path of Keras' ImageNet weights file, from the cache or downloaded by `keras.utils.get_file`.

    Raises:
        ValueError: The file is not cached and cannot be downloaded (offline, or `ZOO_OFFLINE=1`);
            the message names the file and where to place it.
    """
    fname, url, file_hash = imagenet_file(weights_name, include_top=include_top, alpha=alpha, rows=rows)
    cache_dir = keras_cache_dir()
    local = os.path.join(cache_dir, "models", fname)
    if os.path.isfile(local) and (file_hash is None or _md5(local) == file_hash):
        return local
    how = (
        f"ImageNet weights need Keras' file {fname!r}. Download {url} on a machine with network access and "
        f"place it at {local!r} (Keras' cache: $KERAS_HOME/models, default ~/.keras/models)."
    )
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        state = "has the wrong md5 hash" if os.path.isfile(local) else "is not cached"
        raise ValueError(f"{how} The file {state} and {OFFLINE_ENV} is set, so nothing is downloaded.")
    try:
        return keras.utils.get_file(fname, url, cache_subdir="models", cache_dir=cache_dir, file_hash=file_hash)
    except Exception as exc:  # URLError, HTTPError, hash mismatch...
        raise ValueError(f"{how} The download failed: {type(exc).__name__}: {exc}") from None


def check_imagenet_args(weights, *, include_top, classes, input_shape):
    """Checks shared by every builder that accepts `weights="imagenet"`."""
    if weights != "imagenet":
        return
    if include_top and classes != 1000:
        raise ValueError(
            f"With `weights='imagenet'` and `include_top=True`, `classes` must be 1000. Received: classes={classes!r}"
        )
    if input_shape[-1] != 3:
        raise ValueError(f"ImageNet weights take 3 input channels. Received: input_shape={tuple(input_shape)!r}")


def _h5_layer_names(path):
    import h5py  # noqa: PLC0415

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        attrs = group.attrs
        if "layer_names" in attrs:
            names = list(attrs["layer_names"])
        else:  # large models split the attribute into layer_names0, layer_names1, ...
            names, i = [], 0
            while f"layer_names{i}" in attrs:
                names += list(attrs[f"layer_names{i}"])
                i += 1
        return {n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names}


def resolve_weights(weights, *, weights_name=None, include_top=True, alpha=1.0, rows=224):
    """`weights` with "imagenet" replaced by the local path of Keras' file (call before building the model)."""
    if weights == "imagenet":
        return imagenet_weights_path(weights_name, include_top=include_top, alpha=alpha, rows=rows)
    return weights


def load_weights(model, weights):
    """Loads a local weights file (or None) into a backbone.

    `.weights.h5` files (from `save_weights`, including keras.applications models') load by structure;
    legacy Keras `.h5` files (Keras' published ImageNet files) load by layer name when every layer of
    `model` is in the file (a file with top then also fills a model without top), else in layer order.

    Raises:
        ValueError: The file does not fit `model`.
    """
    if weights is None:
        return model
    path = os.fspath(weights)
    if not path.endswith(".h5") or path.endswith(".weights.h5"):
        return contract.load_weights(model, path)
    weighted = {layer.name for layer in model.layers if layer.weights}
    try:
        model.load_weights(path, by_name=weighted <= _h5_layer_names(path))
    except Exception as exc:  # Keras raises several types for shape/structure mismatches.
        raise ValueError(
            f"Weights file {path!r} does not fit model {model.name!r} ({model.count_params():,} parameters): {exc}"
        ) from None
    return model
