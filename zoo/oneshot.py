"""`zoo.oneshot`: an alias of `zoo.tasks.embedding` (where the embedding task lives since the restructure)."""

import sys

from zoo.tasks import embedding as _target

for _name, _module in list(sys.modules.items()):
    if _name.startswith("zoo.tasks.embedding."):
        sys.modules["zoo.oneshot." + _name[len("zoo.tasks.embedding."):]] = _module
sys.modules[__name__] = _target
