"""The one builder contract every zoo model follows, and its argument checks.

Image builders take keras.applications' keywords: `include_top`, `weights`,
`input_tensor`, `input_shape`, `pooling`, `classes`, `classifier_activation`,
`name`. Every check here runs before any layer is built and raises ValueError
quoting the bad value and what is allowed.
"""

from __future__ import annotations

import os

import keras

POOLINGS = (None, "avg", "max")
WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".keras")


def check_classes(classes, *, allowed=None):
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be an integer >= 1. Received: classes={classes!r}")
    if allowed is not None and classes not in allowed:
        raise ValueError(
            f"`classes` must be one of {sorted(allowed)} for this model. Received: classes={classes!r}"
        )


def check_pooling(pooling):
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` must be one of None, 'avg', 'max'. Received: pooling={pooling!r}"
        )


def check_activation(classifier_activation, arg="classifier_activation"):
    if classifier_activation is None or callable(classifier_activation):
        return
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError):
        raise ValueError(
            f"Unknown `{arg}` {classifier_activation!r}; allowed: None or a Keras activation "
            "name such as 'softmax', 'sigmoid', 'linear', 'relu', 'tanh'."
        ) from None


def check_weights(weights, *, named=()):
    """`weights` must be None, an existing local weights file, or one of `named`."""
    if weights is None or weights in named:
        return
    allowed = "None, a path to a local weights file (.weights.h5, .h5 or .keras)"
    if named:
        allowed += " or one of " + ", ".join(repr(n) for n in named)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"`weights` must be {allowed}. Received: weights={weights!r}")
    path = os.fspath(weights)
    if not path.endswith(WEIGHT_SUFFIXES):
        raise ValueError(f"`weights` must be {allowed}. Received: weights={weights!r}")
    if not os.path.isfile(path):
        raise ValueError(f"Weights file {path!r} does not exist. `weights` must be {allowed}.")


def check_input_shape(input_shape, *, default, min_size=None, channels=None, rank=3):
    """Returns the input shape to use, validated.

    Args:
        input_shape: The user's shape (without batch) or None for `default`.
        default: The model's default input shape.
        min_size: Smallest allowed (height, width) for images, or smallest
            length of the first axis otherwise.
        channels: Allowed channel counts (tuple) or None for any.
        rank: Expected length of the shape (None: any length >= 1).
    """
    shape = tuple(default if input_shape is None else input_shape)
    if (rank is not None and len(shape) != rank) or not shape or any(
        d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1) for d in shape
    ):
        raise ValueError(
            f"`input_shape` must be a tuple of {rank or 'one or more'} positive integers like {tuple(default)}. "
            f"Received: input_shape={input_shape!r}"
        )
    if min_size is not None:
        mins = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        got = shape[: len(mins)]
        if any(g is not None and g < m for g, m in zip(got, mins)):
            wanted = "x".join(str(m) for m in mins)
            raise ValueError(
                f"Input size {'x'.join(str(g) for g in got)} is too small for this model; the "
                f"minimum is {wanted}. Received: input_shape={input_shape!r}"
            )
    if channels is not None and shape[-1] not in channels:
        raise ValueError(
            f"This model takes {' or '.join(str(c) for c in channels)} input channels. "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def check_common(
    *,
    include_top,
    weights,
    pooling,
    classes,
    classifier_activation,
    named_weights=(),
    allowed_classes=None,
):
    """Checks the keywords shared by every builder."""
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    check_weights(weights, named=named_weights)
    check_pooling(pooling)
    check_classes(classes, allowed=allowed_classes)
    check_activation(classifier_activation)


def make_input(input_shape, input_tensor=None, name="input_layer", dtype=None):
    """A Keras Input, or the user's `input_tensor` when given."""
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            return keras.layers.Input(tensor=input_tensor, shape=input_shape, name=name)
        return input_tensor
    return keras.layers.Input(shape=input_shape, name=name, dtype=dtype)


def classifier(x, classes, classifier_activation, name="predictions"):
    """The classification head: one Dense whose output stays float32 under mixed precision."""
    return keras.layers.Dense(classes, activation=classifier_activation, dtype="float32", name=name)(x)


def pool(x, pooling, name_prefix=""):
    """Global pooling of a feature map (or a sequence) when `pooling` is set."""
    if pooling is None or len(x.shape) == 2:
        return x
    if len(x.shape) == 3:
        layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
    else:
        layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    return layer(name=f"{name_prefix}{pooling}_pool")(x)


def load_weights(model, weights):
    """Loads a local weights file into `model`; ValueError when it does not fit."""
    if weights is None:
        return model
    path = os.fspath(weights)
    try:
        if path.endswith(".keras"):
            src = keras.saving.load_model(path, compile=False)
            model.set_weights(src.get_weights())
        else:
            model.load_weights(path)
    except Exception as exc:  # Keras raises several types for shape/structure mismatches.
        raise ValueError(
            f"Weights file {path!r} does not fit model {model.name!r} "
            f"({model.count_params():,} parameters): {exc}"
        ) from None
    return model
