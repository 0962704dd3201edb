"""Tasks: one package (or module) per task, each registering its `Task` hooks.

The import list below is the one list of tasks: a new task is one package here plus its line.
"""

from zoo.tasks.base import Task, get_task, names, register_task  # noqa: F401

# Registration order is the order of `zoo.TASKS`: keep it.
# isort: off
from zoo.tasks import classification  # noqa: F401,E402  (classification, sequence)
from zoo.tasks import detection  # noqa: F401,E402
from zoo.tasks import segmentation  # noqa: F401,E402
from zoo.tasks import embedding  # noqa: F401,E402
# isort: on
