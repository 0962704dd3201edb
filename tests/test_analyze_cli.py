"""`zoo analyze` on real (tiny) runs of every task: the table, galleries, traceable CSVs, label issues, bad input."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from test_labelled_formats import make_masks, make_yolo
from test_train import matrix

from zoo.cli import main

FAST = ["--epochs", "1", "--batch-size", "8", "--precision", "float32", "--xla", "off"]


def _folder(root, n=90, classes=3):
    x, y = matrix.tiny_images(n, (8, 8, 1), classes)
    matrix._write_images(str(root), x, y, "png")
    return root


def _train(model, data, out, *extra):
    args = ["train", model, "--data", str(data), "--out", str(out), *FAST, *extra]
    assert main(args) == 0
    return out


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    data = _folder(root / "data")
    return _train("softmax_regression", data, root / "run", "--train-dev", "0.1", "--epochs", "2", "--lr", "0.05"), data


def test_analyze_writes_the_table_gallery_csvs_and_tensorboard(folder_run, capsys):
    run, data = folder_run
    with open(run / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["train_dev"]["examples"] == 7 and metrics["train"]["examples"] == 65  # 72 train: 7 carved
    capsys.readouterr()
    assert main(["analyze", str(run), "--baseline", "0.02"]) == 0
    out = capsys.readouterr().out
    for row in ("baseline                2.00%", "train-dev error", "variance", "data mismatch", "overfitting to dev",
                "most confused", "worst classes by F1"):
        assert row in out
    table = json.loads((run / "analysis" / "error_table.json").read_text())
    # The largest gap is named exactly when some gap is above zero (a perfect tiny run has none).
    assert ("largest gap:" in out) == any(v > 0 for v in table["gaps"].values())
    assert table["errors"]["train_dev"] == pytest.approx(1 - metrics["train_dev"]["accuracy"])
    rows = _rows(run / "analysis" / "mistakes.csv")
    assert len(rows) == metrics["val"]["examples"]
    losses = [float(r["loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True)
    for r in rows:  # each entry traceable to its file, and the file's folder is its given label
        assert os.path.isfile(r["path"]) and os.path.basename(os.path.dirname(r["path"])) == r["label"]
    assert len(_rows(run / "analysis" / "per_class.csv")) == 3
    assert open(run / "analysis" / "mistakes.png", "rb").read(4) == b"\x89PNG"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "logs" / "analysis"))


def test_label_issues_by_k_fold_cross_training(folder_run):
    run, data = folder_run
    assert main(["analyze", str(run), "--label-issues", "--folds", "2", "--fold-epochs", "1"]) == 0
    oos = np.load(run / "analysis" / "out_of_sample.npz")
    assert oos["probs"].shape == (65, 3) and np.allclose(oos["probs"].sum(1), 1, atol=1e-4)
    rows = _rows(run / "analysis" / "label_issues.csv")
    for r in rows:
        assert os.path.isfile(r["path"]) and r["given"] != r["suggested"] and 0 <= float(r["score"]) <= 1
        assert os.path.basename(os.path.dirname(r["path"])) == r["given"]
    assert [float(r["score"]) for r in rows] == sorted(float(r["score"]) for r in rows)
    assert os.path.isfile(run / "analysis" / "label_issues.png")


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zoo: error: ") and "Traceback" not in err
    return err


def test_bad_input_is_one_line(folder_run, tmp_path, capsys):
    run, data = folder_run
    assert main(["analyze", str(tmp_path)]) == 2
    assert "is not a run directory" in _err(capsys)
    assert main(["analyze", str(run), "--baseline", "3"]) == 2
    assert "--baseline must be an error rate in [0, 1]" in _err(capsys)
    assert main(["analyze", str(run), "--label-issues", "--folds", "1"]) == 2
    assert "--folds must be an integer" in _err(capsys)

    other = tmp_path / "other"
    shutil.copytree(run, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "task": "captioning"}))
    assert main(["analyze", str(other)]) == 2
    assert "task 'captioning'; zoo analyze supports" in _err(capsys)
    (other / "config.json").write_text(json.dumps({**config, "source": str(tmp_path / "gone")}))
    assert main(["analyze", str(other)]) == 2
    assert "no longer exists" in _err(capsys)

    moved = tmp_path / "data"
    shutil.copytree(data, moved)
    os.remove(next((moved / "class1").iterdir()))
    (other / "config.json").write_text(json.dumps({**config, "source": str(moved)}))
    assert main(["analyze", str(other)]) == 2
    assert "changed since training" in _err(capsys)
    assert main(["analyze", str(other), "--data", str(data)]) == 0  # back at a place with the run's files


def test_a_run_without_dev_split_is_refused(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    _folder(root / "train", n=30)
    run = _train("softmax_regression", root, tmp_path / "run", "--val-split", "0")
    capsys.readouterr()
    assert main(["analyze", str(run)]) == 2
    assert "has no dev split" in _err(capsys)


def test_sequence_run(tmp_path, capsys):
    run = _train("rnn", _folder(tmp_path / "data", n=60), tmp_path / "run", "--train-dev", "0.1",
                 "--model-arg", "units=4", "--model-arg", "num_layers=1")
    assert main(["analyze", str(run), "--label-issues", "--folds", "2", "--fold-epochs", "1"]) == 0
    assert "train-dev error" in capsys.readouterr().out
    assert len(_rows(run / "analysis" / "mistakes.csv")) == 6


@pytest.mark.slow
def test_detection_run(tmp_path, capsys):
    run = _train("yolo", make_yolo(tmp_path / "data"), tmp_path / "run", "--val-split", "0", "--batch-size", "2",
                 "--model-arg", "input_shape=(32, 32, 3)", "--model-arg", "grid_size=4", "--model-arg", "width=4",
                 "--model-arg", "anchors=((0.3, 0.3),)")
    assert main(["analyze", str(run)]) == 0
    out = capsys.readouterr().out
    assert "error = 1 - mAP@0.5 (detection)" in out and "dev boxes missed" in out
    rows = _rows(run / "analysis" / "mistakes.csv")
    assert len(rows) == 1 and rows[0]["path"].endswith("d.png") and os.path.isfile(rows[0]["path"])
    assert os.path.isfile(run / "analysis" / "mistakes.png")


@pytest.mark.slow
def test_segmentation_run(tmp_path, capsys):
    root, _ = make_masks(tmp_path / "data")
    run = _train("unet", root, tmp_path / "run", "--val-split", "0", "--batch-size", "2",
                 "--model-arg", "input_shape=(32, 32, 3)", "--model-arg", "depth=2", "--model-arg", "filters=4")
    assert main(["analyze", str(run)]) == 0
    out = capsys.readouterr().out
    assert "error = 1 - mean IoU (segmentation)" in out and "worst per-image mean IoU" in out
    rows = _rows(run / "analysis" / "mistakes.csv")
    assert len(rows) == 1 and float(rows[0]["iou"]) <= 1.0 and os.path.isfile(rows[0]["path"])
    assert main(["analyze", str(run), "--label-issues"]) == 2
    assert "--label-issues supports classification, sequence" in _err(capsys)


@pytest.mark.slow
def test_embedding_run(tmp_path, capsys):
    x, y = matrix.tiny_images(240, (32, 32, 3), 20)
    np.savez(tmp_path / "ids.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    run = _train("siamese", tmp_path / "ids.npz", tmp_path / "run", "--batch-size", "16",
                 "--model-arg", "width=4", "--model-arg", "embedding_dim=8")
    assert main(["analyze", str(run)]) == 0
    out = capsys.readouterr().out
    assert "error = 1 - verification accuracy (embedding)" in out and "nearest-neighbour mistakes" in out
