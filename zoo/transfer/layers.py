"""Which layers train: selection by name/glob/regex/block/index/predicate, freeze, unfreeze, a summary table.

A BatchNormalization layer with `trainable=False` runs in inference mode in Keras 3 (it normalises with its
moving statistics and never updates them), so a frozen backbone's statistics stay those of the pre-training data;
`unfreeze` keeps BatchNormalization frozen unless `train_bn=True`.
"""

from __future__ import annotations

import difflib
import fnmatch
import re

import keras
import numpy as np

HEAD_LAYERS = ("head_pool", "head_dropout", "predictions")
ADAPTER_LAYERS = ("input_resize", "input_channels", "input_preprocess")  # fixed maps, never trained


def leaves(model) -> list:
    """Layers of `model` in order, nested Functional/Sequential models replaced by their own layers."""
    seen, out = set(), []

    def walk(layer):
        if isinstance(layer, keras.Model) and hasattr(layer, "layers") and layer.layers:
            for sub in layer.layers:
                walk(sub)
        elif id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)

    for layer in model.layers:
        walk(layer)
    return out


def backbone_layers(model) -> list:
    """The layers of `model` that are neither the new head, an input adapter nor an InputLayer, in order."""
    skip = set(HEAD_LAYERS) | set(ADAPTER_LAYERS)
    return [layer for layer in leaves(model)
            if layer.name not in skip and not isinstance(layer, keras.layers.InputLayer)]


def is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _closest(name, names):
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    return f" Closest layer names: {', '.join(close)}." if close else ""


def _match_string(layers, s):
    names = [layer.name for layer in layers]
    if s.startswith("re:"):
        try:
            pattern = re.compile(s[3:])
        except re.error as exc:
            raise ValueError(f"Invalid regex in layer selector {s!r}: {exc}") from None
        return [layer for layer in layers if pattern.fullmatch(layer.name)]
    if any(c in s for c in "*?["):
        return [layer for layer in layers if fnmatch.fnmatchcase(layer.name, s)]
    if s in names:
        return [layers[names.index(s)]]
    return [layer for layer in layers if layer.name.startswith(s + "_")]  # a block: conv5, block_13


def _match(layers, sel):
    """The layers one selector picks (see `select_layers`)."""
    if isinstance(sel, bool):
        raise ValueError(f"Invalid layer selector {sel!r}.")
    if isinstance(sel, int):
        if not -len(layers) <= sel < len(layers):
            raise ValueError(f"Layer index {sel} is out of range; the model has {len(layers)} layers.")
        return [layers[sel]]
    if isinstance(sel, slice):
        return layers[sel]
    if isinstance(sel, re.Pattern):
        return [layer for layer in layers if sel.fullmatch(layer.name)]
    if isinstance(sel, str):
        return _match_string(layers, sel)
    if callable(sel):
        return [layer for layer in layers if sel(layer)]
    raise ValueError(
        f"Invalid layer selector {sel!r}; allowed: a name, glob, 're:' regex, block name, "
        "index, slice, compiled regex or predicate."
    )


def _start_index(model, layers, from_layer):
    names = [layer.name for layer in layers]
    if isinstance(from_layer, str):
        if from_layer not in names:
            raise ValueError(f"No layer named {from_layer!r} in model {model.name!r}.{_closest(from_layer, names)}")
        return names.index(from_layer)
    if isinstance(from_layer, int) and not isinstance(from_layer, bool):
        if not -len(layers) <= from_layer < len(layers):
            raise ValueError(f"from_layer={from_layer} is out of range; the model has {len(layers)} layers.")
        return from_layer % len(layers)
    raise ValueError(f"`from_layer` must be a layer index or name. Received: from_layer={from_layer!r}")


def select_layers(model, layers=None, *, from_layer=None):
    """The layers of `model` picked by `layers` and/or `from_layer`, in model order.

    Args:
        model: A Keras model (nested models are walked).
        layers: None (every layer), or a selector or list of selectors: a layer name; a glob (`"conv5_*"`);
            a regex prefixed `re:`; a block name (`"conv5"`, `"block_13"`: the layers named `<block>_...`);
            an int index or a slice over the flattened layer list; a compiled `re.Pattern`; or a
            predicate `layer -> bool`.
        from_layer: Also limit the selection to the layers from this one (index or name) to the end.

    Raises:
        ValueError: A selector matches nothing (the message names the closest layer names).
    """
    flat = leaves(model)
    if layers is None:
        picked = list(flat)
    else:
        ids = set()
        for sel in list(layers) if isinstance(layers, (list, tuple, set)) else [layers]:
            found = _match(flat, sel)
            if not found and not isinstance(sel, slice):
                names = [layer.name for layer in flat]
                raise ValueError(f"No layer of model {model.name!r} matches {sel!r}.{_closest(sel, names)}")
            ids.update(id(layer) for layer in found)
        picked = [layer for layer in flat if id(layer) in ids]
    if from_layer is not None:
        tail = {id(layer) for layer in flat[_start_index(model, flat, from_layer):]}
        picked = [layer for layer in picked if id(layer) in tail]
    return picked


def _set_trainable(model, layers, value, *, train_bn=True):
    flat = leaves(model)
    state = {id(layer): layer.trainable for layer in flat}
    changed = []
    for layer in layers:
        if layer.name in ADAPTER_LAYERS or (value and is_batch_norm(layer) and not train_bn):
            continue
        state[id(layer)] = value
        changed.append(layer.name)
    # Containers must be trainable for any leaf inside them to train; the setter propagates down,
    # so open every container first, then set each leaf to its wanted state.
    model.trainable = True
    for layer in flat:
        layer.trainable = state[id(layer)]
    return changed


def freeze(model, layers=None, *, from_layer=None):
    """Sets the selected layers (default: all) to `trainable=False`; returns their names.

    Frozen BatchNormalization layers run in inference mode. Recompile the model afterwards.
    See `select_layers` for `layers` and `from_layer`.
    """
    return _set_trainable(model, select_layers(model, layers, from_layer=from_layer), False)


def unfreeze(model, layers=None, *, from_layer=None, train_bn=False):
    """Sets the selected layers (default: all) to `trainable=True`; returns their names.

    Args:
        model: A Keras model.
        layers: Selector(s), see `select_layers`.
        from_layer: Unfreeze only from this layer (index or name) on, e.g. `from_layer=120`.
        train_bn: Also unfreeze BatchNormalization layers. Defaults to False: with little data, batch
            statistics are noisy, so BN keeps its pre-trained moving statistics (inference mode).

    The input adapters `with_new_head` adds (`ADAPTER_LAYERS`) are never unfrozen. Recompile afterwards.
    """
    return _set_trainable(model, select_layers(model, layers, from_layer=from_layer), True, train_bn=train_bn)


def head_layers(model) -> list:
    """Names of the layers `with_new_head` added (`HEAD_LAYERS`) that `model` has."""
    names = {layer.name for layer in leaves(model)}
    return [n for n in HEAD_LAYERS if n in names]


def freeze_backbone(model) -> list:
    """Freezes everything but the new head (`head_layers`); returns the names of the trainable layers."""
    freeze(model)
    return unfreeze(model, head_layers(model))


def _state(layer):
    if layer.name in ADAPTER_LAYERS:
        return "fixed (input adapter)"
    if layer.trainable:
        return "trainable"
    return "frozen (BN inference mode)" if is_batch_norm(layer) else "frozen"


def _collapse(rows):
    """One row per run of consecutive rows in the same state (BatchNormalization rows do not break a run)."""
    runs = []
    for row in rows:
        key = runs[-1]["key"] if row["bn"] and runs else row["state"].split(" (BN")[0]
        if runs and runs[-1]["key"] == key:
            run = runs[-1]
            run["last"], run["params"] = row, run["params"] + row["params"]
            run["types"].add(row["type"])
        else:
            run = {"key": key, "first": row, "last": row, "params": row["params"], "types": {row["type"]},
                   "bn_frozen": 0, "count": 0}
            runs.append(run)
        run["count"] += 1
        run["bn_frozen"] += row["bn"] and row["state"].startswith("frozen")
    out = []
    for run in runs:
        first, last = run["first"], run["last"]
        state = run["key"] + (f", {run['bn_frozen']} BN frozen (inference mode)"
                              if run["bn_frozen"] and run["key"] != "frozen" else "")
        out.append({
            "index": first["index"] if first is last else f"{first['index']}-{last['index']}",
            "layer": first["layer"] if first is last else f"{first['layer']} .. {last['layer']}",
            "type": first["type"] if len(run["types"]) == 1 else f"{run['count']} layers",
            "params": run["params"], "state": state,
        })
    return out


def trainable_summary(model, *, all_layers=False, collapse=False) -> str:
    """A table of which layers train: index, name, type, parameters and state.

    Args:
        model: A Keras model.
        all_layers: Also list layers without weights.
        collapse: One row per run of consecutive layers in the same state (BatchNormalization layers
            do not break a run; the row counts the frozen ones), for long backbones.

    Returns:
        The table and a total line, as a string.
    """
    rows = []
    for i, layer in enumerate(leaves(model)):
        params = sum(int(np.prod(w.shape)) for w in layer.weights)
        if params or all_layers:
            rows.append({"index": str(i), "layer": layer.name, "type": type(layer).__name__,
                         "params": params, "state": _state(layer), "bn": is_batch_norm(layer)})
    if collapse:
        rows = _collapse(rows)
    header = ["index", "layer", "type", "params", "state"]
    table = [header] + [[r["index"], r["layer"], r["type"], f"{r['params']:,}", r["state"]] for r in rows]
    widths = [max(len(r[c]) for r in table) for c in range(5)]
    lines = ["  ".join(cell.rjust(w) if c in (0, 3) else cell.ljust(w) for c, (cell, w) in
                       enumerate(zip(r, widths))).rstrip() for r in table]
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.weights) - trainable
    frozen_bn = sum(1 for layer in leaves(model) if is_batch_norm(layer) and not layer.trainable)
    lines.append(
        f"Trainable: {trainable:,} params; non-trainable: {frozen:,} params "
        f"({frozen_bn} BatchNormalization layers frozen in inference mode)."
    )
    return "\n".join(lines)
