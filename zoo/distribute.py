"""tf.distribute strategy selection for `zoo train`: one device, several GPUs, several machines.

The strategy is chosen from the environment with TensorFlow's own conventions:

- `TF_CONFIG` describing a cluster with more than one task -> `MultiWorkerMirroredStrategy`
  (set per worker by Kubernetes operators, Vertex AI, or by hand);
- several local GPUs -> `MirroredStrategy`;
- otherwise the default (single-device) strategy.

Batch sizes given to `zoo train` are global: each of N replicas sees `batch_size / N`
examples per step. The learning rate is not rescaled automatically; when you raise the
global batch by k (more replicas at the same per-replica batch), the linear scaling rule
(Goyal et al. 2017) says to multiply the learning rate by k, with a warmup.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

STRATEGIES = ("auto", "default", "onedevice", "mirrored", "multiworker")


def tf_config() -> dict:
    """The parsed `TF_CONFIG` environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON ({exc.msg}). Received: TF_CONFIG={raw!r}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError(
            "TF_CONFIG must be a JSON object with 'cluster' and 'task', e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={raw!r}"
        )
    return config


def cluster_size(config: dict | None = None) -> int:
    config = tf_config() if config is None else config
    cluster = config.get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


def is_chief(config: dict | None = None) -> bool:
    """True for the task that writes the run directory (the chief, or worker 0 without one)."""
    config = tf_config() if config is None else config
    if not config:
        return True
    task = config.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    if "chief" in config.get("cluster", {}):
        return kind == "chief"
    return kind == "worker" and index == 0


def get_strategy(name: str = "auto"):
    """The `tf.distribute.Strategy` to train under.

    Args:
        name: "auto" (from TF_CONFIG and the visible GPUs), "default", "onedevice",
            "mirrored" (all local GPUs, or all logical CPUs when there is no GPU) or
            "multiworker" (needs TF_CONFIG).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}.")
    import tensorflow as tf

    if name == "auto":
        if cluster_size() > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "onedevice":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if not tf_config():
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable describing the cluster.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def describe(strategy) -> str:
    """One line for the logs: which strategy, how many replicas and workers."""
    import tensorflow as tf

    workers = max(cluster_size(), 1)
    kind = type(strategy).__name__
    for cls, label in ((tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
                       (tf.distribute.MirroredStrategy, "MirroredStrategy"),
                       (tf.distribute.OneDeviceStrategy, "OneDeviceStrategy")):
        if isinstance(strategy, cls):
            kind = label
            break
    else:
        if kind == "_DefaultDistributionStrategy":
            kind = "default strategy"
    return f"{kind}: {strategy.num_replicas_in_sync} replica(s) in sync across {workers} worker(s)"


@contextlib.contextmanager
def write_dir(run_dir):
    """Where this task writes run files: the run directory on the chief, a temp dir elsewhere.

    Non-chief workers must still write (their checkpoints take part in collective
    saving) but to a private temporary folder that is removed afterwards.
    """
    if is_chief():
        yield run_dir
        return
    tmp = tempfile.mkdtemp(prefix="zoo-worker-")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def patch_keras_for_multiworker(model, strategy):
    """Lets `model.fit/evaluate` run under `MultiWorkerMirroredStrategy` with Keras 3.

    Keras 3's TensorFlow trainer fails under MWMS (keras-team/keras#20585): its symbolic
    build reduces a distributed *data batch* across workers, and its step reduces scalar
    metrics with `axis=0`. This patch (a no-op for every other strategy) builds from the
    worker's local batch and reduces scalars with `axis=None`; the training math is
    Keras' own. Remove it once Keras fixes the issue.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = model._maybe_symbolic_build

    def local(v):
        return strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        return original_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    if not getattr(tf_trainer.reduce_per_replica, "_zoo_patched", False):
        original_reduce = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction="auto"):
            if tf_trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
                def reduce(v):
                    if not isinstance(v, tf.distribute.DistributedValues):
                        return v
                    rank = len(strategy.experimental_local_results(v)[0].shape)
                    return strategy.reduce("MEAN", v, axis=0 if rank else None)

                return tree.map_structure(reduce, values)
            return original_reduce(values, strategy, reduction)

        reduce_per_replica._zoo_patched = True
        tf_trainer.reduce_per_replica = reduce_per_replica
    return model
