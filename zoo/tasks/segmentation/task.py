"""The segmentation `Task`: loss, metrics, evaluation, mask report and serving outputs for `zoo.train`/export."""

from __future__ import annotations

import os

from zoo.tasks.base import Task, register_task
from zoo.tasks.segmentation import losses as losses_lib
from zoo.tasks.segmentation import metrics as metrics_lib
from zoo.tasks.segmentation import report as report_lib


def _field(data_spec, key, default=None):
    if data_spec is None:
        return default
    if isinstance(data_spec, dict):
        return data_spec.get(key, default)
    return getattr(data_spec, key, default)


def _extra(recipe, key, default=None):
    extra = getattr(recipe, "extra", None) or {}
    return extra.get(key, default)


def num_classes_of(model):
    return int(model.outputs[0].shape[-1])


def outputs_logits(model) -> bool:
    """True when the model's last layer has no softmax/sigmoid (its outputs are logits)."""
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "linear") not in ("softmax", "sigmoid")


def resolve_class_weights(setting, data_spec, num_classes, ignore_index=255):
    """None, a list (used as is), or "median_frequency"/"inverse_frequency" counted on the training split."""
    if setting is None or isinstance(setting, (list, tuple)):
        return None if setting is None else [float(w) for w in setting]
    if setting not in losses_lib.WEIGHTING:
        raise ValueError(
            f"Unknown `class_weights` {setting!r}; allowed: None, a list of weights, "
            f"{', '.join(repr(w) for w in losses_lib.WEIGHTING)}."
        )
    import pipelines

    shape = _field(data_spec, "image_shape")
    ds = pipelines.build(
        _field(data_spec, "source"), split="train", task="segmentation", batch_size=256, augment=(),
        image_size=tuple(shape[:2]) if shape else None, shuffle=False,
    )
    counts = losses_lib.class_frequencies((y for _, y in ds), num_classes, ignore_index)
    return losses_lib.class_weights(counts, setting)


def _loss(model, recipe, data_spec):
    ignore = int(_extra(recipe, "ignore_index", 255))
    weights = resolve_class_weights(_extra(recipe, "class_weights"), data_spec, num_classes_of(model), ignore)
    return losses_lib.get_loss(
        _extra(recipe, "loss", "dice_ce"), from_logits=outputs_logits(model), ignore_index=ignore,
        class_weights=weights,
    )


def _metrics(model, recipe, data_spec):
    return metrics_lib.keras_metrics(num_classes_of(model), int(_extra(recipe, "ignore_index", 255)))


def _class_names(model, data_spec):
    names = _field(data_spec, "class_names")
    n = num_classes_of(model)
    return list(names) if names and len(names) == n else [str(i) for i in range(n)]


def _evaluate(model, dataset, data_spec, recipe):
    return metrics_lib.evaluate_dataset(
        model, dataset, num_classes_of(model), _class_names(model, data_spec),
        int(_extra(recipe, "ignore_index", 255)),
    )


def _report(model, dataset, data_spec, run_dir):
    path = os.path.join(os.fspath(run_dir), "masks.png")
    return [report_lib.model_mask_report(
        model, dataset, path, num_classes=num_classes_of(model), class_names=_class_names(model, data_spec),
        normalization=_field(data_spec, "normalization"),
    )]


def _serving_outputs(model, outputs, export_spec=None):
    """`mask`: int32 class id per pixel `[B, H, W]`; `probabilities`: per-pixel scores `[B, H, W, C]`."""
    import tensorflow as tf  # export is TensorFlow-only; Keras' ops.argmax adds a BitwiseAnd LiteRT lacks
    from keras import ops

    scores = ops.softmax(outputs, axis=-1) if outputs_logits(model) else outputs
    return {"mask": tf.argmax(outputs, axis=-1, output_type=tf.int32), "probabilities": scores}


SEGMENTATION = register_task(Task(
    name="segmentation", loss=_loss, metrics=_metrics, evaluate=_evaluate, report=_report,
    serving_outputs=_serving_outputs,
))

