"""Keras' published ImageNet weight files: resolving, caching and loading them.

Each family declares its files at registration (`register_model(pretrained={"imagenet": WeightFiles(...)})`,
plain data: folder URL, file-name pattern, md5 hashes, the widths and sizes published); this module turns
that metadata into a local path and loads it.

`weights="imagenet"` resolves Keras' own files through `keras.utils.get_file`, so a file already in Keras'
cache (`$KERAS_HOME/models`, default `~/.keras/models`) is used without network; offline, the error says
which file to place where.
"""

from __future__ import annotations

import hashlib
import os

import keras

from zoo import contract
from zoo.registry import get_spec, list_models

OFFLINE_ENV = "ZOO_OFFLINE"  # set to 1 to never attempt a download


def published():
    """`{model name: WeightFiles}` of every registered model with Keras' ImageNet files."""
    return {n: get_spec(n).pretrained["imagenet"] for n in list_models() if "imagenet" in get_spec(n).pretrained}


def imagenet_file(weights_name, *, include_top, alpha=1.0, rows=224):
    """`(file_name, url, md5 or None)` of Keras' published ImageNet weights.

    Args:
        weights_name: A registered model declaring ImageNet files ("resnet50", "mobilenet", ...).
        include_top: Whether the file holds the classifier.
        alpha: Width multiplier (MobileNets).
        rows: Input size the file was trained at (MobileNets).

    Raises:
        ValueError: `weights_name` declares no ImageNet files.
    """
    files = published()
    contract.check_choice("weights_name", weights_name, tuple(files))
    return files[weights_name].file(include_top=include_top, alpha=alpha, rows=rows)


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
