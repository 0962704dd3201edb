"""YOLO (Redmon et al. 2016; anchors from Redmon & Farhadi 2017): an S x S grid detector.

Each cell predicts, for each of B anchors, `[p_c, b_x, b_y, b_h, b_w, c_1..c_K]`, so the
output is `(S, S, B, 5 + K)` raw logits (3x3 cells, one anchor, 3 classes: 3x3x8 once
the anchor axis is flattened). `zoo.tasks.detection` encodes targets in the same layout,
decodes outputs to boxes and runs score filtering and NMS.
"""

from __future__ import annotations

import math

import keras

from zoo import contract
from zoo.models import layers
from zoo.recipes import Recipe
from zoo.registry import register_model

# k-means (1 - IoU, k=3) on the shapes/detection training boxes: `zoo.tasks.detection.kmeans_anchors`.
DEFAULT_ANCHORS = ((0.22, 0.22), (0.31, 0.31), (0.41, 0.42))
LEVEL_OF_STRIDE = {4: "C2", 8: "C3", 16: "C4", 32: "C5"}

YOLO_RECIPE = Recipe(
    epochs=30,
    batch_size=32,
    optimizer="adam",
    lr=2e-3,
    lr_schedule="cosine",
    schedule_args={"warmup_epochs": 1},
    augment=("flip", "crop", "color"),
    early_stopping=None,
    val_split=0.1,
    normalization="scale",
    extra={
        "lambda_coord": 5.0,
        "lambda_obj": 1.0,
        "lambda_noobj": 0.5,
        "lambda_class": 1.0,
        "score_threshold": 0.01,
        "serving_score_threshold": 0.25,
        "iou_threshold": 0.5,
        "max_detections": 20,
    },
    published={"dataset": "PASCAL VOC 2007 test (YOLOv2 416x416)", "map50": 0.768},
)


@keras.saving.register_keras_serializable(package="zoo")
class YoloHead(keras.layers.Layer):
    """Reshapes `(S, S, B * (5 + K))` to `(S, S, B, 5 + K)` and carries the anchors in its config.

    Args:
        anchors: `[B, 2]` anchor `(h, w)` in image units.
        classes: `K`.
    """

    def __init__(self, anchors, classes, **kwargs):
        super().__init__(**kwargs)
        self.anchors = [[float(h), float(w)] for h, w in anchors]
        self.classes = int(classes)

    def call(self, x):
        s1, s2 = x.shape[1], x.shape[2]
        return keras.ops.reshape(x, (-1, s1, s2, len(self.anchors), 5 + self.classes))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2], len(self.anchors), 5 + self.classes)

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors, "classes": self.classes}


def head_of(model) -> YoloHead:
    """The `YoloHead` of a YOLO model (its anchors and class count)."""
    try:
        return model.get_layer("yolo_head")
    except ValueError:
        raise ValueError(f"Model {model.name!r} has no 'yolo_head' layer; it is not a zoo YOLO model.") from None


def _check_anchors(anchors):
    try:
        pairs = [(float(h), float(w)) for h, w in anchors]
    except (TypeError, ValueError):
        pairs = []
    if not pairs or any(not (0 < v <= 1) for p in pairs for v in p):
        raise ValueError(
            "`anchors` must be a non-empty list of (h, w) pairs in (0, 1] (fractions of the image), e.g. "
            f"{[list(a) for a in DEFAULT_ANCHORS]}. Received: anchors={anchors!r}"
        )
    return pairs


def _conv(x, filters, kernel, name, strides=1):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(0.1, name=f"{name}_act")(x)


def _tiny_backbone(inputs, grid_size, width):
    """Conv-BN-LeakyReLU stages, each opened by a stride-2 conv, until the map is S x S; then two 3x3 convs."""
    steps = int(round(math.log2(inputs.shape[1] // grid_size)))
    x = inputs
    for i in range(steps):
        x = _conv(x, width * 2**i, 3, f"stage{i + 1}_down", strides=2)
        if i > 0:
            x = _conv(x, width * 2**i, 3, f"stage{i + 1}")
    x = _conv(x, width * 2**steps, 3, "grid_a")
    return _conv(x, width * 2**steps, 3, "grid_b")


def _named_backbone(inputs, backbone, grid_size, backbone_weights):
    from zoo.models.features import feature_extractor  # noqa: PLC0415

    stride = inputs.shape[1] // grid_size
    level = LEVEL_OF_STRIDE.get(stride, "C5")
    extractor = feature_extractor(
        backbone, tuple(inputs.shape[1:]), levels=(level,), weights=backbone_weights, input_tensor=inputs
    )
    x = extractor.outputs[0]
    if x.shape[1] != grid_size:
        x = keras.layers.Resizing(grid_size, grid_size, name="to_grid")(x)
    return x


@register_model(
    task="detection",
    input_shape=(64, 64, 3),
    reference="Redmon, Divvala, Girshick & Farhadi 2016, You Only Look Once; Redmon & Farhadi 2017, YOLO9000",
    description="YOLO grid detector: backbone -> S x S x B x (5 + K) [p_c, b_x, b_y, b_h, b_w, classes].",
    recipe=YOLO_RECIPE,
    test_overrides={"input_shape": (32, 32, 3), "grid_size": 4, "anchors": ((0.2, 0.2), (0.5, 0.3)),
                    "classes": 3, "width": 4},
    output_shape=lambda o: (o["grid_size"], o["grid_size"], len(o["anchors"]), 5 + o["classes"]),
)
def yolo(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=6,
    classifier_activation=None,
    name="yolo",
    backbone="tiny",
    grid_size=None,
    anchors=DEFAULT_ANCHORS,
    width=24,
    backbone_weights=None,
):
    """A YOLO detector.

    Args:
        include_top: Whether to add the detection head; without it the model
            returns the backbone's S x S feature map (pooled when `pooling` is set).
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Defaults to `(64, 64, 3)`.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classes: Number of object classes `K`. Defaults to 6 (the built-in shapes/detection).
        classifier_activation: Must be None: the output is raw logits that
            `zoo.tasks.detection.decode` turns into probabilities and boxes.
        name: Model name.
        backbone: "tiny" (a small conv net that trains on a CPU), or a zoo
            backbone with feature levels (`zoo.models.features.FEATURE_LAYERS`:
            "mobilenet_v2", "resnet50", ...), read at stride input size / S.
        grid_size: `S`. Defaults to input size / 8. With "tiny", input size / S
            must be a power of two.
        anchors: `[B, 2]` anchor `(h, w)` as fractions of the image, e.g. from
            `zoo.tasks.detection.kmeans_anchors`. Defaults to three anchors fitted to
            the built-in shapes/detection boxes.
        width: Filters of the first "tiny" stage (doubling per stage). Defaults to 24.
        backbone_weights: Weights of a named backbone (None, or what
            `zoo.models.features.feature_extractor` accepts).
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes, classifier_activation=None
    )
    if classifier_activation not in (None, "linear"):
        raise ValueError(
            "`classifier_activation` must be None for YOLO (raw logits, decoded by zoo.tasks.detection.decode). "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    from zoo.models.features import FEATURE_LAYERS  # noqa: PLC0415

    allowed = ("tiny",) + tuple(sorted(FEATURE_LAYERS))
    if backbone not in allowed:
        import difflib

        close = difflib.get_close_matches(str(backbone), allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown `backbone` {backbone!r}; allowed: {', '.join(allowed)}.{hint}")
    anchors = _check_anchors(anchors)
    contract.check_int("width", width, min=1)
    shape = contract.check_input_shape(input_shape, default=(64, 64, 3), min_size=(8, 8))
    if shape[0] != shape[1]:
        raise ValueError(f"YOLO takes square inputs. Received: input_shape={input_shape!r}")
    size = shape[0]
    if grid_size is None:
        grid_size = max(1, size // 8)
    contract.check_int("grid_size", grid_size, min=1, max=size)
    if backbone == "tiny":
        ratio = size // grid_size
        if size % grid_size or ratio & (ratio - 1):
            good = [size >> k for k in range(0, 7) if size >> k >= 1 and size % (size >> k) == 0]
            closest = min(good, key=lambda g: abs(g - grid_size))
            raise ValueError(
                f"With backbone='tiny', input size / grid_size must be a power of two; input size is {size}. "
                f"Received: grid_size={grid_size!r} (closest valid: {closest})"
            )

    inputs = contract.make_input(shape, input_tensor)
    if backbone == "tiny":
        x = _tiny_backbone(inputs, grid_size, width)
    else:
        x = _named_backbone(inputs, backbone, grid_size, backbone_weights)
        x = _conv(x, 128, 3, "neck")
    if include_top:
        x = keras.layers.Conv2D(len(anchors) * (5 + classes), 1, dtype="float32", name="predictions")(x)
        x = YoloHead(anchors, classes, dtype="float32", name="yolo_head")(x)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return contract.load_weights(model, weights)
