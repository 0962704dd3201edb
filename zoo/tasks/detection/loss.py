"""The YOLO loss: objectness, box coordinates and class terms with their weights."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class YoloLoss(keras.losses.Loss):
    """Sum over cells and anchors of weighted objectness, box and class terms.

    With `o = p_c` of the target (1 where an object is assigned) and raw outputs `t`:

    - objectness: `lambda_obj * o * BCE(1, t_0) + lambda_noobj * (1 - o) * BCE(0, t_0)`;
    - box: `lambda_coord * o * [(sigmoid(t_1) - b_x)^2 + (sigmoid(t_2) - b_y)^2
      + (t_3 - log(b_h / a_h))^2 + (t_4 - log(b_w / a_w))^2]` (sizes in log space
      relative to the anchor, as in YOLOv2);
    - class: `lambda_class * o * CE(c, softmax(t_5..))`.

    Redmon et al. 2016 (weights 5 and 0.5); Redmon & Farhadi 2017 (anchors).

    Args:
        anchors: `[B, 2]` anchor `(h, w)` in image units, as in the model.
        lambda_coord: Weight of the box terms. Defaults to 5.
        lambda_obj: Weight of objectness where there is an object. Defaults to 1.
        lambda_noobj: Weight of objectness where there is none. Defaults to 0.5.
        lambda_class: Weight of the class term. Defaults to 1.
    """

    def __init__(
        self,
        anchors,
        lambda_coord=5.0,
        lambda_obj=1.0,
        lambda_noobj=0.5,
        lambda_class=1.0,
        name="yolo_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.anchors = [[float(h), float(w)] for h, w in anchors]
        self.lambda_coord = float(lambda_coord)
        self.lambda_obj = float(lambda_obj)
        self.lambda_noobj = float(lambda_noobj)
        self.lambda_class = float(lambda_class)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        s = y_pred.shape[-4]
        anchors = ops.convert_to_tensor(self.anchors, dtype=y_pred.dtype) * s  # cell units
        obj = y_true[..., 0]

        logit = y_pred[..., 0]
        # Numerically stable binary cross-entropy with logits.
        bce = ops.maximum(logit, 0) - logit * obj + ops.log1p(ops.exp(-ops.abs(logit)))
        objectness = self.lambda_obj * obj * bce + self.lambda_noobj * (1 - obj) * bce

        xy = ops.sum(ops.square(ops.sigmoid(y_pred[..., 1:3]) - y_true[..., 1:3]), axis=-1)
        target_hw = ops.log(ops.maximum(y_true[..., 3:5], 1e-9) / anchors)
        hw = ops.sum(ops.square(y_pred[..., 3:5] - target_hw), axis=-1)
        box = self.lambda_coord * obj * (xy + hw)

        log_probs = ops.log_softmax(y_pred[..., 5:], axis=-1)
        cls = self.lambda_class * obj * -ops.sum(y_true[..., 5:] * log_probs, axis=-1)

        return ops.sum(objectness + box + cls, axis=(-3, -2, -1))

    def get_config(self):
        config = super().get_config()
        config.update(
            anchors=self.anchors,
            lambda_coord=self.lambda_coord,
            lambda_obj=self.lambda_obj,
            lambda_noobj=self.lambda_noobj,
            lambda_class=self.lambda_class,
        )
        return config
