"""The classification and sequence `Task`s: loss, metrics, data, evaluation and reports.

A model whose output has one unit is a binary classifier (sigmoid, binary
cross-entropy on 0/1 labels); otherwise sparse categorical cross-entropy.
Logits are assumed when the head has no softmax/sigmoid activation.
"""

from __future__ import annotations

import os
import weakref

import keras
import numpy as np
from keras import ops

from callbacks import reports
from zoo.tasks.base import Task, register_task


@keras.saving.register_keras_serializable(package="zoo")
class SparseCategoricalCrossentropyLS(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing (Keras' sparse loss has none).

    Args:
        label_smoothing: Mass spread uniformly over all classes.
        from_logits: Whether predictions are logits.
    """

    def __init__(self, label_smoothing=0.0, from_logits=False, name="sparse_categorical_crossentropy_ls", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.from_logits = float(label_smoothing), bool(from_logits)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "from_logits": self.from_logits}


def _head(model):
    units = int(model.output_shape[-1])
    activation = getattr(model.layers[-1], "activation", None)
    act_name = getattr(activation, "__name__", "")
    return units, act_name not in ("softmax", "sigmoid")


def classification_loss(model, recipe, data_spec):
    units, logits = _head(model)
    if units == 1:
        return keras.losses.BinaryCrossentropy(from_logits=logits, label_smoothing=recipe.label_smoothing)
    if recipe.label_smoothing:
        return SparseCategoricalCrossentropyLS(recipe.label_smoothing, from_logits=logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)


def classification_metrics(model, recipe, data_spec):
    units, logits = _head(model)
    if units == 1:
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if logits else 0.5)]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def predict_labels(model, dataset):
    """`(y_true, y_pred, probabilities)` over a dataset of `(x, y)` batches."""
    units, logits = _head(model)
    trues, preds, outs = [], [], []
    predict = _predict_fn(model)
    for x, y in dataset:
        out = np.asarray(predict(x), np.float32)
        outs.append(out)
        trues.append(np.asarray(y).reshape(-1))
        if units == 1:
            preds.append((out.reshape(-1) > (0.0 if logits else 0.5)).astype(np.int64))
        else:
            preds.append(out.argmax(-1))
    if not outs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, units), np.float32)
    return np.concatenate(trues).astype(np.int64), np.concatenate(preds), np.concatenate(outs)


_PREDICT = weakref.WeakKeyDictionary()


def _predict_fn(model):
    if model not in _PREDICT:
        import tensorflow as tf

        ref = weakref.ref(model)  # a strong reference in the value would keep the key (and model) alive forever
        # no AutoGraph: a model call has no Python control flow on tensors, and converting the lambda cost ~0.2 s
        _PREDICT[model] = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True, autograph=False)
    return _PREDICT[model]


def classification_evaluate(model, dataset, data_spec, recipe):
    """Loss, accuracy, macro precision / recall / F1 and the confusion matrix in one pass."""
    y_true, y_pred, out = predict_labels(model, dataset)
    units, _ = _head(model)
    n = max(units, 2) if units == 1 else units
    cm = reports.confusion_matrix(y_true, y_pred, n)
    result = reports.classification_metrics(cm)
    loss_fn = classification_loss(model, recipe, data_spec)
    target = y_true.reshape(-1, 1).astype(np.float32) if units == 1 else y_true
    result["loss"] = float(loss_fn(target, out)) if len(y_true) else float("nan")
    result["examples"] = int(len(y_true))
    result["confusion_matrix"] = cm.tolist()
    return result


def classification_report(model, dataset, data_spec, run_dir):
    """`confusion_matrix.png` for the test split (dev when there is none), from the run's metrics when present.

    `run_dir` is a path, or a run directory object with `metrics` (`zoo.training.rundir.RunDir`).
    """
    cm, split = None, "test"
    metrics = getattr(run_dir, "metrics", None)
    if metrics is None and os.path.isfile(os.path.join(run_dir, "metrics.json")):
        import json

        with open(os.path.join(run_dir, "metrics.json")) as f:
            metrics = json.load(f)
    for split in ("test", "val") if metrics else ():
        cm = (metrics.get(split) or {}).get("confusion_matrix")
        if cm:
            break
    if cm is None:
        units, _ = _head(model)
        y_true, y_pred, _ = predict_labels(model, dataset)
        cm, split = reports.confusion_matrix(y_true, y_pred, max(units, 2)), "given"
    names = list(data_spec.class_names) if data_spec is not None and data_spec.class_names else None
    if names is not None and len(names) != len(cm):
        names = None
    out = os.path.join(run_dir, "confusion_matrix.png")
    return [reports.plot_confusion(cm, names, out, title=f"confusion matrix ({split} split)")]


def sequence_dataset(source, split, recipe, data_spec, training, *, model=None, **kw):
    """The pipeline's batches (the recipe's batch size, augmentation, normalisation and dev split), with
    images read row by row as `(H, W*C)` sequences. `kw` goes to `pipelines.build`; `model` is unused."""
    import tensorflow as tf

    import pipelines
    from pipelines.augment import recipe as aug

    options = {"split": split, "task": "sequence", "batch_size": recipe.batch_size,
               "augment": aug.from_recipe(recipe)[0] if training else (), "shuffle": training,
               "normalization": recipe.normalization, "val_split": recipe.val_split}
    ds = pipelines.build(source, **{**options, **kw})
    spec = ds.element_spec[0]
    if len(spec.shape) == 4:
        h, w, c = spec.shape[1:]
        ds = ds.map(lambda x, y: (tf.reshape(x, (-1, h, w * c)), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds


def sequence_input_shape(image_shape):
    shape = tuple(image_shape)
    return (shape[0], shape[1] * shape[2]) if len(shape) == 3 else shape


def serving_outputs(model, outputs, export_spec=None):
    """`probabilities` `[B, classes]` float32 and `classes` `[B]` int64 (argmax) for export.

    Logits get a softmax; a one-unit sigmoid (or logit) head gives `[1 - p, p]`. TensorFlow ops (export
    is TensorFlow-only): Keras' `ops.argmax` adds a `BitwiseAnd` that LiteRT has no kernel for.
    """
    import tensorflow as tf

    out = ops.cast(outputs, "float32")
    history = getattr(model.outputs[0], "_keras_history", None)
    name = getattr(getattr(history[0] if history else None, "activation", None), "__name__", "")
    if out.shape[-1] == 1:
        p = out if name == "sigmoid" else ops.sigmoid(out)
        probs = ops.concatenate([1.0 - p, p], axis=-1)
    elif name in ("softmax", "sigmoid"):
        probs = out
    else:
        probs = ops.softmax(out, axis=-1)
    return {"probabilities": probs, "classes": tf.argmax(probs, axis=-1)}


register_task(Task(
    name="classification", loss=classification_loss, metrics=classification_metrics,
    evaluate=classification_evaluate, report=classification_report, serving_outputs=serving_outputs,
))
register_task(Task(
    name="sequence", loss=classification_loss, metrics=classification_metrics, make_dataset=sequence_dataset,
    evaluate=classification_evaluate, report=classification_report, input_shape=sequence_input_shape,
    serving_outputs=serving_outputs,
))
