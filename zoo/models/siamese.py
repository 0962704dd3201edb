"""Siamese embedding network for one-shot learning: image -> L2-normalised embedding f(x).

Two images are compared through the same network, `d(a, b) = ||f(a) - f(b)||^2`, trained with the triplet
loss (`zoo.tasks.embedding`). `view="embedding"` (the default, what the registry and `zoo train` use) is the one-branch
embedding network; `view="pair"` is the two-branch verification model sharing it.
"""

from __future__ import annotations

import keras

from zoo import contract
from zoo.models import layers
from zoo.recipes import Recipe
from zoo.registry import register_model

DEFAULT_BACKBONE = "convnet"
VIEWS = ("embedding", "pair")

# FaceNet: margin 0.2 on L2-normalised embeddings with semi-hard mining in P x K batches; Adam.
# The zoo defaults (P=16 identities x K=4 images, a cosine-decayed 3e-3, 30 epochs with random crops) are sized
# for the one-shot targets on a 2-core CPU. Chosen on the validation identities (5-way / 20-way): 12 epochs
# without augmentation over-fitted (0.955 / 0.856); crops + 20 epochs gave 0.957-0.971 / 0.875-0.895 over three
# runs, too close to the 0.95 / 0.85 targets for CPU run-to-run noise (about +-0.01); 30 epochs gave 0.972 / 0.920
# (about 25% more CPU time). Colour augmentation and dropout 0.3 did not help (the glyphs already vary in colour
# and noise); width 24 was not compared to the end (its run did not finish in the time available).
SIAMESE_RECIPE = Recipe(
    epochs=30,
    batch_size=64,
    optimizer="adam",
    lr=3e-3,
    lr_schedule="cosine",
    augment=("crop",),
    early_stopping=None,
    normalization="scale",
    extra={"loss": "triplet", "margin": 0.2, "mining": "semi_hard", "images_per_identity": 4,
           "identity_split": [0.8, 0.1, 0.1]},
    published={"paper": "FaceNet (Schroff et al. 2015)", "lfw_verification_accuracy": 0.9963},
)


@keras.saving.register_keras_serializable(package="zoo")
class PairDistance(keras.layers.Layer):
    """Squared Euclidean distance between two embeddings: `[B, D], [B, D] -> [B, 1]`."""

    def call(self, inputs):
        a, b = inputs
        return keras.ops.sum(keras.ops.square(a - b), axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (1,)


def _convnet(x, width):
    """The small CPU default: four conv3x3-BN-ReLU-maxpool blocks of width, 2w, 4w, 8w filters.

    BatchNorm's moving statistics use momentum 0.9, not Keras' 0.99: one-shot recipes train for a few
    hundred steps, too few for 0.99 to forget its initial statistics (evaluation then sees wrong ones).
    """
    for i, mult in enumerate((1, 2, 4, 8), start=1):
        x = keras.layers.Conv2D(width * mult, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return x


def _zoo_backbone(x, backbone, shape, backbone_weights):
    from zoo.models.features import FEATURE_LAYERS, feature_extractor

    deepest = sorted(FEATURE_LAYERS.get(backbone) or {"C5": None})[-1]  # C5, or C2 for CIFAR ResNets
    features = feature_extractor(backbone, shape, levels=(deepest,), weights=backbone_weights)
    out = features(x)
    return out[-1] if isinstance(out, (list, tuple)) else out


def pair_view(embedding_model, name="siamese_pair"):
    """The two-branch verification model: `(image_a, image_b) -> ||f(a) - f(b)||^2` `[B, 1]`.

    Both branches are `embedding_model` itself (shared weights).
    """
    shape = tuple(embedding_model.inputs[0].shape[1:])
    a = keras.layers.Input(shape=shape, name="image_a")
    b = keras.layers.Input(shape=shape, name="image_b")
    d = PairDistance(dtype="float32", name="distance")([embedding_model(a), embedding_model(b)])
    return keras.Model([a, b], d, name=name)


@register_model(
    task="embedding",
    input_shape=(64, 64, 3),
    reference="Schroff, Kalenichenko & Philbin 2015, FaceNet; Koch, Zemel & Salakhutdinov 2015, Siamese networks for one-shot recognition",
    description="Siamese embedding net (small convnet or any zoo backbone) -> L2-normalised 128-d embedding, triplet loss.",
    recipe=SIAMESE_RECIPE,
    test_overrides={"input_shape": (32, 32, 3), "width": 4, "embedding_dim": 8},
    output_shape=lambda o: (o.get("embedding_dim", 128),),
)
def siamese(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation=None,
    name="siamese",
    backbone=DEFAULT_BACKBONE,
    backbone_weights=None,
    embedding_dim=128,
    width=16,
    dropout=0.0,
    view="embedding",
):
    """Siamese embedding network.

    Args:
        include_top: With the embedding head (flatten or global pooling, dropout, a linear
            projection to `embedding_dim` and L2 normalisation: the embedding); without it, the
            backbone's last feature map (pooled when `pooling` is set), for custom heads.
        weights: None or a path to a local weights file of the embedding network (either view).
        input_tensor: Optional Keras tensor to use as the input (`view="embedding"` only).
        input_shape: Defaults to `(64, 64, 3)`; the minimum is 16x16 for the default convnet.
        pooling: None, `"avg"` or `"max"`. With the head: how the feature map becomes a vector before
            the projection (None flattens it, keeping the spatial layout; use "avg" with big
            backbones). Without the head: global pooling, or None for the feature map.
        classes: Not used: an embedding has no classes (identities are open-ended). Accepted, as None
            or an integer, so generic callers may pass a dataset's class count; use `embedding_dim`.
        classifier_activation: Must be None (the head is linear then L2-normalised).
        name: Model name.
        backbone: `"convnet"` (a small 4-block CNN, fast on a CPU) or the name of any zoo backbone
            (`zoo.models.features.feature_extractor`, e.g. `"resnet18"`, `"mobilenet_v2"`).
        backbone_weights: Weights for a zoo backbone (e.g. `"imagenet"` or a local file).
        embedding_dim: Embedding size. Defaults to 128 (FaceNet).
        width: Filters of the first convnet block (doubled per block). Defaults to 16.
        dropout: Dropout rate before the projection.
        view: `"embedding"` (one branch, `[B, embedding_dim]`) or `"pair"` (two inputs, the squared
            distance `[B, 1]`; see `pair_view`).
    """
    contract.check_choice("view", view, VIEWS)
    if classes is not None:
        contract.check_classes(classes)
    if classifier_activation is not None:
        raise ValueError(
            "`classifier_activation` must be None: siamese outputs L2-normalised embeddings. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=1, classifier_activation=None
    )
    contract.check_int("embedding_dim", embedding_dim, min=1)
    contract.check_int("width", width, min=1)
    contract.check_number("dropout", dropout, min=0.0, below=1.0)
    if not isinstance(backbone, str):
        raise ValueError(f"`backbone` must be a name such as {DEFAULT_BACKBONE!r}. Received: backbone={backbone!r}")
    if view == "pair" and input_tensor is not None:
        raise ValueError("`input_tensor` is not supported with view='pair' (the pair view has two inputs).")
    if backbone == DEFAULT_BACKBONE and backbone_weights is not None:
        raise ValueError(
            f"`backbone_weights` applies to zoo backbones; the {DEFAULT_BACKBONE!r} backbone has none. "
            f"Received: backbone_weights={backbone_weights!r}"
        )
    shape = contract.check_input_shape(
        input_shape, default=(64, 64, 3), min_size=(16, 16) if backbone == DEFAULT_BACKBONE else None
    )

    inputs = contract.make_input(shape, input_tensor if view == "embedding" else None)
    if backbone == DEFAULT_BACKBONE:
        x = _convnet(inputs, width)
    else:
        x = _zoo_backbone(inputs, backbone, shape, backbone_weights)
    if include_top:
        # Flattening keeps the spatial layout of the strokes/parts; global pooling suits big backbones.
        x = contract.pool(x, pooling) if pooling else keras.layers.Flatten(name="flatten")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name="dropout")(x)
        x = keras.layers.Dense(embedding_dim, dtype="float32", name="projection")(x)
        x = keras.layers.UnitNormalization(axis=-1, dtype="float32", name="embedding")(x)
    else:
        x = contract.pool(x, pooling)
    model = keras.Model(inputs, x, name=name if view == "embedding" else f"{name}_embedding")
    model = contract.load_weights(model, weights)
    return pair_view(model, name=name) if view == "pair" else model
