"""Backbones as feature extractors, and the input preprocessing their published weights expect.

Each family declares, at registration, the layer that ends each resolution level of its models
(`register_model(feature_layers={"C1": layer, ...})`: `"C{k}"` is a feature map at stride `2**k`, C2 = stride 4
... C5 = stride 32; the CIFAR ResNets only reach stride 4, so they have C0..C2) and the `preprocess_input` mode
of its ImageNet weights (`preprocessing="caffe"`, `"tf"`, ...). This module reads both from the registry.
Detection heads tap C3..C5, U-Net encoders C1..C5.
"""

from __future__ import annotations

import collections.abc
import difflib
import functools

import keras

from zoo.registry import create_model, get_spec, list_models


class _FeatureLayers(collections.abc.Mapping):
    """`{backbone name: {level: layer name}}` over the registered models that declare feature layers (live)."""

    def _names(self):
        return [n for n in list_models() if get_spec(n).feature_layers]

    def __getitem__(self, name):
        if not isinstance(name, str) or name not in self._names():
            raise KeyError(name)
        return dict(get_spec(name).feature_layers)

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())


FEATURE_LAYERS = _FeatureLayers()


def check_backbone(name, arg="backbone"):
    """`{level: layer name}` of backbone `name`; ValueError naming the closest backbones if it has none."""
    if name not in FEATURE_LAYERS:
        names = list(FEATURE_LAYERS)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"No feature layers for {name!r}.{hint} Backbones: {', '.join(sorted(names))}. Received: {arg}={name!r}"
        )
    return FEATURE_LAYERS[name]


def feature_extractor(name, input_shape=None, levels=("C3", "C4", "C5"), weights=None, **kwargs):
    """A model returning the backbone's feature maps at `levels`.

    Args:
        name: A registered model declaring `feature_layers` (a ResNet or MobileNet).
        input_shape: Input shape; defaults to the model's default.
        levels: Level names, e.g. `("C3", "C4", "C5")` for strides 8/16/32.
        weights: None, "imagenet" or a local weights file (with or without top).
        **kwargs: Further builder keywords (e.g. `alpha`, `input_tensor`).

    Returns:
        A `keras.Model` whose output is the list of feature maps, in the order of `levels`.

    Raises:
        ValueError: Unknown backbone or level.
    """
    available = check_backbone(name)
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


@functools.lru_cache(maxsize=None)
def preprocessor(mode):
    """`preprocess_input(x, data_format=None)` in keras.applications' `mode` ("caffe", "tf" or "torch")."""

    def preprocess_input(x, data_format=None):
        return keras.applications.imagenet_utils.preprocess_input(x, data_format=data_format, mode=mode)

    preprocess_input.__doc__ = f"keras.applications' `preprocess_input` in {mode!r} mode."
    return preprocess_input


def preprocess_input(name):
    """The `preprocess_input` function matching model `name`'s published ImageNet weights.

    Raises:
        ValueError: `name` is unknown, or its family declares no preprocessing (it has no published
            weights whose input mapping is known; train it with the recipe's `normalization` instead).
    """
    mode = get_spec(name).preprocessing
    if mode is None:
        declared = [n for n in list_models() if get_spec(n).preprocessing]
        raise ValueError(
            f"Model {name!r} declares no ImageNet preprocessing (`register_model(preprocessing=...)`); "
            f"models that do: {', '.join(declared)}. Received: name={name!r}"
        )
    return preprocessor(mode)
