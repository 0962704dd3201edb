"""`zoo finetune`: phase-2 layer choice, input adaptation, the run directory, CLI errors, resume after a kill."""

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import zoo
from zoo import transfer
from zoo.cli import main
from zoo.transfer import finetune as ft


def write_folder(root, *, classes=3, counts=None, size=28, gray=False, first=500):
    from PIL import Image

    from pipelines.shapes import render

    for split, n in (counts or {"train": 6, "val": 2, "test": 3}).items():
        for j in range(classes):
            strokes = render.glyph_strokes(np.random.default_rng([1, first + j]))
            folder = os.path.join(root, split, f"c{j}")
            os.makedirs(folder, exist_ok=True)
            for k in range(n):
                img = render.glyph_image(np.random.default_rng([2, j, k, len(split)]), strokes, size)
                Image.fromarray(img.mean(-1).astype("uint8") if gray else img).save(os.path.join(folder, f"{k}.png"))
    return str(root)


def history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    """A real (tiny) `zoo train` run of lenet5 on 28x28 grayscale glyphs."""
    root = tmp_path_factory.mktemp("pre")
    data = write_folder(root / "data", classes=4, counts={"train": 8}, gray=True, first=0)
    run = zoo.train("lenet5", data, out=str(root / "run"), epochs=1, batch_size=16, verbose=0, precision="float32")
    return run.run_dir


# --------------------------------------------------------------------------------------- phase-2 choice

def _mobilenet_model():
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    model = transfer.with_new_head(base, 3, input_shape=(28, 28, 1), preprocess="tf")
    transfer.freeze_backbone(model)
    return model, base


def _trainable(model):
    return [layer.name for layer in transfer.leaves(model) if layer.trainable and layer.trainable_weights]


def test_unfreeze_top_by_share_index_names_and_all():
    model, base = _mobilenet_model()
    base_layers = [layer.name for layer in base.layers]
    assert _trainable(model) == ["predictions"]  # phase 1: only the head
    weighted = [layer.name for layer in base.layers
                if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    ft.unfreeze_top(model, base_layers, "all")
    assert not any(n.endswith(("_BN", "_bn")) for n in _trainable(model))  # BN stays frozen
    assert len(_trainable(model)) == len(weighted) + 1
    ft.unfreeze_top(model, base_layers, "100")  # base.layers[100:] as in the Keras guide
    want = [n for n in base_layers[100:] if n in weighted]
    assert _trainable(model) == want + ["predictions"]
    ft.unfreeze_top(model, base_layers, "block_16,Conv_1")
    assert _trainable(model) == ["block_16_expand", "block_16_depthwise", "block_16_project", "Conv_1", "predictions"]
    ft.unfreeze_top(model, base_layers, "10%", train_bn=True)
    chosen = _trainable(model)
    assert chosen[-1] == "predictions" and "Conv_1_bn" in chosen and "block_1_expand" not in chosen
    with pytest.raises(ValueError, match="layers"):
        ft.unfreeze_top(model, base_layers, "1000")
    with pytest.raises(ValueError, match="share"):
        ft.unfreeze_top(model, base_layers, "150%")


def test_build_model_adapts_grayscale_data_to_an_rgb_keras_backbone(tmp_path):
    import pipelines

    data = write_folder(tmp_path / "gray", gray=True)
    spec = pipelines.inspect(data, normalization="scale")
    assert spec.image_shape == (28, 28, 1)
    settings = {**ft.DEFAULTS, "weights": None}
    model, src = ft.build_model("keras:MobileNetV2", spec, settings)
    assert src.kind == "keras_app" and src.model.input_shape == (None, 32, 32, 3)  # raised to the minimum
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 3)
    assert [layer.name for layer in model.layers[1:3]] == ["input_resize", "input_channels"]
    assert _trainable(model) == ["predictions"]


# --------------------------------------------------------------------------------------- the run directory

@pytest.mark.slow
def test_finetune_cli_run_directory_evaluates_and_exports(pretrained_run, tmp_path, capsys):
    data = write_folder(tmp_path / "rgb", size=32)  # RGB 32x32 data, a 28x28 grayscale backbone
    out = str(tmp_path / "ft")
    code = main(["finetune", pretrained_run, "--data", data, "--out", out, "--head-epochs", "2",
                 "--finetune-epochs", "2", "--unfreeze", "all", "--lr-decay", "0.5", "--lr-groups", "2",
                 "--batch-size", "8", "--head-lr", "1e-3", "--finetune-lr", "1e-4"])
    assert code == 0
    for name in ("model.keras", "config.json", "history.csv", "metrics.json", "curves.png", "confusion_matrix.png"):
        assert os.path.isfile(os.path.join(out, name)), name
    rows = history(os.path.join(out, "history.csv"))
    assert [(r["epoch"], r["phase"]) for r in rows] == [("1", "head"), ("2", "head"), ("3", "finetune"),
                                                         ("4", "finetune")]
    assert float(rows[2]["learning_rate"]) == pytest.approx(1e-4) and float(rows[0]["learning_rate"]) == pytest.approx(1e-3)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["finetune"]["finetune_began_after_epoch"] == 2 and len(config["finetune"]["phases"]) == 2
    multipliers = config["finetune"]["phases"][1]["recipe"]["extra"]["lr_multipliers"]
    assert multipliers["predictions/kernel"] == 1.0  # two groups below the head: (c1, c3), (c5, f6)
    assert multipliers["c1/kernel"] == multipliers["c3/kernel"] == 0.25 and multipliers["f6/kernel"] == 0.5
    model = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    assert type(model.optimizer).__name__ == "LayerwiseAdam"
    assert model.input_shape == (None, 32, 32, 3)
    assert [layer.name for layer in model.layers[1:3]] == ["input_resize", "input_channels"]
    capsys.readouterr()
    assert main(["evaluate", out, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["accuracy"] == pytest.approx(json.load(open(os.path.join(out, "metrics.json")))["test"]["accuracy"])
    if importlib.util.find_spec("zoo.export") is not None:  # the export issue's command
        exported = str(tmp_path / "served")
        assert main(["export", out, "--out", exported]) == 0
        assert os.path.isfile(os.path.join(exported, "1", "saved_model.pb"))


def test_batchnorm_trains_in_phase_two_unless_told_not_to():
    # On real digits (resnet20 pre-trained on 0-4, 5-9 at 10 and 30 per class) training BN beat keeping it
    # frozen on 6 of 6 paired seeds (BENCHMARKS.md, issue 19); fastai and timm train it too.
    from zoo.cli import build_parser

    assert ft.DEFAULTS["train_bn"] is True
    parse = build_parser().parse_args
    base = ["finetune", "RUN", "--data", "B"]
    assert [parse(base + flag).train_bn for flag in ([], ["--train-bn"], ["--no-train-bn"])] == [None, True, False]


def test_cli_errors_are_one_line(tmp_path, capsys):
    data = write_folder(tmp_path / "d")
    assert main(["finetune", "keras:MobileNetV22", "--data", data, "--out", str(tmp_path / "a"),
                 "--weights", "none"]) == 2
    assert "MobileNetV2" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert main(["finetune", "lenet5", "--data", data, "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    plain = tmp_path / "plain_run"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model": "lenet5"}))
    assert main(["finetune", "lenet5", "--resume", "--out", str(plain)]) == 2
    assert "not a fine-tuning run" in capsys.readouterr().err
    assert main(["finetune", "lenet5", "--data", data, "--out", str(tmp_path / "b"),
                 "--head-epochs", "0", "--finetune-epochs", "0"]) == 2
    assert "Nothing to train" in capsys.readouterr().err
    assert main(["finetune", "lenet5", "--data", data, "--out", str(tmp_path / "c"), "--unfreeze", "conv9"]) == 2


@pytest.mark.slow
def test_resume_after_a_kill_in_phase_two(pretrained_run, tmp_path):
    data = write_folder(tmp_path / "d", counts={"train": 40, "val": 2, "test": 2})
    out = str(tmp_path / "ft")
    args = [os.path.join(os.path.dirname(sys.executable), "zoo"), "finetune", pretrained_run, "--data", data,
            "--out", out, "--head-epochs", "1", "--finetune-epochs", "6", "--early-stopping", "100",
            "--batch-size", "4"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = os.path.join(out, "phase2-finetune", "backup", "latest.json")
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if os.path.isfile(latest) and json.load(open(latest))["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.load(open(latest))["epoch"]
    assert not os.path.isfile(os.path.join(out, "metrics.json"))
    assert main(["finetune", pretrained_run, "--resume", "--out", out]) == 0
    rows = history(os.path.join(out, "history.csv"))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 8))  # every epoch exactly once
    assert [r["phase"] for r in rows] == ["head"] + ["finetune"] * 6
    assert killed_at < 6 and os.path.isfile(os.path.join(out, "metrics.json"))
    assert os.path.isfile(os.path.join(out, "complete"))
    choice = json.load(open(os.path.join(out, "config.json")))["finetune"]["augment_choice"]  # lenet5's affine vs none
    assert set(choice["dev_loss"]) == {ft.PHASES[1], ft.NOAUG} and not os.path.exists(os.path.join(out, ft.START))
    assert main(["finetune", pretrained_run, "--resume", "--out", out]) == 0  # complete: says so, does nothing


# ------------------------------------------------------------------------------ step budgets, lr range test

def test_phase_epochs_turn_a_step_budget_into_epochs():
    assert ft.phase_epochs(300, 50, 32) == (150, 2)  # 2 steps per epoch: the whole budget, 300 steps
    assert ft.phase_epochs(300, 10, 32) == (300, 1)  # one step per epoch: still 300 steps
    assert ft.phase_epochs(300, 150, 32) == (60, 5)  # 300 steps
    assert ft.phase_epochs(300, 100_000, 32) == (ft.MIN_EPOCHS, 3125)  # a large set: MIN_EPOCHS, not 0
    assert ft.phase_epochs(300, 150, 32, epochs=7) == (7, 5)  # explicit epochs win
    # phase 2's floor in epochs: only where the step budget gives fewer, and only up to MIN_EPOCHS_STEPS steps
    assert ft.phase_epochs(600, 150, 32, min_epochs=30) == (120, 5)  # a small set: the step budget already covers it
    assert ft.phase_epochs(600, 1800, 32, min_epochs=30) == (30, 57)  # `shapes` at 600 per class: 11 -> 30 epochs
    per_epoch = 3125  # 100,000 / 32
    assert ft.phase_epochs(600, 100_000, 32, min_epochs=30) == (ft.MIN_EPOCHS_STEPS // per_epoch, per_epoch)
    assert ft.phase_epochs(600, 10_000_000, 32, min_epochs=30)[0] == ft.MIN_EPOCHS  # the cap never goes below 3
    assert ft.patience_for(100) == 20 and ft.patience_for(4) == 3 and ft.patience_for(60, 5) == 5


def _separable(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return x, y


def test_lr_find_restores_weights_and_suggests_a_tenth_of_its_landmark():
    import tensorflow as tf

    from zoo.transfer.lr_find import LR_DIVISOR, lr_find

    x, y = _separable()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    before = [w.copy() for w in model.get_weights()]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    found = lr_find(model, ds, loss=keras.losses.SparseCategoricalCrossentropy(), steps=60)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert found.lrs == sorted(found.lrs) and found.lrs[0] == pytest.approx(1e-6)
    assert found.landmark == found.lrs[int(np.argmin(found.losses))]
    assert found.suggestion == pytest.approx(found.landmark / LR_DIVISOR)
    assert 1e-4 < found.suggestion < 1.0  # a two-layer net on separable data learns well inside this range
    assert min(found.losses) < found.losses[0] - 0.1  # the loss did fall during the sweep
    edge = lr_find(model, ds, loss=keras.losses.SparseCategoricalCrossentropy(), steps=60, rule="edge")
    doubled = [lr for lr, v in zip(edge.lrs, edge.losses) if v > 2 * edge.losses[0]]
    assert edge.landmark == (doubled[0] if doubled else edge.lrs[-1])
    with pytest.raises(ValueError, match="rule"):
        lr_find(model, ds, loss="sparse_categorical_crossentropy", rule="steepest")


def test_cli_rejects_a_bad_rate_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "lenet5", "--data", str(tmp_path), "--head-lr", "fast"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'fast'" in err[0] and "auto" in err[0]


def test_an_unknown_augmentation_is_refused_before_training(pretrained_run, tmp_path, capsys):
    """An unknown `--augment` name (CLI: one line, exit 2) or strength (API: ValueError) is refused before the run
    directory is made (it was refused only when phase 2 built its pipeline, after imprinting)."""
    data = write_folder(tmp_path / "data", classes=2, counts={"train": 4}, gray=True, first=4)
    code = main(["finetune", pretrained_run, "--data", str(data), "--out", str(tmp_path / "cli"), "--augment",
                 "flip,shear"])
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "'shear'" in lines[0], lines
    assert "imprinted" not in err.out
    with pytest.raises(ValueError, match="'twist'"):
        ft.finetune(pretrained_run, data, out=str(tmp_path / "api"), augment_args={"twist": 2.0}, verbose=0)
    assert not (tmp_path / "cli").exists() and not (tmp_path / "api").exists()  # not even the run directory


@pytest.mark.slow
def test_defaults_on_real_digits_converge_in_phase_one(tmp_path):
    """scikit-learn's handwritten digits: lenet5 pre-trained on 0-4, fine-tuned with the defaults on 30 images
    per class of 5-9 (smaller step budgets than the defaults to stay cheap). The range test picks phase 1's rate,
    phase 2 runs at its fixed default, and the head alone already classifies the new digits."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from transfer import write_digits

    a = write_digits(str(tmp_path / "a.npz"), [0, 1, 2, 3, 4])
    b = write_digits(str(tmp_path / "b.npz"), [5, 6, 7, 8, 9], per_class=30)
    pre = zoo.train("lenet5", a, out=str(tmp_path / "pre"), epochs=4, verbose=0, precision="float32")
    assert pre.metrics["test"]["accuracy"] > 0.9
    run = ft.finetune(pre.run_dir, b, out=str(tmp_path / "ft"), head_steps=80, finetune_steps=80, verbose=0)
    plan = run.config["finetune"]["plan"]
    assert plan["head"]["lr_find"]["rule"] == "minimum" and "lr_find" not in plan["finetune"]
    assert 1e-3 <= plan["head"]["lr"] <= 1.0 and plan["finetune"]["lr"] == ft.DEFAULTS["finetune_lr"] == 3e-4
    assert (plan["head"]["epochs"], plan["head"]["steps_per_epoch"]) == (16, 5)  # 80 steps of 150 images
    head = run.config["finetune"]["phases"][0]["metrics"]
    assert head["test"]["accuracy"] > 0.8  # phase 1 converged: a linear head on frozen features
    assert run.metrics["test"]["accuracy"] >= head["test"]["accuracy"] - 0.02
    lpft = ft.finetune(pre.run_dir, b, out=str(tmp_path / "lpft"), finetune_steps=80, verbose=0)  # head_steps auto
    kept = lpft.config["finetune"]["augment_choice"]["kept"]  # phase 2 with lenet5's affine, or without it
    assert [p["dir"] for p in lpft.config["finetune"]["phases"]] == [kept]  # imprinted, no phase 1
    assert "head" not in lpft.config["finetune"]["plan"] and lpft.metrics["test"]["accuracy"] > 0.85


def test_augmentation_follows_the_backbones_training_unless_given(pretrained_run, tmp_path):
    """`augment="auto"`: a run's own recipe (names and strengths), a zoo name's registered recipe, kept only if
    phase 2 without it has no lower dev loss; an explicit choice (none included) wins."""
    data = write_folder(tmp_path / "d", gray=True)
    pre = json.load(open(os.path.join(pretrained_run, "config.json")))["recipe"]
    assert pre["augment"] and pre["augment_args"]  # lenet5's recipe: affine with its own strengths
    cases = {"run": (pretrained_run, {}), "name": ("lenet5", {"augment_args": {"rotate": 5.0}}),
             "none": (pretrained_run, {"augment": ()})}
    seen = {}
    for label, (backbone, options) in cases.items():
        run = ft.finetune(backbone, data, out=str(tmp_path / label), finetune_epochs=1, batch_size=8, verbose=0,
                          **options)
        recipe = json.load(open(tmp_path / label / ft.PHASES[1] / "config.json"))["recipe"]
        seen[label] = (recipe["augment"], recipe["augment_args"])
        assert run.config["finetune"]["augment"] == recipe["augment"]
    assert seen["run"] == (pre["augment"], pre["augment_args"])
    choice = json.load(open(tmp_path / "run" / "config.json"))["finetune"]["augment_choice"]
    kept = choice["kept"]
    losses = choice["dev_loss"]
    assert kept == min(losses, key=losses.get) and set(losses) == {ft.PHASES[1], ft.NOAUG}
    assert json.load(open(tmp_path / "run" / "metrics.json")) == json.load(open(tmp_path / "run" / kept / "metrics.json"))
    assert not os.path.exists(tmp_path / "run" / ft.START)
    assert not os.path.exists(tmp_path / "none" / ft.NOAUG)  # an explicit choice is not second-guessed
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import augment_choice

    scanned = augment_choice.choices(str(tmp_path / "*"))  # "none" (and the data folder) have no choice
    assert [row[0] for row in scanned] == [str(tmp_path / "name"), str(tmp_path / "run")] and scanned[1][1] == kept
    assert augment_choice.summary(scanned)["runs"] == 2
    registered = zoo.get_spec("lenet5").recipe
    given = {**json.loads(json.dumps(registered.augment_args)), "rotate": 5.0}  # a given strength wins
    assert seen["name"] == (list(registered.augment), given) and registered.augment_args["rotate"] != 5.0
    assert seen["none"] == ([], {})


def test_range_test_takes_the_recipe_only_pad_crop(pretrained_run, tmp_path):
    """Phase 1's range test reads the training split with the phases' augmentation, `pad_crop` included (a
    recipe-level name that `pipelines.build` alone does not know)."""
    data = write_folder(tmp_path / "d", gray=True)
    run = ft.finetune(pretrained_run, data, out=str(tmp_path / "ft"), head_init="random", head_epochs=1,
                      finetune_epochs=0, augment=("flip", "pad_crop"), batch_size=8, verbose=0)
    plan = run.config["finetune"]["plan"]["head"]
    assert plan["lr_find"]["steps"] > 0 and plan["lr"] > 0
    assert run.config["finetune"]["phases"][0]["recipe"]["augment"] == ["flip", "pad_crop"]
