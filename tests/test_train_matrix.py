"""`zoo train` trains every registered classification model from each source kind (issue 5's done-criterion).

One run per model, the source kinds assigned in turn (so each kind trains several models), and one run per
source kind with softmax regression; each is a real one-epoch `zoo train` (the in-process CLI, or
`zoo.train` for in-memory arrays) on tiny data at the model's `test_overrides` size, through
benchmarks/train_matrix.py's `Sources` and `run_cell`. A newly registered model is picked up here
automatically. The full model x source-kind product is `benchmarks/train_matrix.py`.
"""

import collections
import json
import pathlib

import pytest

from benchmarks import train_matrix as matrix

PAIRS = matrix.round_robin(matrix.classification_models())
FAST = "softmax_regression"
# Deep ImageNet/CIFAR nets: one epoch of a few images still takes 20-100 CPU-s each here (graph tracing).
HEAVY_FAMILIES = ("resnet", "mobilenet")


def _marks(name):
    import zoo

    spec = zoo.get_spec(name)
    marks = [pytest.mark.slow] if spec.family in HEAVY_FAMILIES else []
    return marks


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return matrix.Sources(tmp_path_factory.mktemp("matrix_data"))


def _read(run_dir, name):
    return json.loads((pathlib.Path(run_dir) / name).read_text())


def _as_json(value):
    return json.loads(json.dumps(value))


def test_every_model_gets_a_kind_and_every_kind_several_models():
    assert [m for m, _ in PAIRS] == matrix.classification_models()
    assert {"lenet5", "resnet152", "rnn"} <= set(dict(PAIRS))  # sequence classifiers included
    counts = collections.Counter(k for _, k in PAIRS)
    assert set(counts) == set(matrix.KINDS) and min(counts.values()) >= 2


@pytest.mark.parametrize("name, kind", [pytest.param(m, k, id=f"{m}-{k}", marks=_marks(m)) for m, k in PAIRS])
def test_model_trains_from_its_source_kind(name, kind, sources, tmp_path):
    result = matrix.run_cell(name, kind, sources, str(tmp_path / "run"))
    assert result["status"] == "ok", result["message"]
    config = _read(result["run_dir"], "config.json")
    classes = sources.classes(kind, matrix.binary_only(name))
    assert config["data"]["num_classes"] == classes
    assert config["model_kwargs"]["classes"] == (1 if classes == 2 else classes)  # 2 classes: one sigmoid unit
    for key, value in matrix.model_kwargs(name).items():  # built at its small test size
        assert config["model_kwargs"][key] == _as_json(value), key
    metrics = _read(result["run_dir"], "metrics.json")
    assert all(0.0 <= metrics[s]["accuracy"] <= 1.0 for s in ("train", "val", "test"))


EXPECTED_SPLITS = {  # val_split 0.2 carves 8 of 40 generated examples for each missing holdout
    "arrays": {"train": 24, "val": 8, "test": 8},
    "npz": {"train": 32, "val": 8, "test": 8},
    "folder": {"train": 24, "val": 8, "test": 8},
    "folder_splits": {"train": 24, "val": 8, "test": 8},
    "tfds": {"train": 32, "val": 8, "test": 8},  # the mocked MNIST's dataset_info (the mock yields 16 each)
    "shapes": matrix.SHAPES_SIZES | {"val": matrix.SHAPES_SIZES["validation"]},
}


@pytest.mark.parametrize("kind", matrix.KINDS)
def test_each_source_kind_trains_the_fast_model(kind, sources, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    result = matrix.run_cell(FAST, kind, sources, run_dir)
    assert result["status"] == "ok", result["message"]
    data = _read(run_dir, "config.json")["data"]
    expected = {k: v for k, v in EXPECTED_SPLITS[kind].items() if k != "validation"}
    assert data["splits"] == expected
    # Every kind is resized and converted to the model's 8x8 gray input, whatever its own size and channels.
    assert data["image_shape"] == [8, 8, 1]
    names = {"folder": ["class0", "class1", "class2"], "folder_splits": ["class0", "class1", "class2"],
             "shapes": ["circle", "square", "triangle", "star", "cross", "ring"]}
    assert data["class_names"] == names.get(kind, [str(i) for i in range(data["num_classes"])])
    metrics = _read(run_dir, "metrics.json")
    examples = matrix.TFDS_EXAMPLES if kind == "tfds" else expected["test"]
    assert metrics["test"]["examples"] == examples
    # The run directory evaluates again from its own record of the source (arrays: given again).
    if kind == "arrays":
        import zoo

        again = zoo.train.evaluate(run_dir, sources.get(kind, 3), split="test")
    elif kind != "tfds":  # mock data is not the same twice
        from zoo import cli

        capsys.readouterr()
        with sources.context(kind):
            assert cli.main(["evaluate", run_dir, "--split", "test", "--json"]) == 0
        again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if kind != "tfds":
        assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
        assert again["examples"] == examples
