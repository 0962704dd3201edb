"""Object detection: boxes and IoU, anchors, YOLO target encoding, loss, NMS, mAP, drawing.

Importing the package registers the detection `Task` (`zoo.tasks.detection.task`).
"""

from zoo.tasks.detection import task  # noqa: F401  (registers the detection Task)
from zoo.tasks.detection.anchors import kmeans_anchors, mean_best_iou
from zoo.tasks.detection.boxes import center_to_corners, corners_to_center, iou, shape_iou
from zoo.tasks.detection.draw import draw_detections
from zoo.tasks.detection.encoding import decode, encode, grid_to_boxes
from zoo.tasks.detection.loss import YoloLoss
from zoo.tasks.detection.metrics import average_precision, class_ap, mean_average_precision
from zoo.tasks.detection.nms import batched_nms, detect, filter_scores, non_max_suppression

__all__ = [
    "YoloLoss", "average_precision", "batched_nms", "center_to_corners", "class_ap", "corners_to_center",
    "decode", "detect", "draw_detections", "encode", "filter_scores", "grid_to_boxes", "iou", "kmeans_anchors",
    "mean_average_precision", "mean_best_iou", "non_max_suppression", "shape_iou",
]
