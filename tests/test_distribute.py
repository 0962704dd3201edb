"""tf.distribute: strategy choice from the environment, and MirroredStrategy over two logical CPUs."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from zoo import distribute

MIRRORED_STEP = textwrap.dedent(
    """
    import json, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, zoo
    from zoo import distribute

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16).astype("int32")

    def train(strategy):
        keras.utils.set_random_seed(1)
        with strategy.scope():
            model = zoo.create_model("deep_nn", input_shape=(6,), layer_sizes=(8,), classes=3)
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        model.fit(ds, epochs=2, verbose=0)
        return [w.tolist() for w in model.get_weights()], strategy.num_replicas_in_sync

    single, n1 = train(distribute.get_strategy("default"))
    mirrored_strategy = distribute.get_strategy("mirrored")
    mirrored, n2 = train(mirrored_strategy)
    print(json.dumps({"single": single, "mirrored": mirrored, "replicas": [n1, n2],
                      "describe": distribute.describe(mirrored_strategy)}))
    """
)


def test_mirrored_two_cpus_matches_single_device():
    out = subprocess.run([sys.executable, "-c", MIRRORED_STEP], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == [1, 2]
    assert "MirroredStrategy: 2 replica(s)" in result["describe"]
    import numpy as np

    for a, b in zip(result["single"], result["mirrored"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-5)
    # The step really moved the weights (so equality above is not trivial).
    assert any(np.any(np.array(a) != 0) for a in result["single"])


def test_strategy_from_tf_config(monkeypatch):
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert distribute.cluster_size() == 2
    assert not distribute.is_chief()
    cluster["task"]["index"] = 0
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert distribute.is_chief()
    chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(chief))
    assert not distribute.is_chief() and distribute.cluster_size() == 2


def test_bad_strategy_and_tf_config(monkeypatch):
    with pytest.raises(ValueError, match="'ring'.*allowed: auto"):
        distribute.get_strategy("ring")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.tf_config()
    monkeypatch.setenv("TF_CONFIG", "")
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        distribute.get_strategy("multiworker")


def test_non_chief_writes_to_a_temp_dir_that_is_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}))
    with distribute.write_dir(tmp_path / "run") as where:
        assert str(where) != str(tmp_path / "run")
        (__import__("pathlib").Path(where) / "f").write_text("x")
    assert not __import__("os").path.exists(where)
    monkeypatch.delenv("TF_CONFIG")
    with distribute.write_dir(tmp_path / "run") as where:
        assert where == tmp_path / "run"


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _matrix():
    """benchmarks/train_matrix.py (its tiny sources of every kind)."""
    from benchmarks import train_matrix

    return train_matrix


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["npz", "folder", "shapes", "prepared"])
def test_two_zoo_train_workers_train_together(tmp_path, kind):
    """Two workers under TF_CONFIG on 127.0.0.1 train one model on each source kind (issue 24: `shapes` has
    one record file per split, so tf.data's default FILE sharding failed; DATA is used below one file per worker)."""
    import os

    sources = _matrix().Sources(tmp_path / "data")
    data = sources.get("folder" if kind == "prepared" else kind, 3)
    if kind == "prepared":  # zoo prepare's shards of the folder: 2 record files per split, FILE sharding
        from pipelines import prepare

        prepare.prepare(data, tmp_path / "data" / "prepared", num_shards=2)
        data = tmp_path / "data" / "prepared"
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                   ZOO_QUIET="1", TFDS_DATA_DIR=str(tmp_path / "data" / "tfds"))
        cmd = [sys.executable, "-m", "zoo.cli", "train", "lenet5", "--data", str(data), "--epochs", "1",
               "--batch-size", "8", "--out", str(run), "--precision", "float32"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    assert "MultiWorkerMirroredStrategy: 2 replica(s) in sync across 2 worker(s)" in outs[0], outs[0][:1500]
    assert (run / "model.keras").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "accuracy" in metrics["test"]
    history = (run / "history.csv").read_text().strip().splitlines()
    assert len(history) == 2  # header + one row per epoch, written by the chief only
    assert sorted(os.listdir(tmp_path)) == ["data", "run"]  # the other worker's files are gone


def test_auto_shard_policy_needs_a_file_per_worker(monkeypatch, tmp_path):
    import tensorflow as tf

    import pipelines
    from pipelines import sharding

    policy = tf.data.experimental.AutoShardPolicy
    assert sharding.policy(None, 2) == policy.DATA and sharding.policy(1, 2) == policy.DATA
    assert sharding.policy(2, 2) == policy.FILE and sharding.policy(8, 2) == policy.FILE
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                                                "task": {"type": "chief", "index": 0}}))
    assert sharding.workers() == 3
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert sharding.workers() == 1
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker"}}))
    _matrix().prepare_tiny_shapes(tmp_path)
    spec = pipelines.inspect("shapes", data_dir=str(tmp_path))
    assert spec.extra["files"] == {"train": 1, "val": 1, "test": 1}
    ds = pipelines.build("shapes", data_dir=str(tmp_path), batch_size=4)
    assert ds.options().experimental_distribute.auto_shard_policy == policy.DATA
    x = np.zeros((6, 4, 4, 1), np.uint8)
    arrays = pipelines.build((x, np.arange(6) % 2), batch_size=2, val_split=0.0)
    assert arrays.options().experimental_distribute.auto_shard_policy == policy.DATA


def test_importing_the_project_runs_no_tf_op():
    # MultiWorkerMirroredStrategy must be created before TF's runtime starts.
    code = ("import zoo, zoo.cli, pipelines, callbacks\n"
            "from tensorflow.python.eager import context\n"
            "print(context.context()._initialized)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
