"""Discriminative learning rates: which layer gets which factor (the optimizers live in `zoo.training.layerwise`)."""

from __future__ import annotations

import re

from zoo.training.layerwise import (  # noqa: F401  (public here too: `transfer.discriminative_optimizer`)
    LAYERWISE_OPTIMIZERS,
    discriminative_optimizer,
)
from zoo.transfer.layers import HEAD_LAYERS, leaves, select_layers

globals().update({cls.__name__: cls for cls in LAYERWISE_OPTIMIZERS.values()})

_BLOCK = re.compile(r"^(.*?block_?\d+[a-z]?)(?:_|$)")


def _head_ids(model, head):
    ids = set()
    for sel in head if isinstance(head, (list, tuple)) else [head]:
        try:
            ids.update(id(layer) for layer in select_layers(model, sel))
        except ValueError:
            pass
    return ids


def _group_of(body, groups):
    """`(group index per layer, number of groups)` for the layers below the head."""
    if groups == "blocks":
        keys, current = [], None
        blocky = any(_BLOCK.match(layer.name) for layer in body)
        for layer in body:
            found = _BLOCK.match(layer.name)
            current = found.group(1) if found else (current if blocky and current else layer.name)
            keys.append(current)
        order = list(dict.fromkeys(keys))
        return [order.index(k) for k in keys], len(order)
    if isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1:
        n_groups = min(groups, max(len(body), 1))
        return [i * n_groups // max(len(body), 1) for i in range(len(body))], n_groups
    raise ValueError(f"`groups` must be an integer >= 1 or 'blocks'. Received: groups={groups!r}")


def layerwise_lr_multipliers(model, *, decay=0.5, groups=3, head=HEAD_LAYERS) -> dict:
    """Layer-wise decayed learning-rate multipliers for the trainable layers of `model`.

    The head keeps factor 1; the trainable layers below it are cut into `groups` consecutive groups, and
    the k-th group counted from the top gets `decay ** k` (the top of the backbone learns fastest, the
    early, generic layers slowest: "discriminative fine-tuning", Howard & Ruder 2018).

    Args:
        model: A Keras model; only its trainable layers with weights take part.
        decay: Factor between neighbouring groups, in (0, 1].
        groups: Number of groups (int >= 1), or "blocks" for one group per block of the layer names
            (`conv5_block3`, `block_13`; layers outside any block join the block before them), or one
            group per layer when no layer name has a block.
        head: Selectors of the head layers (factor 1). Missing ones are ignored.

    Returns:
        `{variable path: factor}` for `discriminative_optimizer`.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1]. Received: decay={decay!r}")
    trainable = [layer for layer in leaves(model) if layer.trainable and layer.trainable_weights]
    head_ids = _head_ids(model, head)
    body = [layer for layer in trainable if id(layer) not in head_ids]
    group_of, n_groups = _group_of(body, groups)
    out = {}
    for layer, g in zip(body, group_of):
        for v in layer.trainable_weights:
            out[v.path] = float(decay ** (n_groups - g))
    for layer in trainable:
        if id(layer) in head_ids:
            for v in layer.trainable_weights:
                out[v.path] = 1.0
    return out
