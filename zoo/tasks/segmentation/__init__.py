"""Semantic segmentation: losses, IoU metrics, mask reports, TFDS mappings, and the segmentation `Task`.

Masks are int32 class ids `[B, H, W]`; 255 marks pixels that are not scored. Importing this package registers
the segmentation task hooks that `zoo.train` uses.
"""

from zoo.tasks.segmentation import task  # noqa: F401  (registers the task)
from zoo.tasks.segmentation.losses import (  # noqa: F401
    DiceCrossEntropy,
    DiceLoss,
    MaskedCrossEntropy,
    class_frequencies,
    class_weights,
    get_loss,
)
from zoo.tasks.segmentation.metrics import (  # noqa: F401
    PixelAccuracy,
    confusion_matrix,
    evaluate_dataset,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
)
from zoo.tasks.segmentation.report import mask_report  # noqa: F401
from zoo.tasks.segmentation.sources import TFDS_SOURCES, TFDSSegmentation, load_tfds  # noqa: F401
