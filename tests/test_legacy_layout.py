"""A run directory and an export written by the code before the restructure (4851b20) still work.

`tests/fixtures/legacy/` holds them as that code wrote them: `run/` is `zoo train lenet5` for 3 epochs on
`digits04.npz` (scikit-learn's real 8x8 digits 0-4, upscaled to 16x16; 300 train / 100 test), `export/1/`
its `zoo export`. The run's config.json names the fixture's absolute path at the time, so tests pass --data.
"""

import json
import os
import shutil

import numpy as np
import pytest

from zoo.cli import main

LEGACY = os.path.join(os.path.dirname(__file__), "fixtures", "legacy")
DATA = os.path.join(LEGACY, "digits04.npz")


@pytest.fixture
def legacy_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(os.path.join(LEGACY, "run"), run)
    return str(run)


@pytest.fixture
def digit_png(tmp_path):
    from PIL import Image

    with np.load(DATA) as f:
        image, label = f["x_test"][0], int(f["y_test"][0])
    path = tmp_path / f"digit{label}.png"
    Image.fromarray(image).save(path)
    return str(path), label


def test_legacy_run_evaluates_as_it_did(legacy_run):
    from zoo.training.loop import evaluate

    with open(os.path.join(legacy_run, "metrics.json")) as f:
        recorded = json.load(f)["test"]
    metrics = evaluate(legacy_run, DATA, split="test")
    assert metrics["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    assert metrics["loss"] == pytest.approx(recorded["loss"], rel=1e-3)


def _top(capsys, model, image):
    assert main(["predict", model, image, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["top"][0]


def test_legacy_export_predicts_and_a_new_export_agrees(legacy_run, digit_png, tmp_path, capsys):
    image, _ = digit_png
    old = _top(capsys, os.path.join(LEGACY, "export"), image)
    assert main(["export", legacy_run, "--out", str(tmp_path / "new")]) == 0
    new = _top(capsys, str(tmp_path / "new"), image)
    assert new["label"] == old["label"]
    assert new["probability"] == pytest.approx(old["probability"], abs=1e-4)


def test_legacy_run_fine_tunes(legacy_run, tmp_path):
    out = tmp_path / "ft"
    code = main(["finetune", legacy_run, "--data", DATA, "--out", str(out), "--head-epochs", "1",
                 "--finetune-epochs", "1", "--batch-size", "32"])
    assert code == 0
    with open(out / "metrics.json") as f:
        assert 0.0 <= json.load(f)["test"]["accuracy"] <= 1.0
