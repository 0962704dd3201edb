"""MobileNet V1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

Both follow keras.applications' layer order and names exactly (`conv_dw_1`, `block_3_expand`, ...), so
weights saved from `keras.applications.MobileNet/MobileNetV2` and Keras' published ImageNet files load here.
"""

from __future__ import annotations

import keras

from zoo import contract
from zoo.models import layers
from zoo.models import weights as weight_files
from zoo.recipes import Recipe
from zoo.registry import WeightFiles, register_model

MIN_SIZE = 32
PREPROCESSING = "tf"  # the mode of `preprocess_input` ([-1, 1]), which Keras' ImageNet MobileNet files expect
# Keras' published files (keras.applications gives no hashes for them), at these widths and input sizes.
V1_FILES = WeightFiles(
    url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/",
    pattern="mobilenet_{alpha}_{rows}_tf{top}.h5", top=("", "_no_top"),
    alphas={1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}, rows=(128, 160, 192, 224),
)
V2_FILES = WeightFiles(
    url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
    pattern="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}{top}.h5", top=("", "_no_top"),
    alphas={a: str(a) for a in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)}, rows=(96, 128, 160, 192, 224),
)
# The last pointwise conv at each stride.
V1_FEATURE_LAYERS = {
    "C1": "conv_pw_1_relu", "C2": "conv_pw_3_relu", "C3": "conv_pw_5_relu", "C4": "conv_pw_11_relu",
    "C5": "conv_pw_13_relu",
}
# The expansion of the first block at the next stride (wide maps, as in the TF segmentation tutorial and
# SSDLite), and the final 1x1 conv for C5.
V2_FEATURE_LAYERS = {
    "C1": "block_1_expand_relu", "C2": "block_3_expand_relu", "C3": "block_6_expand_relu",
    "C4": "block_13_expand_relu", "C5": "out_relu",
}
# (pointwise filters, stride) of MobileNet V1's 13 depthwise separable blocks.
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))
# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's bottleneck stages (Table 2).
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def preprocess_input(x, data_format=None):
    """keras.applications.mobilenet(_v2).preprocess_input: scales pixels from [0, 255] to [-1, 1] ("tf" mode)."""
    return keras.applications.imagenet_utils.preprocess_input(x, data_format=data_format, mode=PREPROCESSING)


def _check(alpha, weights, include_top, classes, input_shape, *, files):
    contract.check_number("alpha", alpha, above=0)
    shape = contract.check_input_shape(input_shape, default=(224, 224, 3), min_size=(MIN_SIZE, MIN_SIZE))
    weight_files.check_imagenet_args(weights, include_top=include_top, classes=classes, input_shape=shape)
    file_rows = shape[0] if shape[0] == shape[1] and shape[0] in files.rows else 224
    if weights == "imagenet":
        contract.check_choice("alpha", alpha, tuple(files.alphas), when="weights='imagenet'")
    return shape, file_rows


def _make_divisible(v, divisor=8):
    """Rounds channel counts to a multiple of `divisor`, never below 90% of `v` (as keras.applications)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _correct_pad(x, kernel_size=3):
    """Zero padding that makes a stride-2 'valid' conv match TF's 'same' output size."""
    adjust = (1, 1) if x.shape[1] is None else (1 - x.shape[1] % 2, 1 - x.shape[2] % 2)
    k = kernel_size // 2
    return ((k - adjust[0], k), (k - adjust[1], k))


# -------------------------------------------------------------------------------------------- V1
def depthwise_separable_block(x, filters, alpha, depth_multiplier=1, strides=1, block_id=1):
    """Depthwise 3x3 conv -> BN -> ReLU6 -> pointwise 1x1 conv (`filters * alpha`) -> BN -> ReLU6."""
    if strides != 1:
        x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = keras.layers.DepthwiseConv2D(
        3, padding="same" if strides == 1 else "valid", depth_multiplier=depth_multiplier,
        strides=strides, use_bias=False, name=f"conv_dw_{block_id}",
    )(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_dw_{block_id}_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = keras.layers.Conv2D(int(filters * alpha), 1, padding="same", use_bias=False, name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_pw_{block_id}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


MOBILENET_RECIPE = Recipe(
    # Howard et al. 2017 train with RMSprop and asynchronous SGD "similar to Inception V3", little weight
    # decay (none on depthwise filters) and less augmentation: Inception V3's lr 0.045 decayed by 0.94
    # every 2 epochs. The epoch count is not published.
    epochs=100,
    batch_size=96,
    optimizer="rmsprop",
    lr=0.045,
    momentum=0.9,
    weight_decay=4e-5,
    lr_schedule="exponential",
    schedule_args={"decay_rate": 0.94, "decay_epochs": 2},
    augment=("random_resized_crop", "flip"),
    val_split=0.0,
    # From scratch: per-channel standardisation from the training split. extra["preprocess"] is what the
    # ImageNet weights expect ("tf" mode, [-1, 1]); `zoo finetune` applies it when it loads them.
    normalization="standardize",
    label_smoothing=0.1,
    extra={"preprocess": "tf"},
    published={"dataset": "ImageNet", "top1_accuracy": 0.706, "source": "Howard et al. 2017, Table 8 (1.0 MobileNet-224)"},
)

MOBILENET_V2_RECIPE = MOBILENET_RECIPE.override(
    # Sandler et al. 2018, sec. 6.1: RMSprop (decay and momentum 0.9), weight decay 4e-5, lr 0.045 decayed
    # by 0.98 per epoch, batch 96 per worker; the epoch count is not published.
    schedule_args={"decay_rate": 0.98, "decay_epochs": 1},
    epochs=300,
    label_smoothing=0.0,
    published={"dataset": "ImageNet", "top1_accuracy": 0.72, "source": "Sandler et al. 2018, Table 4 (1.0, 224)"},
)


def _classes_out(overrides):
    return (overrides.get("classes", 1000),)


@register_model(
    task="classification",
    input_shape=(224, 224, 3),
    reference="Howard et al. 2017, MobileNets: Efficient convolutional neural networks for mobile vision applications",
    description="MobileNet V1: 13 depthwise separable (depthwise 3x3 + pointwise 1x1) blocks, width multiplier alpha.",
    recipe=MOBILENET_RECIPE,
    test_overrides={"input_shape": (32, 32, 3), "classes": 3, "alpha": 0.25},
    output_shape=_classes_out,
    feature_layers=V1_FEATURE_LAYERS,
    pretrained={"imagenet": V1_FILES},
    preprocessing=PREPROCESSING,
)
def mobilenet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="mobilenet",
    alpha=1.0,
    depth_multiplier=1,
    dropout=1e-3,
):
    """MobileNet V1, layer for layer as `keras.applications.MobileNet`.

    Args:
        include_top: Whether to include the pool, dropout and 1x1-conv classifier.
        weights: None, "imagenet" (Keras' published file for `alpha` in 0.25/0.5/0.75/1.0 at 128-224
            pixels; other sizes use the 224 file) or a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(224, 224, 3)`; the minimum is 32x32.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of classes. Defaults to 1000.
        classifier_activation: Defaults to `"softmax"`; None returns logits.
        name: Model name.
        alpha: Width multiplier: every layer has `alpha` times the paper's filters. Defaults to 1.0.
        depth_multiplier: Depthwise channel multiplier (the paper's resolution multiplier is the input
            size instead). Defaults to 1.
        dropout: Dropout before the classifier. Defaults to 0.001.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, named_weights=("imagenet",),
    )
    shape, rows = _check(alpha, weights, include_top, classes, input_shape, files=V1_FILES)
    contract.check_int("depth_multiplier", depth_multiplier, min=1)
    if weights == "imagenet":
        contract.check_choice("depth_multiplier", depth_multiplier, (1,), when="weights='imagenet'")
    contract.check_number("dropout", dropout, min=0.0, below=1.0)
    weights = weight_files.resolve_weights(
        weights, weights_name="mobilenet", include_top=include_top, alpha=alpha, rows=rows
    )

    inputs = contract.make_input(shape, input_tensor)
    x = keras.layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(axis=-1, name="conv1_bn")(x)
    x = keras.layers.ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, strides) in enumerate(V1_BLOCKS, start=1):
        x = depthwise_separable_block(x, filters, alpha, depth_multiplier, strides, block_id)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
        x = keras.layers.Reshape((classes,), name="reshape_2")(x)
        x = keras.layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return weight_files.load_weights(model, weights)


# -------------------------------------------------------------------------------------------- V2
def inverted_residual_block(x, expansion, filters, alpha, strides, block_id):
    """Expand 1x1 (ReLU6) -> depthwise 3x3 (ReLU6) -> linear 1x1 projection; residual when shapes match."""
    in_channels = x.shape[-1]
    out_channels = _make_divisible(int(filters * alpha))
    inputs = x
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = keras.layers.Conv2D(expansion * in_channels, 1, padding="same", use_bias=False, name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=f"{prefix}expand_BN")(x)
        x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    if strides == 2:
        x = keras.layers.ZeroPadding2D(padding=_correct_pad(x), name=f"{prefix}pad")(x)
    x = keras.layers.DepthwiseConv2D(
        3, strides=strides, use_bias=False, padding="same" if strides == 1 else "valid", name=f"{prefix}depthwise"
    )(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=f"{prefix}depthwise_BN")(x)
    x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = keras.layers.Conv2D(out_channels, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=f"{prefix}project_BN")(x)
    if in_channels == out_channels and strides == 1:
        return keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


@register_model(
    task="classification",
    input_shape=(224, 224, 3),
    reference="Sandler, Howard, Zhu, Zhmoginov & Chen 2018, MobileNetV2: Inverted residuals and linear bottlenecks",
    description="MobileNetV2: inverted residual blocks with linear bottlenecks, width multiplier alpha.",
    recipe=MOBILENET_V2_RECIPE,
    test_overrides={"input_shape": (32, 32, 3), "classes": 3, "alpha": 0.35},
    output_shape=_classes_out,
    feature_layers=V2_FEATURE_LAYERS,
    pretrained={"imagenet": V2_FILES},
    preprocessing=PREPROCESSING,
)
def mobilenet_v2(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="mobilenet_v2",
    alpha=1.0,
):
    """MobileNetV2, layer for layer as `keras.applications.MobileNetV2`.

    Args:
        include_top: Whether to include the global pool and the classifier.
        weights: None, "imagenet" (Keras' published file for `alpha` in 0.35/0.5/0.75/1.0/1.3/1.4 at
            96-224 pixels; other sizes use the 224 file) or a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(224, 224, 3)`; the minimum is 32x32.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of classes. Defaults to 1000.
        classifier_activation: Defaults to `"softmax"`; None returns logits.
        name: Model name.
        alpha: Width multiplier (channels rounded to multiples of 8). Defaults to 1.0.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, named_weights=("imagenet",),
    )
    shape, rows = _check(alpha, weights, include_top, classes, input_shape, files=V2_FILES)
    weights = weight_files.resolve_weights(
        weights, weights_name="mobilenet_v2", include_top=include_top, alpha=alpha, rows=rows
    )

    inputs = contract.make_input(shape, input_tensor)
    x = keras.layers.Conv2D(
        _make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="Conv1"
    )(inputs)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    block_id = 0
    for expansion, filters, repeats, first_stride in V2_STAGES:
        for i in range(repeats):
            x = inverted_residual_block(x, expansion, filters, alpha, first_stride if i == 0 else 1, block_id)
            block_id += 1
    last = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = keras.layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = keras.layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = contract.classifier(x, classes, classifier_activation)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return weight_files.load_weights(model, weights)
