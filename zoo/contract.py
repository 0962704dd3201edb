"""The one builder contract every zoo model follows, and its argument checks.

Image builders take keras.applications' keywords: `include_top`, `weights`,
`input_tensor`, `input_shape`, `pooling`, `classes`, `classifier_activation`,
`name`. Every check here runs before any layer is built and raises ValueError
quoting the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import numbers
import os

import keras

POOLINGS = (None, "avg", "max")
WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".keras")


def _bounds(min, max, above, below):
    """" >= 1", " in [0, 1)", " > 0"... for the messages of `check_int` / `check_number`."""
    low = f"[{min}" if min is not None else f"({above}" if above is not None else None
    high = f"{max}]" if max is not None else f"{below})" if below is not None else None
    if low and high:
        return f" in {low}, {high}"
    if low:
        return f" >= {min}" if min is not None else f" > {above}"
    if high:
        return f" <= {max}" if max is not None else f" < {below}"
    return ""


def _in_bounds(value, min, max, above, below):
    return not (
        (min is not None and value < min) or (max is not None and value > max)
        or (above is not None and value <= above) or (below is not None and value >= below)
    )


def check_int(name, value, *, min=None, max=None):
    """Returns `value` if it is an integer (not a bool) in `[min, max]`.

    Raises:
        ValueError: Naming `name`, the allowed range and the received value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not _in_bounds(
        value, min, max, None, None
    ):
        raise ValueError(f"`{name}` must be an integer{_bounds(min, max, None, None)}. Received: {name}={value!r}")
    return value


def check_number(name, value, *, min=None, max=None, above=None, below=None):
    """Returns `value` if it is a real number (not a bool) within the bounds.

    Args:
        name: Argument name, for the message.
        value: The received value.
        min, max: Inclusive bounds (None: unbounded).
        above, below: Exclusive bounds (None: unbounded).

    Raises:
        ValueError: Naming `name`, the allowed range and the received value (NaN is refused).
    """
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and value == value
    if not ok or not _in_bounds(value, min, max, above, below):
        raise ValueError(
            f"`{name}` must be a number{_bounds(min, max, above, below)}. Received: {name}={value!r}"
        )
    return value


def _closest(value, allowed):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        numbers_ = [a for a in allowed if isinstance(a, numbers.Real) and not isinstance(a, bool)]
        return min(numbers_, key=lambda a: abs(a - value)) if numbers_ else None
    texts = {str(a).lower(): a for a in allowed}
    close = difflib.get_close_matches(str(value).lower(), list(texts), n=1, cutoff=0.5)
    return texts[close[0]] if close else None


def check_choice(name, value, allowed, *, when=None):
    """Returns `value` if it is one of `allowed` (bools only match bools).

    Args:
        name: Argument name, for the message.
        value: The received value.
        allowed: The valid choices, in the order the message lists them.
        when: Condition under which `allowed` applies, e.g. "weights='imagenet'" (for the message).

    Raises:
        ValueError: Naming `name`, the choices, the closest one and the received value.
    """
    allowed = tuple(allowed)
    if any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
        return value
    close = _closest(value, allowed)
    hint = f" (closest: {close!r})" if close is not None else ""
    prefix = f"With {when}, `{name}`" if when else f"`{name}`"
    raise ValueError(
        f"{prefix} must be one of {', '.join(map(repr, allowed))}{hint}. Received: {name}={value!r}"
    )


def check_classes(classes, *, allowed=None):
    check_int("classes", classes, min=1)
    if allowed is not None:
        check_choice("classes", classes, sorted(allowed))


def check_pooling(pooling):
    check_choice("pooling", pooling, POOLINGS)


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
    check_choice("include_top", include_top, (True, False))
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
            src = keras.saving.load_model(path, compile=False, safe_mode=True)
            model.set_weights(src.get_weights())
        else:
            model.load_weights(path)
    except Exception as exc:  # Keras raises several types for shape/structure mismatches.
        raise ValueError(
            f"Weights file {path!r} does not fit model {model.name!r} "
            f"({model.count_params():,} parameters): {exc}"
        ) from None
    return model
