"""`zoo train` and `zoo preview` on your own labelled folders (YOLO txt, COCO JSON, Pascal VOC, mask folders)."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from test_labelled_formats import make_coco, make_masks, make_voc, make_yolo

from zoo.cli import main
from zoo.training.loop import load_run

TINY = ["--epochs", "1", "--batch-size", "2", "--val-split", "0", "--precision", "float32", "--xla", "off",
        "--augment", "flip"]


def _train(model, root, out, *model_args):
    args = ["train", model, "--data", str(root), "--out", str(out), *TINY]
    for arg in model_args:
        args += ["--model-arg", arg]
    assert main(args) == 0
    assert os.path.isfile(out / "model.keras")
    with open(out / "metrics.json") as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize("maker", [make_yolo, make_coco, make_voc], ids=["yolo_txt", "coco_json", "pascal_voc"])
def test_zoo_train_yolo_on_each_box_format(tmp_path, maker):
    root = maker(tmp_path / "data")
    metrics = _train("yolo", root, tmp_path / "run", "input_shape=(32, 32, 3)", "grid_size=4", "width=4",
                     "anchors=((0.3, 0.3),)")
    assert set(metrics) == {"train", "val"}
    for split in ("train", "val"):
        assert {"loss", "map50", "map50_95"} <= set(metrics[split])
        assert 0.0 <= metrics[split]["map50"] <= 1.0
    assert "ap50_cat" in metrics["val"] and "ap50_dog" in metrics["train"]  # class names from the data
    model, config = load_run(tmp_path / "run")
    assert config["model_kwargs"]["classes"] == 2  # from the data, not the builder's default of 6
    assert model.output_shape == (None, 4, 4, 1, 5 + 2)
    assert os.path.isfile(tmp_path / "run" / "detections.png")


@pytest.mark.slow
def test_zoo_train_unet_on_mask_folders(tmp_path):
    root, _ = make_masks(tmp_path / "data")
    (root / "classes.txt").write_text("background\ncircle\nsquare\nstar\n")  # a 4th class, unused by the masks
    metrics = _train("unet", root, tmp_path / "run", "input_shape=(32, 32, 3)", "depth=2", "filters=4")
    assert {"loss", "mean_iou", "pixel_accuracy"} <= set(metrics["val"])
    assert 0.0 <= metrics["val"]["mean_iou"] <= 1.0
    model, config = load_run(tmp_path / "run")
    assert config["model_kwargs"]["classes"] == 4 and model.output_shape == (None, 32, 32, 4)


def _has_colour(path, rgb, tol=12):
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return bool((np.abs(pixels - np.array(rgb)).max(-1) <= tol).any())


TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]  # matplotlib tab10: classes 0, 1, 2


def test_zoo_preview_draws_yolo_boxes(tmp_path, capsys):
    root = make_yolo(tmp_path / "data")
    out = tmp_path / "preview.png"
    assert main(["preview", "--data", str(root), "--out", str(out), "--val-split", "0"]) == 0
    assert "3 train samples" in capsys.readouterr().out and open(out, "rb").read(4) == b"\x89PNG"
    assert _has_colour(out, TAB10[0]) and _has_colour(out, TAB10[1])  # a cat box and a dog box

    for label in (root / "labels" / "train").iterdir():
        label.write_text("")  # every image a background image: nothing to draw
    assert main(["preview", "--data", str(root), "--out", str(out), "--val-split", "0"]) == 0
    assert not _has_colour(out, TAB10[0]) and not _has_colour(out, TAB10[1])


def test_zoo_preview_draws_mask_outlines(tmp_path, capsys):
    root, _ = make_masks(tmp_path / "data")
    out = tmp_path / "masks.png"
    assert main(["preview", "--data", str(root), "--out", str(out), "--split", "val", "-n", "1"]) == 0
    assert "(segmentation, masks drawn)" in capsys.readouterr().out
    assert _has_colour(out, TAB10[1]) and _has_colour(out, TAB10[2])  # circle and square outlines


def test_zoo_preview_names_a_missing_split(tmp_path, capsys):
    root = make_yolo(tmp_path / "data")
    assert main(["preview", "--data", str(root), "--split", "test", "--val-split", "0"]) == 2
    err = capsys.readouterr().err
    assert "has no 'test' split; it has: " in err and "train" in err.split("it has: ")[1]
