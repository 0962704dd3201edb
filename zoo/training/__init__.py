"""Training: recipe -> optimizer / schedule / precision, the fit loop, run directories, reports.

`zoo.train(...)` (see `zoo.training.loop.train`) is the entry point; `zoo.train.load_run`
and `zoo.train.evaluate` read a run directory back.
"""

from zoo.training.loop import Run, evaluate, get_strategy, load_run, train  # noqa: F401
