"""Source readers, one module per kind; importing this package registers them all.

To add a format, write a module that calls `register_reader(...)` and import it here.
"""

from pipelines.sources.base import Source, open_source, register_reader  # noqa: F401

# Registration order breaks ties between readers of equal priority and orders the "unknown source" hint: keep it.
# isort: off
from pipelines.sources import arrays, folder, tfds_source  # noqa: F401,E402
from pipelines.sources import labelled, yolo_txt, coco, voc, masks  # noqa: F401,E402  (issue 12 layouts)
from pipelines.sources import prepared  # noqa: F401,E402  (zoo prepare's output, before the folder reader)
# isort: on
