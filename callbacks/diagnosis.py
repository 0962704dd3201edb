"""Bias / variance diagnosis at the end of training ("Structuring ML projects").

Avoidable bias is train error minus a baseline (human-level or Bayes error,
0 when unknown); variance is dev error minus train error. Whichever is larger
(and above `tolerance`) says what to try next.
"""

from __future__ import annotations

import dataclasses
import os

import keras

from callbacks import reports

ADVICE = {
    "high bias": "underfitting: try a bigger network, training longer, or a better optimizer / learning rate.",
    "high variance": "overfitting: get more training data, add regularisation (L2, dropout, augmentation) "
                     "or stop earlier.",
    "high bias and high variance": "both: first reduce bias (bigger network, longer training), "
                                   "then variance (more data, regularisation).",
    "good fit": "train and dev errors are close to the baseline: the model fits; check the test set.",
}


@dataclasses.dataclass
class Diagnosis:
    train_error: float
    dev_error: float
    baseline_error: float
    avoidable_bias: float
    variance: float
    verdict: str
    advice: str
    metric: str = "error"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def text(self) -> str:
        return (
            f"train {self.metric} {self.train_error:.4f}, dev {self.metric} {self.dev_error:.4f} "
            f"(baseline {self.baseline_error:.4f}): avoidable bias {self.avoidable_bias:+.4f}, "
            f"variance {self.variance:+.4f} -> {self.verdict}; {self.advice}"
        )


def diagnose(train_error, dev_error, *, baseline_error=0.0, tolerance=0.02, metric="error") -> Diagnosis:
    """Compares train and dev error to a baseline.

    Args:
        train_error: Error on the training split (e.g. 1 - accuracy).
        dev_error: Error on the dev (validation) split.
        baseline_error: Human-level / Bayes error proxy. Defaults to `0.0`.
        tolerance: Gap counted as "high". Defaults to `0.02` (2 points).
        metric: Name shown in the text. Defaults to `"error"`.
    """
    bias = float(train_error) - float(baseline_error)
    variance = float(dev_error) - float(train_error)
    high_bias, high_var = bias > tolerance, variance > tolerance
    verdict = (
        "high bias and high variance" if high_bias and high_var
        else "high bias" if high_bias
        else "high variance" if high_var
        else "good fit"
    )
    return Diagnosis(float(train_error), float(dev_error), float(baseline_error), bias, variance, verdict,
                     ADVICE[verdict], metric)


def write(diagnosis: Diagnosis, run_dir) -> str:
    """Writes `diagnosis.json` and `diagnosis.txt` into `run_dir`; returns the text."""
    text = diagnosis.text()
    reports.write_json(os.path.join(run_dir, "diagnosis.json"), diagnosis.to_dict())  # a NaN loss as null
    with open(os.path.join(run_dir, "diagnosis.txt"), "w") as f:
        f.write(text + "\n")
    return text


def errors_from_logs(logs) -> tuple[float, float, str] | None:
    """(train_error, dev_error, metric) from Keras epoch logs: 1 - accuracy when present, else the loss."""
    logs = logs or {}
    for name in ("accuracy", "binary_accuracy", "sparse_categorical_accuracy"):
        if name in logs and f"val_{name}" in logs:
            return 1.0 - float(logs[name]), 1.0 - float(logs[f"val_{name}"]), "error"
    if "loss" in logs and "val_loss" in logs:
        return float(logs["loss"]), float(logs["val_loss"]), "loss"
    return None


class BiasVarianceDiagnosis(keras.callbacks.Callback):
    """At the end of `fit`, diagnoses the last epoch's train vs dev error, prints and writes it.

    `zoo.train` calls `diagnose` on the final evaluated metrics instead (train
    error without augmentation or dropout); this callback is for a plain `fit`.

    Args:
        run_dir: Folder for `diagnosis.json` / `diagnosis.txt`, or None to only print.
        baseline_error: Human-level / Bayes error proxy. Defaults to `0.0`.
        tolerance: Gap counted as "high". Defaults to `0.02`.
    """

    def __init__(self, run_dir=None, baseline_error=0.0, tolerance=0.02):
        super().__init__()
        self.run_dir, self.baseline_error, self.tolerance = run_dir, baseline_error, tolerance
        self.diagnosis = None

    def on_train_end(self, logs=None):
        errors = errors_from_logs(logs)
        if errors is None:
            return
        self.diagnosis = diagnose(errors[0], errors[1], baseline_error=self.baseline_error,
                                  tolerance=self.tolerance, metric=errors[2])
        text = write(self.diagnosis, self.run_dir) if self.run_dir else self.diagnosis.text()
        print(f"diagnosis: {text}")
