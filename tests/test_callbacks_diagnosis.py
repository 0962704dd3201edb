import json

import keras
import pytest

from callbacks import BiasVarianceDiagnosis, diagnose


@pytest.mark.parametrize(
    "train_error, dev_error, baseline, verdict",
    [
        (0.15, 0.16, 0.0, "high bias"),
        (0.01, 0.11, 0.0, "high variance"),
        (0.15, 0.30, 0.0, "high bias and high variance"),
        (0.005, 0.01, 0.0, "good fit"),
        (0.08, 0.09, 0.075, "good fit"),  # near human-level: no avoidable bias
    ],
)
def test_verdicts(train_error, dev_error, baseline, verdict):
    d = diagnose(train_error, dev_error, baseline_error=baseline)
    assert d.verdict == verdict
    assert d.avoidable_bias == pytest.approx(train_error - baseline)
    assert d.variance == pytest.approx(dev_error - train_error)
    assert verdict in d.text()


def test_callback_reads_last_epoch_and_writes(tmp_path, capsys):
    cb = BiasVarianceDiagnosis(run_dir=str(tmp_path))
    cb.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    cb.on_train_end({"accuracy": 0.99, "val_accuracy": 0.80, "loss": 0.1, "val_loss": 0.9})
    saved = json.loads((tmp_path / "diagnosis.json").read_text())
    assert saved["verdict"] == "high variance" and saved["dev_error"] == pytest.approx(0.2)
    assert "high variance" in (tmp_path / "diagnosis.txt").read_text()
    assert "more training data" in capsys.readouterr().out


def test_a_diverged_run_writes_null_not_nan(tmp_path):
    """A NaN loss (no accuracy logged) reaches diagnosis.json as null: the file stays valid JSON."""
    cb = BiasVarianceDiagnosis(run_dir=str(tmp_path))
    cb.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    cb.on_train_end({"loss": float("nan"), "val_loss": float("nan")})
    text = (tmp_path / "diagnosis.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in diagnosis.json"))
    assert saved["train_error"] is None and saved["dev_error"] is None
