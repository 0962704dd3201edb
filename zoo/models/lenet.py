"""LeNet-5 (LeCun et al. 1998): conv-pool-conv-pool-fc-fc-softmax for grayscale digits."""

from __future__ import annotations

import keras

from zoo import contract
from zoo.recipes import Recipe
from zoo.registry import register_model

# LeCun et al. 1998 (sec. III.C, V.B) trained 20 passes with a decreasing step size and report 0.95% MNIST
# test error, 0.8% with distortions: small random planar affine maps (shifts, scaling, squeezing, shearing). Issue
# 19 reports 98.83% on MNIST after 10 epochs of an earlier recipe whose "crop" (random-resized crop of 50-100% of
# the area, aspect 3/4-4/3) zooms up to 1.4x: on a digit centred with 4 px of margin that cuts strokes off, which
# is a stronger change than any of the paper's. This recipe keeps that recipe's 10 epochs and schedule (Adam 1e-3,
# 3e-4 from epoch 8; the paper's four-step shape with shifts did no better on dev: 0.958, seed 0) and swaps the
# crop for the paper's kind of distortion, one random affine map per image: rotation within +-10 degrees, scale
# 0.9-1.1, shift up to 7% of a side (2 px on 28x28), so no stroke leaves the frame.
# MNIST is not available offline; candidates were compared on the dev split of scikit-learn's digits at MNIST's
# step count (10 epochs x ~930 steps, 3 seeds, mean +- SE; benchmarks/lenet5_digits.py, BENCHMARKS.md "LeNet-5"):
# affine dev 0.991 +- 0.002, the old crop 0.986 +- 0.004 (0.984 +- 0.006 in an earlier round), crop limited to
# 80-100% of the area 0.979 +- 0.000, 2-px shifts alone (`pad_crop`) 0.975 +- 0.005. Chosen on dev (the lead over
# the crop is under one of 144 images); test (not used to choose) 0.996 +- 0.001 for affine, at or above the old
# crop in every seed (0.992 +- 0.002; 0.988 +- 0.002 earlier). This is a proxy (1,293 distinct digits upscaled from 8x8), so
# 99.0% on MNIST itself is expected, not shown.
LENET5_RECIPE = Recipe(
    epochs=10,
    batch_size=64,
    optimizer="adam",
    lr=1e-3,
    lr_schedule="piecewise",
    schedule_args={"boundaries_epochs": [8], "values": [1e-3, 3e-4]},
    augment=("affine",),
    augment_args={"rotate": 10.0, "scale": (0.9, 1.1), "shift": 0.07},
    early_stopping=None,
    val_split=0.1,
    normalization="scale",
    published={"dataset": "MNIST", "test_error": 0.0095, "test_error_with_distortions": 0.008},
)


@register_model(
    task="classification",
    input_shape=(28, 28, 1),
    reference="LeCun, Bottou, Bengio & Haffner 1998, Gradient-based learning applied to document recognition",
    description="LeNet-5: conv(6,5x5)-pool-conv(16,5x5)-pool-fc120-fc84-softmax for 28x28 digits.",
    recipe=LENET5_RECIPE,
    test_overrides={"classes": 5},
)
def lenet5(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="lenet5",
    activation="tanh",
    subsampling="avg",
):
    """LeNet-5.

    C1 (6 maps, 5x5, "same" padding so 28x28 MNIST maps like the paper's padded 32x32),
    S2 (2x2 subsampling), C3 (16 maps, 5x5), S4, C5/F6 (120 and 84 units), output.

    Args:
        include_top: Whether to include F5, F6 and the classifier; without them
            the model returns the S4 feature map (pooled when `pooling` is set).
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(28, 28, 1)`; the minimum is 12x12.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of classes. Defaults to 10.
        classifier_activation: Defaults to `"softmax"`.
        name: Model name.
        activation: Hidden activation, `"tanh"` as in the paper or `"relu"`.
        subsampling: `"avg"` (the paper's subsampling) or `"max"`.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    contract.check_choice("activation", activation, ("tanh", "relu"))
    contract.check_choice("subsampling", subsampling, ("avg", "max"))
    shape = contract.check_input_shape(input_shape, default=(28, 28, 1), min_size=(12, 12))
    pool_layer = keras.layers.AveragePooling2D if subsampling == "avg" else keras.layers.MaxPooling2D

    inputs = contract.make_input(shape, input_tensor)
    x = keras.layers.Conv2D(6, 5, padding="same", activation=activation, name="c1")(inputs)
    x = pool_layer(2, name="s2")(x)
    x = keras.layers.Conv2D(16, 5, activation=activation, name="c3")(x)
    x = pool_layer(2, name="s4")(x)
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(120, activation=activation, name="c5")(x)
        x = keras.layers.Dense(84, activation=activation, name="f6")(x)
        x = contract.classifier(x, classes, classifier_activation)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return contract.load_weights(model, weights)
