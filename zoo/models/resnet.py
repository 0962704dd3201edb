"""ResNet (He, Zhang, Ren & Sun 2016, Deep residual learning for image recognition).

One generic builder, `resnet()`, made of an identity block and a projection (convolutional) block:

- `resnet18/34`: basic blocks (two 3x3 convs), no conv biases (the paper / torchvision layout).
- `resnet50/101/152`: bottleneck blocks (1x1-3x3-1x1), stride on the first 1x1 and conv biases, exactly the
  layout and layer names of `keras.applications.ResNet50/101/152`, so their weight files load here.
- `resnet20/32/56`: the CIFAR-10 networks of section 4.2: a 3x3 stem and three stages of 16/32/64 filters with
  n basic blocks each (6n+2 layers); shortcut option A (parameter-free) by default, as in the paper.
"""

from __future__ import annotations

import keras

from zoo import contract
from zoo.models import layers
from zoo.models import weights as weight_files
from zoo.recipes import Recipe
from zoo.registry import WeightFiles, register_model

REFERENCE = "He, Zhang, Ren & Sun 2016, Deep residual learning for image recognition"
BN_EPSILON = 1.001e-5  # keras.applications' value (from the Caffe port)
BN_MOMENTUM = 0.99  # keras.applications' value (Keras' default), for the ImageNet ResNets
# The CIFAR ResNets use 0.9, as the Torch implementations the CIFAR numbers come from (fb.resnet.torch;
# PyTorch's momentum=0.1): short CPU runs of a few hundred steps never forget 0.99's initial statistics
# (measured: after 96 steps at lr 0.1, inference-mode accuracy 0.10 vs 0.99 with batch statistics).
CIFAR_BN_MOMENTUM = 0.9
SHORTCUTS = ("A", "B")
MIN_SIZE = 32
CIFAR_MIN_SIZE = 8
PREPROCESSING = "caffe"  # the mode of `preprocess_input`, which Keras' ImageNet ResNet files expect
RESNET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# keras.applications.resnet.WEIGHTS_HASHES: (with top, without top), md5.
RESNET_HASHES = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}


def imagenet_files(name):
    """Keras' published ImageNet files of ResNet `name` ("resnet50", "resnet101", "resnet152")."""
    return WeightFiles(
        url=RESNET_URL, pattern=name + "_weights_tf_dim_ordering_tf_kernels{top}.h5", md5=RESNET_HASHES[name]
    )


def feature_layers(blocks, cifar=False):
    """`{"C{k}": layer}`: the layer ending each stride-2**k level (the CIFAR ResNets reach stride 4: C0..C2)."""
    stages = [f"conv{i + 2}_block{n}_out" for i, n in enumerate(blocks)]
    if cifar:
        return {"C0": stages[0], "C1": stages[1], "C2": stages[2]}
    return {"C1": "conv1_relu", "C2": stages[0], "C3": stages[1], "C4": stages[2], "C5": stages[3]}


def preprocess_input(x, data_format=None):
    """keras.applications.resnet.preprocess_input: RGB->BGR and ImageNet mean subtraction ("caffe" mode).

    Use it for ImageNet weights (resnet50/101/152). The CIFAR ResNets train on per-channel standardized
    images instead (their recipe's `normalization="standardize"`).
    """
    return keras.applications.imagenet_utils.preprocess_input(x, data_format=data_format, mode=PREPROCESSING)


@keras.saving.register_keras_serializable(package="zoo")
class PadShortcut(keras.layers.Layer):
    """Shortcut option A: subsample by `strides` and zero-pad the extra channels (no parameters).

    Args:
        filters: Output channels (>= input channels).
        strides: Spatial subsampling factor.
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, x):
        if self.strides > 1:  # x[:, ::s, ::s]; its gradient (StridedSliceGrad) cost ~6% of a ResNet-20 step
            x = keras.ops.average_pool(x, 1, strides=self.strides, padding="valid")
        extra = self.filters - x.shape[-1]
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        h, w = (None if d is None else -(-d // self.strides) for d in input_shape[1:3])
        return (input_shape[0], h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def _conv_bn(x, filters, kernel, strides, use_bias, name, relu=True, bn_momentum=BN_MOMENTUM, zero_gamma=False):
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(
        axis=-1, momentum=bn_momentum, epsilon=BN_EPSILON, gamma_initializer="zeros" if zero_gamma else "ones",
        name=f"{name}_bn",
    )(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _residual_branch(x, filters, block, strides, use_bias, name, bn_momentum=BN_MOMENTUM, zero_init_last=False):
    """The main path: basic = 3x3-3x3, bottleneck = 1x1 (strided) - 3x3 - 1x1 (4x filters).

    `zero_init_last` starts the last batch norm's scale at zero, so every block starts as the identity
    (Goyal et al. 2017; timm's default): a randomly initialised deep ResNet then stays finite.
    """
    if block == "basic":
        x = _conv_bn(x, filters, 3, strides, use_bias, f"{name}_1", bn_momentum=bn_momentum)
        return _conv_bn(x, filters, 3, 1, use_bias, f"{name}_2", relu=False, bn_momentum=bn_momentum,
                        zero_gamma=zero_init_last)
    x = _conv_bn(x, filters, 1, strides, use_bias, f"{name}_1", bn_momentum=bn_momentum)
    x = _conv_bn(x, filters, 3, 1, use_bias, f"{name}_2", bn_momentum=bn_momentum)
    return _conv_bn(x, 4 * filters, 1, 1, use_bias, f"{name}_3", relu=False, bn_momentum=bn_momentum,
                    zero_gamma=zero_init_last)


def _merge(shortcut, x, name):
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def identity_block(
    x, filters, *, block="bottleneck", use_bias=True, name, bn_momentum=BN_MOMENTUM, zero_init_last=False
):
    """A residual block whose shortcut is the input itself (same shape in and out).

    Args:
        x: Input tensor with `filters` (basic) or `4 * filters` (bottleneck) channels.
        filters: Filters of the block's 3x3 convolution.
        block: "basic" or "bottleneck".
        use_bias: Whether the convolutions have biases.
        name: Layer-name prefix, e.g. "conv2_block2".
    """
    return _merge(x, _residual_branch(x, filters, block, 1, use_bias, name, bn_momentum, zero_init_last), name)


def projection_block(
    x, filters, *, block="bottleneck", strides=2, shortcut="B", use_bias=True, name, bn_momentum=BN_MOMENTUM,
    zero_init_last=False,
):
    """A residual block that changes shape; its shortcut projects the input to the output shape.

    Args:
        x: Input tensor.
        filters: Filters of the block's 3x3 convolution.
        block: "basic" or "bottleneck".
        strides: Spatial stride of the block.
        shortcut: "B" (strided 1x1 conv + batch norm, named `{name}_0_*`) or "A" (subsample and
            zero-pad channels, no parameters).
        use_bias: Whether the convolutions have biases.
        name: Layer-name prefix, e.g. "conv3_block1".
    """
    out_filters = filters if block == "basic" else 4 * filters
    if shortcut == "B":
        short = keras.layers.Conv2D(out_filters, 1, strides=strides, use_bias=use_bias, name=f"{name}_0_conv")(x)
        short = layers.BatchNormalization(
            axis=-1, momentum=bn_momentum, epsilon=BN_EPSILON, name=f"{name}_0_bn"
        )(short)
    else:
        short = PadShortcut(out_filters, strides, name=f"{name}_0_pad")(x)
    return _merge(
        short, _residual_branch(x, filters, block, strides, use_bias, name, bn_momentum, zero_init_last), name
    )


def stage(
    x, filters, blocks, *, block, strides, shortcut, use_bias, name, bn_momentum=BN_MOMENTUM, zero_init_last=False
):
    """`blocks` residual blocks named `{name}_block1..N`; the first projects when the shape changes."""
    out_filters = filters if block == "basic" else 4 * filters
    for i in range(1, blocks + 1):
        block_name = f"{name}_block{i}"
        if i == 1 and (strides != 1 or x.shape[-1] != out_filters):
            x = projection_block(
                x, filters, block=block, strides=strides, shortcut=shortcut, use_bias=use_bias, name=block_name,
                bn_momentum=bn_momentum, zero_init_last=zero_init_last,
            )
        else:
            x = identity_block(
                x, filters, block=block, use_bias=use_bias, name=block_name, bn_momentum=bn_momentum,
                zero_init_last=zero_init_last,
            )
    return x


def resnet(
    *,
    blocks,
    block,
    stem="imagenet",
    widths=(64, 128, 256, 512),
    shortcut="B",
    use_bias=True,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet",
    default_shape=(224, 224, 3),
    weights_name=None,
    bn_momentum=BN_MOMENTUM,
    zero_init_last=False,
):
    """The generic ResNet builder every variant wraps.

    Stage `i` (named `conv{i+2}`) has `blocks[i]` blocks of `widths[i]` filters; stages after the first
    halve the resolution. The ImageNet stem is a 7x7/2 conv and a 3x3/2 max pool (stride 4); the CIFAR
    stem is one 3x3 conv (stride 1).

    Args:
        blocks: Blocks per stage.
        block: "basic" or "bottleneck".
        stem: "imagenet" or "cifar".
        widths: Filters per stage (bottleneck outputs have 4x as many).
        shortcut: Projection shortcut "A" or "B" (see `projection_block`).
        use_bias: Conv biases (True in keras.applications' ResNet50/101/152).
        include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name:
            The builder contract (see `zoo.contract`).
        default_shape: Input shape when `input_shape` is None.
        weights_name: Registered model whose published ImageNet files `weights="imagenet"` loads, if any.
        bn_momentum: BatchNormalization momentum of the moving statistics.
        zero_init_last: Start each residual branch's last batch-norm scale at zero (identity blocks at
            initialisation; loaded weights replace it).
    """
    named = ("imagenet",) if weights_name else ()
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, named_weights=named,
    )
    contract.check_choice("shortcut", shortcut, SHORTCUTS)
    contract.check_number("bn_momentum", bn_momentum, min=0.0, below=1.0)
    min_size = MIN_SIZE if stem == "imagenet" else CIFAR_MIN_SIZE
    shape = contract.check_input_shape(input_shape, default=default_shape, min_size=(min_size, min_size))
    weight_files.check_imagenet_args(weights, include_top=include_top, classes=classes, input_shape=shape)
    weights = weight_files.resolve_weights(weights, weights_name=weights_name, include_top=include_top)

    inputs = contract.make_input(shape, input_tensor)
    if stem == "imagenet":
        x = keras.layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(inputs)
        x = keras.layers.Conv2D(widths[0], 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
        x = layers.BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=BN_EPSILON, name="conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
        x = keras.layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    else:
        x = _conv_bn(inputs, widths[0], 3, 1, use_bias, "conv1", bn_momentum=bn_momentum)
    for i, (width, n) in enumerate(zip(widths, blocks)):
        x = stage(
            x, width, n, block=block, strides=1 if i == 0 else 2, shortcut=shortcut,
            use_bias=use_bias, name=f"conv{i + 2}", bn_momentum=bn_momentum, zero_init_last=zero_init_last,
        )
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = contract.classifier(x, classes, classifier_activation)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return weight_files.load_weights(model, weights)


# ---------------------------------------------------------------------------------------------------
# Recipes. Fields beyond the basic ones, as the training loop reads them:
#   lr_schedule="piecewise", schedule_args={"boundaries_steps": [s1, s2], "values": [v0, v1, v2]}:
#       learning rate v0 until optimizer step s1, v1 until s2, then v2 (steps = iterations, not epochs);
#       {"boundaries_epochs": [...]} is the same in epochs, {"boundaries_fraction": [f1, f2]} in fractions
#       of the run's optimizer steps.
#   lr_schedule="exponential", schedule_args={"decay_rate": r, "decay_epochs": e}: lr * r ** (epoch / e).
#   extra["total_steps"]: stop after this many optimizer steps; `epochs` is the same budget in passes.
#   augment: "flip" (random horizontal flip), "pad_crop" (zero-pad by extra["pad_pixels"], random crop
#       back to size), "random_resized_crop" (scale/aspect augmentation of the ImageNet papers).

# Sec. 4.2: SGD, momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k
# iterations, stop at 64k (~182 epochs of the 45k/5k train/val split), flip + 4-pixel pad-and-crop,
# per-pixel mean subtraction. Table 6 test errors are the targets.
# The drops are written as fractions 0.5 and 0.75 of the run's steps: at CIFAR's size that is 32k and 48k;
# a smaller dataset (182 epochs of fewer steps) or a shorter `--epochs` keeps the paper's shape. Fixed step
# counts were never reached on small data, so the rate stayed 0.1 for the whole run; with the fractions, real
# digits 0-4 (646 training images) from scratch reach 0.995 test accuracy (BENCHMARKS.md, issue 19).
CIFAR_RESNET_RECIPE = Recipe(
    epochs=182,
    batch_size=128,
    optimizer="momentum",
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    lr_schedule="piecewise",
    schedule_args={"boundaries_fraction": [0.5, 0.75], "values": [0.1, 0.01, 0.001]},
    augment=("flip", "pad_crop"),
    val_split=0.1,
    normalization="standardize",
    extra={"total_steps": 64000, "pad_pixels": 4},
    published={"dataset": "CIFAR-10", "source": "He et al. 2016, Table 6"},
)

# Sec. 3.4: SGD, momentum 0.9, weight decay 1e-4, batch 256, lr 0.1 divided by 10 when the error
# plateaus (the common 30/60/90-epoch reading), scale augmentation + flip. Table 2/3: 10-crop top-1 error
# on ImageNet val.
IMAGENET_RESNET_RECIPE = Recipe(
    epochs=90,
    batch_size=256,
    optimizer="momentum",
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    lr_schedule="piecewise",
    schedule_args={"boundaries_epochs": [30, 60], "values": [0.1, 0.01, 0.001]},
    augment=("random_resized_crop", "flip"),
    val_split=0.0,
    # Training from scratch: per-channel standardisation from the training split (export bakes it in).
    # extra["preprocess"] is the input mapping the published ImageNet weights expect (`preprocess_input`,
    # caffe mode); `zoo finetune` applies it when it loads those weights.
    normalization="standardize",
    extra={"preprocess": "caffe"},
    published={"dataset": "ImageNet", "source": "He et al. 2016, Tables 2-3 (10-crop testing)"},
)


def _cifar_recipe(test_error):
    return CIFAR_RESNET_RECIPE.override(published={**CIFAR_RESNET_RECIPE.published, "test_error": test_error})


def _imagenet_recipe(top1_error):
    return IMAGENET_RESNET_RECIPE.override(
        published={**IMAGENET_RESNET_RECIPE.published, "top1_error": top1_error}
    )


def _classes_out(overrides):
    return (overrides.get("classes", 1000),)


_IMAGENET_TEST = {"input_shape": (32, 32, 3), "classes": 3}
_CIFAR_TEST = {"input_shape": (16, 16, 3), "classes": 3}


def _register(fn, *, recipe, description, blocks, cifar=False, pretrained=None):
    return register_model(
        task="classification",
        input_shape=(32, 32, 3) if cifar else (224, 224, 3),
        reference=REFERENCE + (", sec. 4.2 (CIFAR-10)" if cifar else ""),
        description=description,
        recipe=recipe,
        test_overrides=_CIFAR_TEST if cifar else _IMAGENET_TEST,
        output_shape=_classes_out,
        feature_layers=feature_layers(blocks, cifar=cifar),
        pretrained=pretrained,
        preprocessing=None if cifar else PREPROCESSING,
    )(fn)


_IMAGENET_DOC = """ResNet-{depth} ({kind} blocks {blocks}) for 224x224 ImageNet images.

    Args:
        include_top: Whether to include the global pool and the classifier.
        weights: None, {imagenet}a local weights file (.weights.h5 saved from
            the same architecture{compat}, or a legacy Keras .h5 file).
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(224, 224, 3)`; the minimum is 32x32.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of classes. Defaults to 1000.
        classifier_activation: Defaults to `"softmax"`; None returns logits.
        name: Model name.
        zero_init_last: Start the last batch-norm scale of every residual branch at zero, so each
            block is the identity at initialisation (Goyal et al. 2017, timm's default). Without it a
            randomly initialised ResNet-101/152 overflows in inference mode. Loaded weights replace it.
    """


def _imagenet_variant(depth, block, blocks, *, use_bias, top1_error, weights_name=None):
    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=f"resnet{depth}",
        zero_init_last=True,
    ):
        return resnet(
            blocks=blocks, block=block, use_bias=use_bias, include_top=include_top, weights=weights,
            input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation, name=name, weights_name=weights_name,
            zero_init_last=zero_init_last,
        )

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__module__ = __name__
    builder.__doc__ = _IMAGENET_DOC.format(
        depth=depth, kind=block, blocks="x".join(map(str, blocks)),
        imagenet='"imagenet" (Keras\' published file, see `zoo.models.weights.imagenet_weights_path`), ' if weights_name else "",
        compat=f" or from `keras.applications.ResNet{depth}`" if weights_name else "",
    )
    kind = "bottleneck (1x1-3x3-1x1)" if block == "bottleneck" else "basic (3x3-3x3)"
    extra = "; weight-compatible with keras.applications" if weights_name else ""
    return _register(
        builder, recipe=_imagenet_recipe(top1_error), blocks=blocks,
        pretrained={"imagenet": imagenet_files(weights_name)} if weights_name else None,
        description=f"ResNet-{depth}: {kind} residual blocks {'-'.join(map(str, blocks))}{extra}.",
    )


def _cifar_variant(depth, test_error):
    n = (depth - 2) // 6

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=10,
        classifier_activation="softmax",
        name=f"resnet{depth}",
        shortcut="A",
        bn_momentum=CIFAR_BN_MOMENTUM,
    ):
        return resnet(
            blocks=(n, n, n), block="basic", stem="cifar", widths=(16, 32, 64), shortcut=shortcut,
            use_bias=False, include_top=include_top, weights=weights, input_tensor=input_tensor,
            input_shape=input_shape, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation, name=name, default_shape=(32, 32, 3),
            bn_momentum=bn_momentum,
        )

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__module__ = __name__
    builder.__doc__ = f"""ResNet-{depth} for CIFAR-10 (6n+2 layers with n={n}): 3 stages of {n} basic blocks, 16/32/64 filters.

    Args:
        include_top: Whether to include the global pool and the classifier.
        weights: None or a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(32, 32, 3)`; the minimum is 8x8.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of classes. Defaults to 10.
        classifier_activation: Defaults to `"softmax"`.
        name: Model name.
        shortcut: "A" (identity with zero-padded channels, the paper's CIFAR choice, no parameters) or
            "B" (1x1 projection where the shape changes).
        bn_momentum: BatchNormalization momentum. Defaults to 0.9 (the Torch CIFAR implementations;
            Keras' 0.99 leaves short runs with stale moving statistics).
    """
    return _register(
        builder, recipe=_cifar_recipe(test_error), cifar=True, blocks=(n, n, n),
        description=f"CIFAR ResNet-{depth}: 3x{n} basic blocks of 16/32/64 filters, option-A shortcuts.",
    )


resnet18 = _imagenet_variant(18, "basic", (2, 2, 2, 2), use_bias=False, top1_error=0.2788)
resnet34 = _imagenet_variant(34, "basic", (3, 4, 6, 3), use_bias=False, top1_error=0.2503)
resnet50 = _imagenet_variant(50, "bottleneck", (3, 4, 6, 3), use_bias=True, top1_error=0.2285, weights_name="resnet50")
resnet101 = _imagenet_variant(
    101, "bottleneck", (3, 4, 23, 3), use_bias=True, top1_error=0.2175, weights_name="resnet101"
)
resnet152 = _imagenet_variant(
    152, "bottleneck", (3, 8, 36, 3), use_bias=True, top1_error=0.2143, weights_name="resnet152"
)
resnet20 = _cifar_variant(20, 0.0875)
resnet32 = _cifar_variant(32, 0.0751)
resnet56 = _cifar_variant(56, 0.0697)
