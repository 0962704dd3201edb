"""Pretrained sources: a zoo run directory, a `.keras` file, `keras:<Application>` or a zoo model name."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re

import keras

from zoo import registry
from zoo.training.rundir import MODEL, RunDir, load_keras

# What each keras.applications family expects, as a map from [0, 1] RGB pixels.
KERAS_PREPROCESS = {
    **dict.fromkeys(("Xception", "InceptionV3", "InceptionResNetV2", "MobileNet", "MobileNetV2",
                     "NASNetMobile", "NASNetLarge", "ResNet50V2", "ResNet101V2", "ResNet152V2"), "tf"),
    **dict.fromkeys(("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152"), "caffe"),
    **dict.fromkeys(("DenseNet121", "DenseNet169", "DenseNet201"), "torch"),
}


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


def _from_dir(path, preprocess):
    """A run directory (read through `RunDir`), or a folder holding just a `model.keras`."""
    if RunDir.is_run(path):
        run = RunDir(path)
        config, model_file = run.config, run.file(MODEL)
    elif os.path.isfile(os.path.join(path, MODEL)):
        config, model_file = {}, os.path.join(path, MODEL)
    else:
        raise ValueError(f"{path!r} is not a zoo run directory: it has no {MODEL}.")
    if preprocess is None:  # what the network saw in training; else what its recipe says its weights expect
        preprocess = (config.get("data") or {}).get("normalization") or (
            config.get("recipe") or {}).get("extra", {}).get("preprocess")
    return Pretrained(load_keras(model_file), preprocess, path, "run", config)


def _from_zoo(text, name, weights, input_shape, preprocess):
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
        preprocess: Override the preprocessing (see `heads.preprocess_affine`).

    Raises:
        ValueError: The source is none of the above, or its weights cannot be found.
    """
    if isinstance(source, keras.Model):
        return Pretrained(source, preprocess, source.name, "model")
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"Unknown pretrained source {source!r}: expected a path or a name.")
    text = os.fspath(source)
    if os.path.isdir(text):
        return _from_dir(text, preprocess)
    if text.endswith(".keras"):
        if not os.path.isfile(text):
            raise ValueError(f"Model file {text!r} does not exist.")
        return Pretrained(load_keras(text), preprocess, text, "keras_file")
    if text.startswith("keras:"):
        name = text.split(":", 1)[1]
        weights = "imagenet" if weights == "auto" else weights
        model = _keras_app(name, weights, input_shape)
        default = KERAS_PREPROCESS.get(name, "raw") if weights is not None else "scale"
        return Pretrained(model, default if preprocess is None else preprocess, text, "keras_app")
    name = text.split(":", 1)[1] if text.startswith("zoo:") else text
    if name in registry.list_models():
        return _from_zoo(text, name, weights, input_shape, preprocess)
    close = difflib.get_close_matches(name, registry.list_models(), n=3, cutoff=0.5)
    hint = f" Closest zoo models: {', '.join(close)}." if close else ""
    raise ValueError(
        f"Unknown pretrained source {text!r}: expected a run directory, a .keras file, 'keras:<Application>' "
        f"(e.g. keras:MobileNetV2) or a zoo model name.{hint}"
    )
