"""`zoo.detection`: an alias of `zoo.tasks.detection` (where the detection task lives since the restructure)."""

import sys

from zoo.tasks import detection as _target

for _name, _module in list(sys.modules.items()):
    if _name.startswith("zoo.tasks.detection."):
        sys.modules["zoo.detection." + _name[len("zoo.tasks.detection."):]] = _module
sys.modules[__name__] = _target
