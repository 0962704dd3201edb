import pathlib
import subprocess
import sys

import pytest

import zoo
from zoo import contract
from zoo.registry import markdown_table

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_list_models_pattern_sorted():
    names = zoo.list_models()
    assert names == sorted(names)
    assert {"logistic_regression", "shallow_nn", "deep_nn", "softmax_regression", "lenet5", "rnn"} <= set(names)
    assert zoo.list_models("*_regression") == ["logistic_regression", "softmax_regression"]
    assert zoo.list_models("nothing*") == []


def test_unknown_model_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean: lenet5"):
        zoo.create_model("lenet")


def test_builders_are_plain_functions():
    from zoo import lenet5

    assert lenet5 is zoo.get_spec("lenet5").builder
    assert zoo.lenet5(classes=3).output_shape == (None, 3)
    with pytest.raises(AttributeError):
        zoo.not_a_model


def test_create_model_passes_overrides():
    model = zoo.create_model("deep_nn", layer_sizes=[5, 4, 3], input_shape=(10,), classes=4)
    assert [l.units for l in model.layers if l.name.startswith("dense_")] == [5, 4, 3]
    assert model.output_shape == (None, 4)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("lenet5", {"input_shape": (8, 8, 1)}, "minimum is 12x12"),
        ("lenet5", {"input_shape": (28, 28)}, "input_shape=(28, 28)"),
        ("deep_nn", {"activation": "swishy"}, "'swishy'"),
        ("deep_nn", {"dropout": 1.5}, "dropout=1.5"),
        ("deep_nn", {"layer_sizes": []}, "layer_sizes"),
        ("deep_nn", {"initializer": "zeros"}, "'zeros'"),
        ("logistic_regression", {"classes": 3}, "classes=3"),
        ("rnn", {"cell": "transformer"}, "'transformer'"),
    ],
)
def test_model_specific_errors(name, kwargs, message):
    with pytest.raises(ValueError) as err:
        zoo.create_model(name, **kwargs)
    assert message in str(err.value)


def test_deep_nn_options_build_what_they_say():
    m = zoo.deep_nn(input_shape=(4,), layer_sizes=(6, 5), l2=0.01, dropout=[0.2, 0.0], batch_norm=True,
                    activation="leaky_relu", classes=3)
    kinds = [type(l).__name__ for l in m.layers]
    assert kinds.count("BatchNormalization") == 2 and kinds.count("Dropout") == 1
    assert "LeakyReLU" in kinds
    assert m.get_layer("dense_1").kernel_regularizer is not None
    assert m.get_layer("predictions").activation.__name__ == "softmax"


def test_readme_model_table_is_current():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README model table is stale: run `zoo list --markdown` and paste it"


def test_cli_list_and_errors():
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "list"], capture_output=True, text=True, check=True)
    assert "lenet5" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "zoo.cli", "info", "lenet"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "Did you mean: lenet5" in bad.stderr


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = [l for l in ci if l.startswith("python3 -m venv")][0]
    assert command in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "check, args, kwargs, message",
    [
        (contract.check_int, ("units", 0), {"min": 1}, "`units` must be an integer >= 1. Received: units=0"),
        (contract.check_int, ("units", True), {}, "Received: units=True"),
        (contract.check_int, ("grid", 9), {"min": 1, "max": 8}, "in [1, 8]. Received: grid=9"),
        (contract.check_number, ("dropout", 1.0), {"min": 0, "below": 1}, "in [0, 1). Received: dropout=1.0"),
        (contract.check_number, ("alpha", 0), {"above": 0}, "a number > 0. Received: alpha=0"),
        (contract.check_number, ("lr", float("nan")), {}, "Received: lr=nan"),
        (contract.check_choice, ("pooling", "avgg", (None, "avg", "max")), {}, "(closest: 'avg'). Received: pooling='avgg'"),
        (contract.check_choice, ("alpha", 0.3, (0.25, 0.5)), {"when": "weights='imagenet'"}, "With weights='imagenet'"),
        (contract.check_choice, ("alpha", 0.3, (0.25, 0.5)), {}, "one of 0.25, 0.5 (closest: 0.25)"),
        (contract.check_choice, ("include_top", 1, (True, False)), {}, "Received: include_top=1"),
    ],
)
def test_contract_checks_name_argument_value_and_allowed(check, args, kwargs, message):
    with pytest.raises(ValueError) as err:
        check(*args, **kwargs)
    assert message in str(err.value)


def test_contract_checks_return_valid_values():
    assert contract.check_int("n", 3, min=1, max=3) == 3
    assert contract.check_number("p", 0, min=0, below=1) == 0
    assert contract.check_choice("alpha", 1, (0.5, 1.0)) == 1  # 1 == 1.0; bools are kept apart
    assert contract.check_choice("flag", False, (True, False)) is False
