"""`zoo.train`: callable module. `zoo.train(model, data, ...)` trains; `zoo.train.load_run(run_dir)` reads a run.

    >>> import zoo
    >>> run = zoo.train("lenet5", "shapes/classification", epochs=2, out="runs/lenet")
    >>> model, config = zoo.train.load_run("runs/lenet")
    >>> zoo.train.evaluate("runs/lenet", split="test")["accuracy"]
"""

import sys
import types

from zoo.training.loop import Run, evaluate, get_strategy, load_run, train  # noqa: F401


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
