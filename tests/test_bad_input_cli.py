"""Bad input at the `zoo` command (issue 23): symlinks, crash windows, mismatched data, broken files.

Every refusal is one `zoo: error: ...` line (exit 2) naming the file or value and why, with no
traceback; a finished run is never trained over; no metrics file holds NaN. One tiny run
(softmax regression, 8x8 images, 1 epoch) and its export serve most cases.
"""

import fcntl
import json
import os
import re
import shutil
import stat
import struct
import tempfile
import time
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

import zoo.export as zoo_export
from zoo.cli import main
from zoo.cli.train import parse_sets
from zoo.export import savedmodel
from zoo.training import rundir

TRAIN = ["--epochs", "1", "--batch-size", "4", "--precision", "float32", "--xla", "off"]


def make_folder(root, classes=("a", "b", "c"), n=4):
    for c in classes:
        os.makedirs(root / c, exist_ok=True)
        for i in range(n):
            pixels = np.random.RandomState(i + 7 * len(c)).randint(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def one_line(capsys, code, match):
    """The single `zoo: error:` line of a refused command (exit 2, no traceback)."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("zoo: error: ")]
    assert len(errors) == 1, err
    assert re.search(match, errors[0]), errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`(run directory, its data)`: softmax regression on three 8x8 classes, one epoch."""
    root = tmp_path_factory.mktemp("cli")
    data = make_folder(root / "data")
    assert main(["train", "softmax_regression", "--data", str(data), "--out", str(root / "run"), *TRAIN]) == 0
    return root / "run", data


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    base = tmp_path_factory.mktemp("export") / "softmax"
    assert main(["export", str(run[0]), "--out", str(base)]) == 0
    return base


def copy_run(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run[0], dst)
    return dst


def interrupted(run, tmp_path):
    """A copy of the run as if killed during its last epoch: config.json and a backup, no results."""
    dst = copy_run(run, tmp_path, "interrupted")
    for name in ("complete", "metrics.json"):
        if (dst / name).exists():
            os.remove(dst / name)
    return dst


@pytest.fixture
def symlinked(tmp_path):
    """The run's dataset with its image `c/3.png` moved outside and a symlink to it in its place."""
    data = make_folder(tmp_path / "sym")
    outside = tmp_path / "outside"
    os.makedirs(outside)
    os.replace(data / "c" / "3.png", outside / "x.png")
    os.symlink(outside / "x.png", data / "c" / "3.png")
    return data


# --follow-symlinks ---------------------------------------------------------------------------------------------


def test_preview_follows_symlinks_only_when_asked(symlinked, tmp_path, capsys):
    out = tmp_path / "p.png"
    one_line(capsys, main(["preview", "--data", str(symlinked), "--out", str(out)]), "3.png.*symlink")
    assert not out.exists()
    assert main(["preview", "--data", str(symlinked), "--out", str(out), "--follow-symlinks"]) == 0
    assert out.stat().st_size > 0


def test_train_and_evaluate_follow_symlinks_only_when_asked(run, symlinked, tmp_path, capsys):
    base = ["train", "softmax_regression", "--data", str(symlinked), *TRAIN]
    one_line(capsys, main([*base, "--out", str(tmp_path / "r1")]), "symlink")
    assert not (tmp_path / "r1" / "model.keras").exists()
    assert main([*base, "--out", str(tmp_path / "r2"), "--follow-symlinks"]) == 0
    assert sum(json.loads((tmp_path / "r2" / "config.json").read_text())["data"]["splits"].values()) == 12
    evaluate = ["evaluate", str(run[0]), "--data", str(symlinked), "--json"]
    one_line(capsys, main(evaluate), "symlink")
    assert main([*evaluate, "--follow-symlinks"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_finetune_follows_symlinks_only_when_asked(run, symlinked, tmp_path, capsys):
    base = ["finetune", str(run[0]), "--data", str(symlinked), "--head-epochs", "1", "--finetune-epochs", "0",
            "--head-lr", "0.01", "--batch-size", "4"]
    one_line(capsys, main([*base, "--out", str(tmp_path / "f1")]), "symlink")
    assert main([*base, "--out", str(tmp_path / "f2"), "--follow-symlinks"]) == 0
    assert (tmp_path / "f2" / "complete").exists() and (tmp_path / "f2" / "phase1-head" / "complete").exists()


def test_analyze_follows_symlinks_only_when_asked(run, symlinked, capsys):
    analyze = ["analyze", str(run[0]), "--data", str(symlinked), "--top", "2"]
    one_line(capsys, main(analyze), "symlink")
    assert main([*analyze, "--follow-symlinks"]) == 0
    assert os.path.isdir(run[0] / "analysis")


# Item 2: a finished run is complete before its backup goes, and never retrained ----------------------------


def test_finished_run_is_marked_complete(run):
    assert (run[0] / "complete").is_file()
    assert not (run[0] / rundir.BACKUP).exists()


@pytest.mark.parametrize("marker", [True, False], ids=["complete-marker", "older-run-metrics-only"])
def test_resume_on_a_finished_run_with_a_leftover_backup_does_nothing(run, tmp_path, capsys, marker):
    """The crash window: killed while removing backup/ at the very end (an empty backup/ remains)."""
    path = copy_run(run, tmp_path)
    os.makedirs(path / rundir.BACKUP)
    if not marker and (path / "complete").exists():
        os.remove(path / "complete")
    before = {name: (path / name).read_bytes() for name in (rundir.MODEL, rundir.METRICS, rundir.HISTORY)}
    capsys.readouterr()
    code = main(["train", "softmax_regression", "--data", str(run[1]), "--out", str(path), "--resume", *TRAIN])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip().count("\n") == 0 and "complete" in out and "nothing to resume" in out, out
    assert {name: (path / name).read_bytes() for name in before} == before


# Item 3: resuming or evaluating on other data --------------------------------------------------------------------


def test_resume_on_other_data_is_refused_naming_the_field(run, tmp_path, capsys):
    path = interrupted(run, tmp_path)
    other = make_folder(tmp_path / "other", classes=("a", "b"))
    code = main(["train", "softmax_regression", "--data", str(other), "--out", str(path), "--resume", *TRAIN])
    one_line(capsys, code, r"differs in `num_classes`")
    assert not (path / rundir.METRICS).exists()
    renamed = make_folder(tmp_path / "renamed", classes=("a", "b", "z"))
    code = main(["train", "softmax_regression", "--data", str(renamed), "--out", str(path), "--resume", *TRAIN])
    one_line(capsys, code, r"differs in `class_names`")


def test_evaluate_refuses_data_with_other_class_names(run, tmp_path, capsys):
    for classes in (("a", "b"), ("a", "b", "z")):
        other = make_folder(tmp_path / "-".join(classes), classes=classes)
        one_line(capsys, main(["evaluate", str(run[0]), "--data", str(other)]), r"trained on \['a', 'b', 'c'\]")


def test_json_writer_writes_null_for_nan_and_infinity(tmp_path):
    path = tmp_path / "metrics.json"
    rundir.write_json(path, {"val": {"loss": float("nan"), "accuracy": np.float32("inf"), "f1": np.float64(0.5)},
                             "shape": (1, 2), "counts": np.arange(2)})
    loaded = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))
    assert loaded == {"val": {"loss": None, "accuracy": None, "f1": 0.5}, "shape": [1, 2], "counts": [0, 1]}


# Item 4: one line instead of a traceback ---------------------------------------------------------------------------


def test_set_extra_must_be_a_dict(run, tmp_path, capsys):
    code = main(["train", "softmax_regression", "--data", str(run[1]), "--out", str(tmp_path / "r"), *TRAIN,
                 "--set", "extra=5"])
    one_line(capsys, code, r"`extra` must be a dict.*Received: extra=5")
    assert not (tmp_path / "r" / rundir.CONFIG).exists()


def test_out_below_a_file_is_one_line(run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["preview", "--data", str(run[1]), "--out", str(blocker / "x.png")])
    one_line(capsys, code, r"--out .*file.*is a file, not a folder")
    one_line(capsys, main(["export", str(run[0]), "--out", str(blocker / "sub")]), r"file")
    assert blocker.read_text() == "x"


def test_export_of_a_keras_file_with_truncated_weights(run, tmp_path, capsys):
    truncated = tmp_path / "truncated.keras"
    with zipfile.ZipFile(run[0] / "model.keras") as src, zipfile.ZipFile(truncated, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data[: len(data) // 2] if name.endswith(".h5") else data)
    code = main(["export", str(truncated), "--out", str(tmp_path / "e"), "--preprocessing", "scale"])
    one_line(capsys, code, r"Cannot load Keras model .*truncated\.keras")


def test_corrupt_keras_file_is_called_corrupt(run, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes((run[0] / "model.keras").read_bytes()[:100])
    line = one_line(capsys, main(["evaluate", str(corrupt), "--data", str(run[1])]), r"corrupt\.keras.*corrupt")
    assert "File not found" not in line


def test_predict_on_a_garbage_saved_model(run, tmp_path, capsys):
    os.makedirs(tmp_path / "base" / "1")
    (tmp_path / "base" / "1" / "saved_model.pb").write_bytes(b"\x08garbage" * 10)
    code = main(["predict", str(tmp_path / "base"), str(run[1] / "a" / "0.png")])
    one_line(capsys, code, r"Cannot load the SavedModel in .*base/1.*corrupt")


@pytest.mark.parametrize("command", ["evaluate", "export", "predict", "resume"])
def test_config_json_that_is_a_list(run, tmp_path, capsys, command):
    path = interrupted(run, tmp_path) if command == "resume" else copy_run(run, tmp_path)
    (path / rundir.CONFIG).write_text("[1, 2]\n")
    argv = {"evaluate": ["evaluate", str(path), "--data", str(run[1])],
            "export": ["export", str(path), "--out", str(tmp_path / "e")],
            "predict": ["predict", str(path), str(run[1] / "a" / "0.png")],
            "resume": ["train", "softmax_regression", "--out", str(path), "--resume", *TRAIN]}[command]
    one_line(capsys, main(argv), r"config\.json.* must hold a JSON object")


# Item 5: helpful one-liners -----------------------------------------------------------------------------------------


def bomb_png(path, side=20000):
    """A small 1-bit PNG whose header claims side x side pixels (a decompression bomb)."""
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(b"\x00" * (1 + (side + 7) // 8)) for _ in range(64)) + comp.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _write_bad_image(kind, path, good):
    if kind == "text":
        path.write_text("not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:60])
    elif kind == "tiff":
        Image.new("RGB", (8, 8)).save(path, format="TIFF")
    else:
        bomb_png(path)


@pytest.mark.parametrize("kind, why", [
    ("text", "not an image; zoo predict reads JPEG, PNG"), ("empty", r"empty \(0 bytes\)"),
    ("truncated", "PNG data is truncated or corrupt"), ("tiff", "a TIFF image"),
    ("bomb", r"20000x20000 pixels is over the limit"),
])
def test_predict_names_the_file_and_why(run, exported, tmp_path, capsys, kind, why):
    path = tmp_path / f"{kind}.png"
    _write_bad_image(kind, path, run[1] / "a" / "0.png")
    line = one_line(capsys, main(["predict", str(exported), str(path)]), re.escape(repr(str(path))) + ".*" + why)
    assert "Graph execution error" not in line


def test_predict_reads_a_good_image(run, exported, capsys):
    assert main(["predict", str(exported), str(run[1] / "b" / "1.png"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {t["label"] for t in result["top"]} == {"a", "b", "c"}


@pytest.mark.parametrize("value", ["0.1.2", "{'a': 1", "[1, 2", "3x3", "'open"])
def test_malformed_set_literal_is_refused(value):
    with pytest.raises(ValueError, match=r"--set lr=.* is not a valid Python literal"):
        parse_sets([f"lr={value}"])
    with pytest.raises(ValueError, match=r"--model-arg width="):
        parse_sets([f"width={value}"], "--model-arg")


def test_bare_words_and_literals_still_parse():
    got = parse_sets(["augment=flip,crop", "optimizer=adam", "lr=1e-3", "extra={'a': 1}", "x=none", "p=./w.h5"])
    assert got == {"augment": ("flip", "crop"), "optimizer": "adam", "lr": 1e-3, "extra": {"a": 1}, "x": None,
                   "p": "./w.h5"}


def test_malformed_set_through_zoo_train(run, tmp_path, capsys):
    code = main(["train", "softmax_regression", "--data", str(run[1]), "--out", str(tmp_path / "r"), *TRAIN,
                 "--set", "lr=0.1.2"])
    one_line(capsys, code, r"--set lr='0\.1\.2' is not a valid Python literal")


def test_finetune_checks_lr_decay_before_any_work(run, tmp_path, capsys):
    code = main(["finetune", str(run[0]), "--data", str(run[1]), "--out", str(tmp_path / "ft"), "--lr-decay", "-1"])
    one_line(capsys, code, r"`lr_decay` must be in \(0, 1\].*-1")
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("args, match", [(["--image-size", "0"], "--image-size.*>= 1.*0"),
                                         (["-n", "0"], "-n.*>= 1"), (["--val-split", "1.5"], "--val-split")])
def test_preview_refuses_bad_numbers(run, tmp_path, capsys, args, match):
    out = tmp_path / "p.png"
    one_line(capsys, main(["preview", "--data", str(run[1]), "--out", str(out), *args]), match)
    assert not out.exists()


# Item 6: housekeeping -----------------------------------------------------------------------------------------------


def test_predict_on_a_run_directory_leaves_no_export_behind(run, tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "tmp"
    os.makedirs(scratch)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["predict", str(run[0]), str(run[1] / "a" / "0.png")]) == 0
    assert "0.png" in capsys.readouterr().out
    # TF's AutoGraph caches the module it generates for SavedModel's signature wrapper in the temp folder, once
    # per process, and deletes it at exit (an atexit handler, which `zoo` runs): not an export left behind.
    assert [name for name in os.listdir(scratch) if not name.startswith("__autograph_generated_file")] == []


def test_exported_version_folder_has_the_umask_permissions(exported):
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(exported / "1").st_mode) == 0o777 & ~mask
    assert not [name for name in os.listdir(exported) if name.startswith(".")]  # no staging folder, no lock
    assert not (exported / "1" / ".lock").exists()


def _stage(base, name, age=0.0):
    os.makedirs(base / name / "variables")
    then = time.time() - age
    os.utime(base / name, (then, then))
    return base / name


def test_stale_staging_folders_of_killed_exports_are_removed(run, tmp_path):
    """Older than an hour and unlocked: left by a killed export. Newer, or locked: an export is writing it."""
    base, hours = tmp_path / "base", 3600
    stale = _stage(base, ".tmp-1-killed", age=2 * hours)
    fresh = _stage(base, ".tmp-1-running", age=60)
    locked = _stage(base, ".tmp-1-slow", age=2 * hours)
    with open(locked / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.utime(locked, (time.time() - 2 * hours,) * 2)
        version = zoo_export.export(str(run[0]), str(base), verbose=False)
    assert version == str(base / "1") and os.path.isfile(base / "1" / "saved_model.pb")
    assert not stale.exists() and fresh.exists() and locked.exists()


def test_an_export_that_loses_its_version_takes_the_next_one(tmp_path):
    """Two exports pick version 1 at once; the one that finishes second takes 2 (or, asked for 1, fails)."""
    base = str(tmp_path / "base")
    first = savedmodel.pick_version(base, None)
    second = savedmodel.pick_version(base, None)
    assert first == second == 1
    with savedmodel.staged_version(base, second, next_free=True) as late:
        with savedmodel.staged_version(base, first, next_free=True) as early:
            (tmp_path / "base").joinpath(early, "saved_model.pb").write_bytes(b"early")
        (tmp_path / "base").joinpath(late, "saved_model.pb").write_bytes(b"late")
    assert (early.final, late.final) == (os.path.join(base, "1"), os.path.join(base, "2"))
    assert (tmp_path / "base" / "2" / "saved_model.pb").read_bytes() == b"late"
    with pytest.raises(ValueError, match="Version 2 appeared"):
        with savedmodel.staged_version(base, 2) as asked:
            (tmp_path / "base").joinpath(asked, "x").write_bytes(b"x")
    assert sorted(os.listdir(base)) == ["1", "2"] and (tmp_path / "base" / "1" / "saved_model.pb").read_bytes() \
        == b"early"


def test_export_never_writes_nan(run, tmp_path):
    """A run whose metrics.json holds NaN (as older versions wrote it) exports with null in its place."""
    path = copy_run(run, tmp_path)
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["val"]["loss"] = float("nan")
    (path / "metrics.json").write_text(json.dumps(metrics))
    version = zoo_export.export(str(path), str(tmp_path / "base"), verbose=False)
    for name in ("metrics.json", "export.json"):
        text = (tmp_path / "base" / "1" / "assets.extra" / name).read_text()
        loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"{name} holds {c}"))
        assert "NaN" not in text and loaded
    assert version.endswith("1")


@pytest.mark.parametrize("args, match", [(["--dropout", "1.5"], r"`dropout` must be a number in \[0, 1\)"),
                                         (["--batch-size", "0"], r"`batch_size` must be an integer >= 1"),
                                         (["--lr-groups", "x"], r"`lr_groups` must be 'blocks'")])
def test_finetune_checks_every_option_before_any_work(run, tmp_path, capsys, args, match):
    code = main(["finetune", str(run[0]), "--data", str(run[1]), "--out", str(tmp_path / "ft"), *args])
    one_line(capsys, code, match)
    assert not (tmp_path / "ft").exists()


def test_finetune_resume_with_a_config_that_is_a_list(tmp_path, capsys):
    os.makedirs(tmp_path / "ft")
    (tmp_path / "ft" / "config.json").write_text("[]\n")
    one_line(capsys, main(["finetune", "x", "--resume", "--out", str(tmp_path / "ft")]), "must hold a JSON object")
