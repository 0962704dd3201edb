"""`zoo.segmentation`: an alias of `zoo.tasks.segmentation` (where the segmentation task lives since the restructure)."""

import sys

from zoo.tasks import segmentation as _target

for _name, _module in list(sys.modules.items()):
    if _name.startswith("zoo.tasks.segmentation."):
        sys.modules["zoo.segmentation." + _name[len("zoo.tasks.segmentation."):]] = _module
sys.modules[__name__] = _target
