"""Linear classifiers: logistic regression and softmax regression (the curriculum's first models)."""

from __future__ import annotations

import keras

from zoo import contract
from zoo.recipes import Recipe
from zoo.registry import register_model

LINEAR_RECIPE = Recipe(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, early_stopping=5)


def _linear(
    *, units, activation, include_top, weights, input_tensor, input_shape, pooling, name,
    default_shape, l2,
):
    shape = contract.check_input_shape(input_shape, default=default_shape, rank=None)
    inputs = contract.make_input(shape, input_tensor)
    x = keras.layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    if include_top:
        reg = keras.regularizers.L2(l2) if l2 else None
        x = keras.layers.Dense(
            units, activation=activation, kernel_regularizer=reg, dtype="float32", name="predictions"
        )(x)
    model = keras.Model(inputs, x, name=name)
    return contract.load_weights(model, weights)


@register_model(
    task="classification",
    input_shape=(64, 64, 3),
    reference="Cox 1958, The regression analysis of binary sequences",
    description="One sigmoid unit on the flattened input (binary classification).",
    recipe=LINEAR_RECIPE,
    test_overrides={"input_shape": (8, 8, 3)},
)
def logistic_regression(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1,
    classifier_activation="sigmoid",
    name="logistic_regression",
    l2=0.0,
):
    """Logistic regression: `y_hat = sigmoid(w.x + b)` on the flattened input.

    Args:
        include_top: Whether to include the sigmoid unit; without it the model
            returns the flattened input (its features).
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Input shape. Defaults to `(64, 64, 3)` (the curriculum's cat images).
        pooling: Accepted for the common contract; features are already flat.
        classes: Must be 1 (a binary classifier); use `softmax_regression` for more.
        classifier_activation: Activation of the unit. Defaults to `"sigmoid"`.
        name: Model name.
        l2: L2 penalty on the weights.

    Returns:
        A `keras.Model` producing `(batch, 1)` probabilities.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, allowed_classes=(1,),
    )
    return _linear(
        units=1, activation=classifier_activation, include_top=include_top, weights=weights,
        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, name=name,
        default_shape=(64, 64, 3), l2=l2,
    )


@register_model(
    task="classification",
    input_shape=(28, 28, 1),
    reference="Bishop 2006, Pattern Recognition and Machine Learning, sec. 4.3.4",
    description="Multi-class linear classifier (softmax of an affine map of the input).",
    recipe=LINEAR_RECIPE,
    test_overrides={"input_shape": (8, 8, 1), "classes": 4},
)
def softmax_regression(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="softmax_regression",
    l2=0.0,
):
    """Softmax regression: `softmax(W x + b)` over `classes` on the flattened input.

    Args:
        include_top: Whether to include the softmax layer.
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Input shape. Defaults to `(28, 28, 1)`.
        pooling: Accepted for the common contract; features are already flat.
        classes: Number of classes (>= 2 for a meaningful softmax). Defaults to 10.
        classifier_activation: Defaults to `"softmax"`.
        name: Model name.
        l2: L2 penalty on the weights.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    return _linear(
        units=classes, activation=classifier_activation, include_top=include_top, weights=weights,
        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, name=name,
        default_shape=(28, 28, 1), l2=l2,
    )
