"""Transfer learning: freeze and unfreeze layers, discriminative learning rates, new heads, pretrained sources.

    >>> from zoo import transfer
    >>> src = transfer.load_pretrained("keras:MobileNetV2", input_shape=(96, 96, 3))   # weights="imagenet"
    >>> model = transfer.with_new_head(src.model, classes=5, preprocess=src.preprocess)
    >>> transfer.freeze_backbone(model)              # everything but the new head
    >>> transfer.unfreeze(model, from_layer=120)     # later: the top of the backbone too
    >>> opt = transfer.discriminative_optimizer("adam", transfer.layerwise_lr_multipliers(model, decay=0.3))
    >>> print(transfer.trainable_summary(model, collapse=True))

Modules: `layers` (selection, freeze/unfreeze, `trainable_summary`), `optimizers` (`layerwise_lr_multipliers`;
the optimizers themselves live in `zoo.training.layerwise`), `heads` (`with_new_head`, `preprocess_affine`, the input
adapters), `sources` (`Pretrained`, `load_pretrained`) and `finetune` (the two-phase library behind `zoo finetune`).

Layers are picked by name, glob (`conv5_*`), regex (`re:block_1[0-9]_.*`), block name (`conv5`, `block_13`:
every layer named `<block>_...`), index or slice over the flattened layer list (nested models are walked, so
`from_layer=120` means what it means for `keras.applications.MobileNetV2().layers[120]`), or a predicate.

A BatchNormalization layer with `trainable=False` runs in inference mode in Keras 3 (it normalises with its
moving statistics and never updates them), so a frozen backbone's statistics stay those of the pre-training data;
`unfreeze` keeps BatchNormalization frozen unless `train_bn=True`.
"""

from __future__ import annotations

from zoo.training.layerwise import LAYERWISE_OPTIMIZERS, discriminative_optimizer
from zoo.transfer.heads import PREPROCESS_MODES, adapt_inputs, preprocess_affine, with_new_head
from zoo.transfer.layers import (
    ADAPTER_LAYERS,
    HEAD_LAYERS,
    backbone_layers,
    freeze,
    freeze_backbone,
    head_layers,
    is_batch_norm,
    leaves,
    select_layers,
    trainable_summary,
    unfreeze,
)
from zoo.transfer.optimizers import layerwise_lr_multipliers
from zoo.transfer.sources import KERAS_PREPROCESS, Pretrained, load_pretrained

globals().update({cls.__name__: cls for cls in LAYERWISE_OPTIMIZERS.values()})

__all__ = [
    "ADAPTER_LAYERS", "HEAD_LAYERS", "KERAS_PREPROCESS", "LAYERWISE_OPTIMIZERS", "PREPROCESS_MODES", "Pretrained",
    "adapt_inputs", "backbone_layers", "discriminative_optimizer", "freeze", "freeze_backbone", "head_layers",
    "is_batch_norm", "layerwise_lr_multipliers", "leaves", "load_pretrained", "preprocess_affine", "select_layers",
    "trainable_summary", "unfreeze", "with_new_head",
]
