"""Fully connected networks: the shallow (one hidden layer) and deep L-layer nets."""

from __future__ import annotations

import keras

from zoo import contract
from zoo.models import layers
from zoo.recipes import Recipe
from zoo.registry import register_model

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
INITIALIZERS = {"he": "he_normal", "glorot": "glorot_uniform"}

DENSE_RECIPE = Recipe(epochs=30, batch_size=64, optimizer="adam", lr=1e-3, early_stopping=5)


def _head_activation(classes, classifier_activation):
    if classifier_activation == "auto":
        return "sigmoid" if classes == 1 else "softmax"
    return classifier_activation


def _mlp(
    *, layer_sizes, activation, initializer, l2, dropout, batch_norm, include_top, weights,
    input_tensor, input_shape, pooling, classes, classifier_activation, name, default_shape,
):
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=None if classifier_activation == "auto" else classifier_activation,
    )
    contract.check_choice("activation", activation, ACTIVATIONS)
    contract.check_choice("initializer", initializer, INITIALIZERS)
    sizes = list(layer_sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"`layer_sizes` must be a non-empty list of positive integers. Received: {layer_sizes!r}")
    rates = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * len(sizes)
    if len(rates) != len(sizes) or any(not 0.0 <= float(r) < 1.0 for r in rates):
        raise ValueError(
            f"`dropout` must be a rate in [0, 1) or one rate per hidden layer ({len(sizes)}). "
            f"Received: dropout={dropout!r}"
        )
    contract.check_number("l2", l2, min=0)
    shape = contract.check_input_shape(input_shape, default=default_shape, rank=None)

    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = contract.make_input(shape, input_tensor)
    x = keras.layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    for i, (units, rate) in enumerate(zip(sizes, rates), start=1):
        # Linear step Z = W A + b, then (batch norm), then the activation g(Z).
        x = keras.layers.Dense(
            units, kernel_initializer=INITIALIZERS[initializer], kernel_regularizer=reg,
            use_bias=not batch_norm, name=f"dense_{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn_{i}")(x)
        if activation == "leaky_relu":
            x = keras.layers.LeakyReLU(negative_slope=0.01, name=f"act_{i}")(x)
        else:
            x = keras.layers.Activation(activation, name=f"act_{i}")(x)
        if rate:
            x = keras.layers.Dropout(float(rate), name=f"dropout_{i}")(x)  # inverted dropout
    if include_top:
        x = keras.layers.Dense(
            classes, activation=_head_activation(classes, classifier_activation),
            kernel_initializer=INITIALIZERS[initializer], kernel_regularizer=reg,
            dtype="float32", name="predictions",
        )(x)
    model = keras.Model(inputs, x, name=name)
    return contract.load_weights(model, weights)


@register_model(
    task="classification",
    input_shape=(2,),
    reference="Rumelhart, Hinton & Williams 1986, Learning representations by back-propagating errors",
    description="One hidden layer (tanh) and a sigmoid or softmax output: the planar-data classifier.",
    recipe=DENSE_RECIPE,
    test_overrides={"classes": 3},
)
def shallow_nn(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1,
    classifier_activation="auto",
    name="shallow_nn",
    hidden_units=4,
    activation="tanh",
):
    """A two-layer network: one hidden layer of `hidden_units` and an output layer.

    Args:
        include_top: Whether to include the output layer.
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Input shape. Defaults to `(2,)` (the curriculum's planar data).
        pooling: Accepted for the common contract; features are already flat.
        classes: 1 for a sigmoid output, more for softmax. Defaults to 1.
        classifier_activation: `"auto"` (sigmoid for 1 class, softmax otherwise) or an activation.
        name: Model name.
        hidden_units: Units in the hidden layer. Defaults to 4.
        activation: Hidden activation. Defaults to `"tanh"`.
    """
    contract.check_int("hidden_units", hidden_units, min=1)
    return _mlp(
        layer_sizes=[hidden_units], activation=activation, initializer="glorot", l2=0.0, dropout=0.0,
        batch_norm=False, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, default_shape=(2,),
    )


@register_model(
    task="classification",
    input_shape=(64, 64, 3),
    reference="Goodfellow, Bengio & Courville 2016, Deep Learning, ch. 6-7",
    description="L-layer fully connected net with He/Glorot init, L2, inverted dropout and batch norm.",
    recipe=DENSE_RECIPE,
    test_overrides={"input_shape": (8, 8, 3), "layer_sizes": (8, 6), "batch_norm": True, "dropout": 0.1, "l2": 1e-4},
)
def deep_nn(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1,
    classifier_activation="auto",
    name="deep_nn",
    layer_sizes=(20, 7, 5),
    activation="relu",
    initializer="he",
    l2=0.0,
    dropout=0.0,
    batch_norm=False,
):
    """A deep L-layer network: `[LINEAR -> (BN) -> ACT -> (DROPOUT)] x (L-1) -> LINEAR -> OUTPUT`.

    Args:
        include_top: Whether to include the output layer.
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Input shape. Defaults to `(64, 64, 3)`.
        pooling: Accepted for the common contract; features are already flat.
        classes: 1 for a sigmoid output, more for softmax. Defaults to 1.
        classifier_activation: `"auto"` or an activation name.
        name: Model name.
        layer_sizes: Units of each hidden layer. Defaults to `(20, 7, 5)` (the curriculum's 4-layer net).
        activation: One of "relu", "leaky_relu", "tanh", "sigmoid".
        initializer: "he" (He et al. 2015, for ReLU) or "glorot" (Xavier, for tanh).
        l2: L2 weight decay `lambda` added to the cost. Defaults to 0.
        dropout: Inverted-dropout rate, one for all hidden layers or one per layer.
        batch_norm: Batch norm between each linear step and its activation.
    """
    return _mlp(
        layer_sizes=layer_sizes, activation=activation, initializer=initializer, l2=l2, dropout=dropout,
        batch_norm=batch_norm, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, default_shape=(64, 64, 3),
    )
