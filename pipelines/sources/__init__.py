"""Source readers, one module per kind; importing this package registers them all.

To add a format, write a module that calls `register_reader(...)` and import it here.
"""

from pipelines.sources import arrays, coco, folder, labelled, masks, tfds_source, voc, yolo_txt  # noqa: F401,E402  # noqa: F401,E402  (issue 12 layouts)
from pipelines.sources.base import Source, open_source, register_reader  # noqa: F401
