"""The detection `Task`: YOLO loss, grid-encoded datasets, mAP, box reports and serving NMS."""

from __future__ import annotations

import os

import numpy as np

from zoo.tasks.base import Task, register_task
from zoo.tasks.detection.draw import draw_detections
from zoo.tasks.detection.encoding import decode, encode, grid_to_boxes
from zoo.tasks.detection.loss import YoloLoss
from zoo.tasks.detection.metrics import mean_average_precision
from zoo.tasks.detection.nms import batched_nms

# score_threshold: evaluation (low, to trace the whole precision-recall curve);
# serving_score_threshold: the exported signature and the report.
DEFAULTS = {"score_threshold": 0.01, "serving_score_threshold": 0.25, "iou_threshold": 0.5, "max_detections": 20}
LOSS_WEIGHTS = ("lambda_coord", "lambda_obj", "lambda_noobj", "lambda_class")


def _head(model):
    from zoo.models.yolo import head_of

    return head_of(model)


def setting(extra, key):
    return (extra or {}).get(key, DEFAULTS[key])


def loss(model, recipe, data_spec=None):
    """`YoloLoss` with the model's anchors and the recipe's loss weights (`recipe.extra`)."""
    extra = getattr(recipe, "extra", None) or {}
    return YoloLoss(_head(model).anchors, **{k: extra[k] for k in LOSS_WEIGHTS if k in extra})


def _encoder(model):
    head = _head(model)
    grid = model.output_shape[1]
    return lambda targets: encode(targets["boxes"], targets["classes"], grid_size=grid, anchors=head.anchors,
                                  num_classes=head.classes)


def encode_dataset(dataset, model):
    """Maps `(images, {"boxes", "classes"})` batches to `(images, grid targets)` for `model`.

    The result keeps the dict-target dataset as its `raw_targets` attribute, so
    `evaluate` and `report` score against the pipeline's own boxes (and VOC
    `difficult` flags) rather than reading them back from the grid.
    """
    import tensorflow as tf

    to_grid = _encoder(model)
    encoded = dataset.map(lambda images, targets: (images, to_grid(targets)), num_parallel_calls=tf.data.AUTOTUNE)
    encoded.raw_targets = dataset
    return encoded


def make_dataset(source, split, recipe, data_spec, training, *, model=None, **kwargs):
    """The pipeline's detection batches (box-aware augmentation when training), encoded to grids.

    Args:
        model: The YOLO model (its grid size, anchors and classes define the encoding).
        **kwargs: Passed on to `pipelines.build` (e.g. `seed`, `image_size`, `backend`).
    """
    import pipelines
    from pipelines.augment import recipe as aug

    if model is None:
        raise ValueError("The detection make_dataset hook needs `model=` (grid size and anchors come from it).")
    options = {
        "split": split,
        "task": "detection",
        "batch_size": recipe.batch_size,
        "augment": aug.from_recipe(recipe)[0] if training else (),
        "normalization": recipe.normalization,
        "val_split": recipe.val_split,
        "shuffle": training,
        "image_size": tuple(model.input_shape[1:3]),
    }
    options.update(kwargs)
    return encode_dataset(pipelines.build(source, **options), model)


def ground_truth(targets):
    """Per-image `(boxes, classes)` (plus `difficult` when given) from dict targets or from encoded grids."""
    if isinstance(targets, dict):
        boxes, classes = np.asarray(targets["boxes"]), np.asarray(targets["classes"])
        if "difficult" in targets:
            hard = np.asarray(targets["difficult"], bool)
            return [(b[c >= 0], c[c >= 0], d[c >= 0]) for b, c, d in zip(boxes, classes, hard)]
        return [(b[c >= 0], c[c >= 0]) for b, c in zip(boxes, classes)]
    boxes, obj, probs = (np.asarray(t) for t in grid_to_boxes(targets))
    return [(b[o > 0.5], np.argmax(p[o > 0.5], axis=-1)) for b, o, p in zip(boxes, obj, probs)]


def _detections(model, raw, extra=None):
    out = batched_nms(
        raw, _head(model).anchors,
        score_threshold=setting(extra, "score_threshold"), iou_threshold=setting(extra, "iou_threshold"),
        max_boxes=setting(extra, "max_detections"),
    )
    out = {k: np.asarray(v) for k, v in out.items()}
    return [(out["boxes"][i, :n], out["scores"][i, :n], out["classes"][i, :n])
            for i, n in enumerate(out["valid_detections"])]


def predict(model, images, extra=None):
    """Per-image `(boxes, scores, classes)` after decoding, score filtering and NMS."""
    return _detections(model, model(images, training=False), extra)


def evaluate(model, dataset, data_spec=None, recipe=None):
    """Loss (on grid targets), mAP@0.5, mAP@0.5:0.95 and per-class AP on `(images, targets)` batches.

    Targets may be the pipeline's dicts or encoded grids. A dataset from
    `encode_dataset`/`make_dataset` is scored against its `raw_targets` (the
    pipeline's boxes, with VOC `difficult` objects left out of mAP as VOC does)
    and its loss is computed on the grids; for other grid datasets the ground
    truth is read back from the grid (exact unless anchor conflicts dropped
    objects at encoding). Detections use the recipe's `score_threshold` (low: the
    precision-recall curve is traced to low scores), `iou_threshold` and
    `max_detections`.
    """
    extra = dict(getattr(recipe, "extra", None) or {})
    loss_fn = loss(model, recipe) if recipe is not None else None
    raw_targets = getattr(dataset, "raw_targets", None)
    to_grid = _encoder(model) if raw_targets is not None else None
    predictions, truth, losses, weights = [], [], [], []
    for images, targets in (raw_targets if raw_targets is not None else dataset):
        raw = model(images, training=False)
        predictions += _detections(model, raw, extra)
        truth += ground_truth(targets)
        if loss_fn is not None and (to_grid is not None or not isinstance(targets, dict)):
            losses.append(float(loss_fn(to_grid(targets) if to_grid is not None else targets, raw)))
            weights.append(int(images.shape[0]))
    head = _head(model)
    names = getattr(data_spec, "class_names", None)
    if not names or len(names) != head.classes:
        names = None
    result = mean_average_precision(predictions, truth, head.classes, class_names=names)
    if losses:
        result = {"loss": float(np.average(losses, weights=weights)), **result}
    return result


def _unnormalize(images, data_spec):
    norm = getattr(data_spec, "normalization", None) or {}
    if norm.get("kind") == "standardize":
        return images * np.asarray(norm["std"], np.float32) + np.asarray(norm["mean"], np.float32)
    return images


def report(model, dataset, data_spec, run_dir, *, count=8, recipe=None):
    """Writes `detections.png`: test images with true (green) and predicted (red) boxes above the serving score threshold."""
    import tensorflow as tf

    raw_targets = getattr(dataset, "raw_targets", None)
    images, targets = next(iter(raw_targets if raw_targets is not None else dataset))
    images, targets = images[:count], tf.nest.map_structure(lambda t: t[:count], targets)
    path = os.path.join(run_dir, "detections.png")
    extra = dict(getattr(recipe, "extra", None) or {})
    extra["score_threshold"] = setting(extra, "serving_score_threshold")
    draw_detections(path, _unnormalize(np.asarray(images), data_spec), predict(model, images, extra),
                    [g[:2] for g in ground_truth(targets)],
                    class_names=getattr(data_spec, "class_names", None))
    return [path]


def serving_outputs(model, outputs, export_spec):
    """Decoding, score filtering and per-class NMS in the serving graph.

    `serving_score_threshold`, `iou_threshold` and `max_detections` come from the run's recipe
    (`config["recipe"]["extra"]`), else `DEFAULTS`.

    Returns:
        `boxes [N, max, 4]` (normalised corners), `scores [N, max]`, `classes [N, max]`
        int32, `valid_detections [N]` int32. For a portable export (`export_spec.portable`: LiteRT,
        ONNX) the decoded boxes before NMS instead: `boxes [N, S*S*B, 4]` (normalised corners) and
        `scores [N, S*S*B, K]` (objectness x class probability); apply per-class NMS to them.
    """
    if getattr(export_spec, "portable", False):  # LiteRT / ONNX: no combined NMS there
        import tensorflow as tf

        boxes, obj, probs = grid_to_boxes(decode(outputs, _head(model).anchors))
        return {"boxes": tf.clip_by_value(boxes, 0.0, 1.0), "scores": obj[..., None] * probs}
    config = getattr(export_spec, "config", None) or {}
    extra = (config.get("recipe") or {}).get("extra") or {}
    return batched_nms(
        outputs, _head(model).anchors, score_threshold=setting(extra, "serving_score_threshold"),
        iou_threshold=setting(extra, "iou_threshold"), max_boxes=setting(extra, "max_detections"),
    )


TASK = register_task(
    Task(name="detection", loss=loss, make_dataset=make_dataset, evaluate=evaluate, report=report,
         serving_outputs=serving_outputs)
)
