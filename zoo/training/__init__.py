"""Training: recipe -> optimizer / schedule / precision, the fit loop, run directories.

`zoo.train(...)` (see `zoo.training.loop.train`) is the entry point; `zoo.train.load_run`
and `zoo.train.evaluate` read a run directory back. The loop (TensorFlow) loads on first use,
so `zoo.training.layerwise` imports under any Keras backend.
"""

_LOOP_NAMES = ("Run", "evaluate", "get_strategy", "load_run", "train")


def __getattr__(name):
    if name in _LOOP_NAMES:
        from zoo.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'zoo.training' has no attribute {name!r}")
