"""U-Net (Ronneberger, Fischer & Brox 2015): an encoder-decoder with skip connections for segmentation.

The contracting path halves the resolution `depth` times (two 3x3 convolutions, then 2x2 max pooling); the
expanding path restores it with 2x2 `Conv2DTranspose` ("up-convolutions"), each followed by concatenation with the
encoder map of the same resolution and two 3x3 convolutions. A 1x1 convolution gives per-pixel class scores at the
input resolution. Convolutions use "same" padding (the paper's unpadded 572 -> 388 tiling is not needed here), so
height and width must be multiples of `2**depth`.

The encoder can also be a zoo backbone (`encoder="mobilenet_v2"`, `"resnet50"`, ...): its feature maps at strides
2, 4, 8, 16 (`C1`-`C4`) become the skips and `C5` (stride 32) the bottleneck, optionally with pretrained weights
and frozen.
"""

from __future__ import annotations

import difflib

import keras

from zoo import contract
from zoo.models import layers
from zoo.recipes import Recipe
from zoo.registry import register_model

# Trained on the built-in shapes/segmentation data (64x64, 7 classes): Adam with warmup + cosine decay, horizontal
# flips applied to image and mask together by the pipeline, and Dice + cross-entropy so that small shapes count as
# much as the large background. The paper trained with SGD (momentum 0.99), elastic deformations and a
# border-weighted cross-entropy on 512x512 EM tiles.
UNET_RECIPE = Recipe(
    epochs=15,
    batch_size=32,
    optimizer="adam",
    lr=3e-3,
    lr_schedule="cosine",
    schedule_args={"warmup_epochs": 1},
    augment=("flip",),
    early_stopping=None,
    val_split=0.1,
    normalization="scale",
    extra={"loss": "dice_ce", "class_weights": None, "ignore_index": 255},
    published={"dataset": "ISBI 2012 EM segmentation", "warping_error": 0.000353, "rand_error": 0.0382},
)


def _conv_block(x, filters, *, batch_norm, name):
    """Two 3x3 convolutions, each followed by (batch norm and) ReLU."""
    for i in (1, 2):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm, kernel_initializer="he_normal",
            name=f"{name}_conv{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _check_size(shape, depth):
    """Height and width must be multiples of 2**depth; the error names the nearest sizes that work."""
    step = 2**depth
    bad = [d for d in shape[:2] if d is not None and d % step]
    if not bad:
        return
    near = [max(step, (d // step) * step) if d is not None else None for d in shape[:2]]
    up = [-(-d // step) * step if d is not None else None for d in shape[:2]]
    fmt = lambda hw: "x".join(str(d) for d in hw)  # noqa: E731
    raise ValueError(
        f"U-Net with depth={depth} needs height and width that are multiples of 2**depth={step}. "
        f"Received: input_shape={tuple(shape)!r}; sizes that work: {fmt(near)} or {fmt(up)} "
        f"(or a smaller `depth`)."
    )


def _backbone_depths(encoder):
    """`{depth: level name}` a backbone offers (`C{k}` is its map at stride 2**k), checking the name."""
    from zoo.models.features import FEATURE_LAYERS

    if encoder not in FEATURE_LAYERS:
        close = difflib.get_close_matches(str(encoder), list(FEATURE_LAYERS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown `encoder` {encoder!r}.{hint} Allowed: None (the paper's encoder) or one of "
            f"{', '.join(sorted(FEATURE_LAYERS))}."
        )
    return {int(level[1:]): level for level in FEATURE_LAYERS[encoder]}


def _backbone_encoder(encoder, inputs, shape, depth, encoder_weights, freeze_encoder):
    """Skips `{stride: tensor}`, the bottleneck and the backbone's layers, built on `inputs` (one flat graph)."""
    from zoo.models.features import feature_extractor

    levels = {k: name for k, name in _backbone_depths(encoder).items() if k <= depth}
    order = sorted(levels)
    extractor = feature_extractor(
        encoder, shape, levels=[levels[k] for k in order], weights=encoder_weights, input_tensor=inputs
    )
    features = dict(zip(order, extractor.outputs))
    encoder_layers = [layer for layer in extractor.layers if not isinstance(layer, keras.layers.InputLayer)]
    if freeze_encoder:
        for layer in encoder_layers:
            layer.trainable = False
    return {2**k: features[k] for k in order if k < depth}, features[depth]


@register_model(
    task="segmentation",
    input_shape=(128, 128, 3),
    reference="Ronneberger, Fischer & Brox 2015, U-Net: Convolutional networks for biomedical image segmentation",
    description="U-Net: conv encoder (or a zoo backbone), Conv2DTranspose decoder with skips, per-pixel softmax.",
    recipe=UNET_RECIPE,
    test_overrides={"input_shape": (32, 32, 3), "depth": 2, "filters": 4, "classes": 3, "dropout": 0.1},
    output_shape=lambda o: tuple(o["input_shape"][:2]) + (o["classes"],),
)
def unet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=3,
    classifier_activation="softmax",
    name="unet",
    depth=None,
    filters=16,
    batch_norm=True,
    dropout=0.0,
    encoder=None,
    encoder_weights=None,
    freeze_encoder=False,
):
    """U-Net.

    Args:
        include_top: Whether to end with the 1x1 classifier convolution. Without it the model returns the last
            decoder feature map (`[H, W, filters]`, per-pixel features at input resolution), globally pooled to
            `[filters]` when `pooling` is set.
        weights: None or a path to a local weights file for the whole model.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(128, 128, 3)`; height and width must be multiples of `2**depth` (None allowed).
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of mask classes, background included. Defaults to 3.
        classifier_activation: Per-pixel activation. Defaults to `"softmax"`; None gives logits.
        name: Model name.
        depth: Number of 2x poolings in the encoder, 1-6. Defaults to 4, as in the paper. With a backbone
            `encoder`, the level `C{depth}` (stride `2**depth`) is the bottleneck and the levels below it are
            the skips; defaults to the backbone's deepest level (5 for ResNets and MobileNets).
        filters: Filters of the first level, doubled at each level down. Defaults to 16 (the paper: 64,
            about 31M parameters; 16 trains on a CPU).
        batch_norm: Batch normalization after every 3x3 convolution (not in the paper; speeds up training).
        dropout: Dropout rate at the end of the contracting path, as in the paper (which uses 0.5).
        encoder: None for the paper's encoder, or a zoo backbone name (e.g. `"mobilenet_v2"`, `"resnet50"`):
            its layers (named as in `zoo.models.features.FEATURE_LAYERS`) are built into this model, and
            its `C1..C{depth}` maps are the skips and the bottleneck. Feed it inputs prepared as its weights
            expect (`zoo.models.features.preprocess_input(encoder)`).
        encoder_weights: Backbone weights: None, `"imagenet"` or a local weights file (backbone encoders only).
        freeze_encoder: Make the encoder (the backbone, or the paper encoder's `enc*`/`bottleneck_*` layers)
            non-trainable; frozen batch norms run in inference mode. Load weights with `weights` or
            `encoder_weights` first; `zoo.transfer` unfreezes for fine-tuning.

    Returns:
        A `keras.Model` mapping `[B, H, W, C]` images to `[B, H, W, classes]` per-pixel class scores.

    Raises:
        ValueError: For any bad argument, including sizes that are not multiples of `2**depth`.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    if encoder is None:
        allowed = range(1, 7)
        depth = 4 if depth is None else depth
    else:
        allowed = sorted(k for k in _backbone_depths(encoder) if k >= 1)
        depth = max(allowed) if depth is None else depth
    contract.check_int("depth", depth)
    contract.check_choice("depth", depth, allowed, when=None if encoder is None else f"encoder={encoder!r}")
    contract.check_int("filters", filters, min=1)
    contract.check_choice("batch_norm", batch_norm, (True, False))
    contract.check_number("dropout", dropout, min=0.0, below=1.0)
    if encoder is None and encoder_weights is not None:
        raise ValueError(
            "`encoder_weights` needs a backbone `encoder` such as 'mobilenet_v2' (use `weights` for a whole "
            f"U-Net). Received: encoder=None, encoder_weights={encoder_weights!r}"
        )
    contract.check_choice("freeze_encoder", freeze_encoder, (True, False))
    shape = contract.check_input_shape(input_shape, default=(128, 128, 3), min_size=(2**depth, 2**depth))
    _check_size(shape, depth)

    inputs = contract.make_input(shape, input_tensor)
    if encoder is None:
        skips, x = {}, inputs
        for i in range(depth):
            x = _conv_block(x, filters * 2**i, batch_norm=batch_norm, name=f"enc{i + 1}")
            skips[2**i] = x
            x = keras.layers.MaxPooling2D(2, name=f"enc{i + 1}_pool")(x)
        x = _conv_block(x, filters * 2**depth, batch_norm=batch_norm, name="bottleneck")
    else:
        skips, x = _backbone_encoder(encoder, inputs, shape, depth, encoder_weights, freeze_encoder)
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="bottleneck_dropout")(x)

    # Expanding path: a 2x2 transposed convolution doubles the resolution ("transpose conv restores the
    # dimensions"), then the encoder map of that resolution is concatenated when there is one.
    for i in reversed(range(depth)):
        stride = 2**i
        x = keras.layers.Conv2DTranspose(
            filters * stride, 2, strides=2, kernel_initializer="he_normal", name=f"dec{i + 1}_up"
        )(x)
        if stride in skips:
            x = keras.layers.Concatenate(name=f"dec{i + 1}_concat")([skips[stride], x])
        x = _conv_block(x, filters * stride, batch_norm=batch_norm, name=f"dec{i + 1}")

    if include_top:
        x = keras.layers.Conv2D(
            classes, 1, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    if freeze_encoder and encoder is None:
        for layer in model.layers:
            if layer.name.startswith(("enc", "bottleneck_")):
                layer.trainable = False
    return contract.load_weights(model, weights)
