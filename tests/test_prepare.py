"""`zoo prepare`: a labelled source written once as TFDS shards reads back as the same examples."""

import json
import os
import warnings

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from test_labelled_formats import make_coco, make_masks, make_voc, make_yolo

from pipelines import prepare
from pipelines.sources import open_source
from zoo.cli import main


def make_folder(root, classes=("cat", "dog", "eel"), per_class=8, corrupt=True):
    """RGB JPEGs and PNGs of 12x12 in one folder per class, plus one corrupt file."""
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(root / c)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    if corrupt:
        (root / classes[0] / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _key(ex):
    """One example as hashable bytes (decoded pixels and every target)."""
    return tuple((k, np.asarray(v).tobytes(), np.asarray(v).shape) for k, v in sorted(ex.items()))


def _examples(src, split):
    return [_key(ex) for ex in src.read(split).as_numpy_iterator()]


def _quiet_open(source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = open_source(source)
    return src, [str(w.message) for w in caught]


def test_prepared_folder_reads_as_the_folder(tmp_path):
    data = make_folder(tmp_path / "pets")
    original, warned = _quiet_open(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        where = prepare.prepare(data, tmp_path / "out", num_shards=2)
    assert [str(w.message) for w in caught if "broken.jpg" in str(w.message) or "Skipped" in str(w.message)] == \
        [m for m in warned if "broken.jpg" in m or "Skipped" in m]  # the reader's per-file warning and count
    assert where == os.path.join(tmp_path / "out", "pets", "1.0.0")
    assert sorted(os.listdir(tmp_path)) == ["out", "pets"]  # no temporary folder left beside it
    for given in (tmp_path / "out", where):  # the folder given to --out, or its version folder
        src = open_source(given)
        assert (src.kind, src.task, src.class_names, src.splits) == \
            ("prepared", "classification", ["cat", "dog", "eel"], original.splits)
        assert src.image_shape == original.image_shape == (12, 12, 3)
        for split in ("train", "val", "test"):
            assert _examples(src, split) == _examples(original, split)  # same pixels, labels and order
    assert open_source(tmp_path / "out").extra["files"] == {"train": 2, "val": 2, "test": 2}
    assert int(open_source(where).read("train").cardinality()) == original.splits["train"]
    builder = tfds.builder_from_directory(where)  # plain TFDS reads it too
    assert builder.info.features["label"].names == ["cat", "dog", "eel"]
    stored = next(iter(builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()})))
    first = original.read.paths("train")[0]
    with open(first, "rb") as f:
        assert stored["image"].numpy() == f.read()  # the file's bytes, not re-encoded


@pytest.mark.parametrize("maker", [make_coco, make_voc, make_yolo, make_masks], ids=["coco", "voc", "yolo", "masks"])
def test_prepared_labelled_folders_read_as_the_source(tmp_path, maker):
    made = maker(tmp_path / "data")
    data = made[0] if isinstance(made, tuple) else made
    original, _ = _quiet_open(data)
    prepare.prepare(data, tmp_path / "out")
    src = open_source(tmp_path / "out")
    assert (src.task, src.class_names, src.splits, src.max_boxes) == \
        (original.task, original.class_names, original.splits, original.max_boxes)
    for split, n in original.splits.items():
        if n:
            assert sorted(_examples(src, split)) == sorted(_examples(original, split))


def test_zoo_train_from_prepared_shards(tmp_path, capsys):
    make_folder(tmp_path / "pets", per_class=6, corrupt=False)
    assert main(["prepare", str(tmp_path / "pets"), "--out", str(tmp_path / "prepared")]) == 0
    assert "-> " in capsys.readouterr().out
    assert main(["train", "lenet5", "--data", str(tmp_path / "prepared"), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--batch-size", "4", "--precision", "float32", "--xla", "off"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def _refused(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zoo: error: "), err
    return err


def test_prepare_refuses_bad_input_on_one_line(tmp_path, capsys):
    data = make_folder(tmp_path / "pets", per_class=2, corrupt=False)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert "non-empty folder" in _refused(capsys, ["prepare", str(data), "--out", str(used)])
    assert (used / "keep.txt").read_text() == "mine" and os.listdir(used) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    assert "is a file" in _refused(capsys, ["prepare", str(data), "--out", str(tmp_path / "file")])
    assert "inside the source" in _refused(capsys, ["prepare", str(data), "--out", str(data / "prepared")])
    assert "Unknown data source" in _refused(capsys, ["prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    np.savez(tmp_path / "a.npz", x_train=np.zeros((4, 4, 4, 1)), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 4, 4, 1)), y_test=np.arange(2))
    assert "image-file sources" in _refused(capsys, ["prepare", str(tmp_path / "a.npz"), "--out", str(tmp_path / "o")])
    assert "--num-shards" in _refused(capsys, ["prepare", str(data), "--out", str(tmp_path / "o"), "--num-shards", "0"])
    (data / "dog" / "bad.png").write_bytes(b"\x89PNG broken")
    assert "bad.png" in _refused(capsys, ["prepare", str(data), "--out", str(tmp_path / "o"), "--strict"])
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        assert "apache-beam" in _refused(capsys, ["prepare", str(data), "--out", str(tmp_path / "o"), "--beam"])
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "file", "pets", "used"]  # nothing written, no temp folder


def test_beam_writes_the_same_shards(tmp_path):
    pytest.importorskip("apache_beam")  # the 'prepare-beam' extra; not in 'test'
    data = make_folder(tmp_path / "pets", per_class=4, corrupt=False)
    prepare.prepare(data, tmp_path / "out", beam=True)
    original, src = open_source(data), open_source(tmp_path / "out")
    assert src.splits == original.splits
    for split in ("train", "val", "test"):
        assert _examples(src, split) == _examples(original, split)
