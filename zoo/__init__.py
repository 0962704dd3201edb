"""A Keras model zoo: every classic architecture behind one builder contract.

    >>> import zoo
    >>> zoo.list_models("resnet*")
    >>> model = zoo.create_model("lenet5", classes=10)
    >>> zoo.model_info("lenet5")["params"]

Each registered builder is also a plain function: `zoo.lenet5(...)`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on an
# AVX2-only x86 CPU they are off and a train step is 1.3-2.8x slower (ResNet-20 2.1x, LeNet-5 2.1x; BENCHMARKS.md).
# Read once, when TensorFlow is first imported: set TF_ENABLE_ONEDNN_OPTS=0 to keep TF's Eigen kernels.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _import_backend_quietly():
    """Imports Keras, and TensorFlow only under Keras' TensorFlow backend; returns the backend's name."""
    # TF's C++ start-up lines ("All log messages before absl::InitializeLog()...", oneDNN and
    # CUDA-stub notices) reach fd 2 whatever TF_CPP_MIN_LOG_LEVEL says; keep them out of CLI output.
    # Keras imports TF itself under that backend, so it is imported inside the quiet region too.
    saved = devnull = None
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "1":
        try:
            saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
        except OSError:
            saved = devnull = None
    try:
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    return keras.backend.backend()


# Under another Keras backend (KERAS_BACKEND=jax on a GPU image without TF) only the pure-Keras parts load:
# the registry and every builder; training, export and the tf.data pipelines need TensorFlow.
BACKEND = _import_backend_quietly()

from zoo import (
    models,  # noqa: E402,F401  (registers every family)
    tasks,  # noqa: E402,F401  (registers every task's hooks)
    transfer,  # noqa: E402,F401  (freeze/unfreeze, new heads; registers zoo>Layerwise* optimizers)
)
from zoo.recipes import Recipe  # noqa: E402
from zoo.registry import (  # noqa: E402
    create_model,
    get_spec,
    list_models,
    model_info,
    register_model,
)

TASKS = tasks.names()

__all__ = ["Recipe", "TASKS", "create_model", "get_spec", "list_models", "model_info", "register_model"]

if BACKEND == "tensorflow":
    from zoo import (
        export,  # noqa: E402,F401  (zoo.export(model_or_run, base_dir, version=None))
        train,  # noqa: E402,F401  (zoo.train(model, data, ...), zoo.train.load_run)
    )

from zoo.version import __version__  # noqa: E402,F401


def __getattr__(name):
    # `zoo.lenet5`, `from zoo import resnet50`: every registered builder as a function.
    from zoo.registry import _REGISTRY

    if name in _REGISTRY:
        return _REGISTRY[name].builder
    if name in ("train", "export") and BACKEND != "tensorflow":
        raise AttributeError(f"zoo.{name} needs the TensorFlow backend; the Keras backend is {BACKEND!r}.")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list_models())
