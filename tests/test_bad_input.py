"""Untrusted and careless datasets (issue 23): each case the probe found, through the readers and the CLI.

Paths stay inside the dataset, silent wrong results become errors or counted warnings, and
every refusal is one line naming the file and the value - never a traceback, never the
contents of a file outside the dataset.
"""

import json
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from test_labelled_formats import H, W, make_coco, make_masks, make_voc, make_yolo, write_image

import pipelines

SECRET = "SECRET-CONTENTS-7f3a"


def refused(root, match, **kw):
    """The one-line ValueError `pipelines.inspect` raises for `root`."""
    with pytest.raises(ValueError, match=match) as info:
        pipelines.inspect(str(root), **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def make_folder(root, classes=("cat", "dog"), n=3, size=(8, 8)):
    for c in classes:
        for i in range(n):
            os.makedirs(root / c, exist_ok=True)
            Image.fromarray(np.full((*size, 3), 40 * i + 10, np.uint8)).save(root / c / f"{i}.png")
    return root


def secret_file(tmp_path, name="secret.txt"):
    outside = tmp_path / "outside"
    os.makedirs(outside, exist_ok=True)
    path = outside / name
    if name.endswith(".png"):
        write_image(path, value=7)
    else:
        path.write_text(f"{SECRET}\n")
    return path


def bomb_png(path, side=14000):
    """A ~30 kB 1-bit PNG that decodes to side x side pixels (a decompression bomb)."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


# Item 1: reads outside the dataset ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["absolute", "climbs_out"])
def test_coco_file_name_outside_the_root_is_refused(tmp_path, how):
    root = make_coco(tmp_path / "c")
    target = secret_file(tmp_path, "x.png")
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = str(target) if how == "absolute" else "../../outside/x.png"
    path.write_text(json.dumps(data))
    msg = refused(root, r"instances_train2017\.json: image id 1 `file_name`.*outside|climbs out")
    assert "x.png" in msg
    refused(root, "file_name", follow_symlinks=True)  # not a symlink question: refused either way


def test_coco_absolute_file_name_inside_the_root_is_fine(tmp_path):
    root = make_coco(tmp_path / "c")
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = str(root / "train2017" / "a.png")
    path.write_text(json.dumps(data))
    assert pipelines.inspect(str(root), val_split=0.0).splits["train"] == 3


def test_yolo_label_file_symlink_outside_is_refused_without_its_contents(tmp_path):
    root = make_yolo(tmp_path / "y")
    label = root / "labels" / "train" / "a.txt"
    os.remove(label)
    os.symlink(secret_file(tmp_path), label)
    msg = refused(root, r"a\.txt.*leads outside the dataset root.*follow_symlinks=True")
    assert SECRET not in msg
    # Opting in reads it (and then reports the bad line, which the user chose to read).
    refused(root, r"a\.txt:1: expected 'class cx cy w h'", follow_symlinks=True)


def _link_image(tmp_path, root):
    os.remove(root / "cat" / "0.png")
    os.symlink(secret_file(tmp_path, "x.png"), root / "cat" / "0.png")


def _link_mask(tmp_path, root):
    target = tmp_path / "outside" / "m.png"
    os.makedirs(target.parent, exist_ok=True)
    os.replace(root / "masks" / "train" / "a.png", target)
    os.symlink(target, root / "masks" / "train" / "a.png")


def _link_split(tmp_path, root):
    os.replace(root / "images" / "train", tmp_path / "outside_train")
    os.symlink(tmp_path / "outside_train", root / "images" / "train")


def _link_voc_xml(tmp_path, root):
    target = tmp_path / "outside" / "a.xml"
    os.makedirs(target.parent, exist_ok=True)
    os.replace(root / "Annotations" / "a.xml", target)
    os.symlink(target, root / "Annotations" / "a.xml")


@pytest.mark.parametrize("case", ["image", "mask", "split_folder", "voc_xml"])
def test_symlinks_leaving_the_root_are_refused_unless_followed(tmp_path, case):
    if case == "image":
        root = make_folder(tmp_path / "f")
        _link_image(tmp_path, root)
        match = r"cat/0\.png.*leads outside the dataset root"
    elif case == "mask":
        root, _ = make_masks(tmp_path / "m")
        _link_mask(tmp_path, root)
        match = r"masks/train/a\.png.*leads outside the dataset root"
    elif case == "split_folder":
        root = make_yolo(tmp_path / "y")
        _link_split(tmp_path, root)
        match = r"images/train/a\.png.*leads outside the dataset root .*through the symlink .*images/train'"
    else:
        root = make_voc(tmp_path / "v")
        _link_voc_xml(tmp_path, root)
        match = r"Annotations/a\.xml.*leads outside the dataset root"
    refused(root, match)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = pipelines.inspect(str(root), follow_symlinks=True)
    assert sum(spec.splits.values()) > 0


def test_symlinks_inside_the_root_are_fine(tmp_path):
    root = make_folder(tmp_path / "f")
    os.makedirs(root / ".shared")
    os.replace(root / "cat" / "0.png", root / ".shared" / "0.png")
    os.symlink(os.path.join("..", ".shared", "0.png"), root / "cat" / "0.png")
    assert pipelines.inspect(str(root), val_split=0.0).splits["train"] == 6


def test_build_takes_follow_symlinks(tmp_path):
    root = make_folder(tmp_path / "f")
    _link_image(tmp_path, root)
    with pytest.raises(ValueError, match="leads outside"):
        pipelines.build(str(root), batch_size=None)
    ds = pipelines.build(str(root), batch_size=None, val_split=0.0, shuffle=False, follow_symlinks=True)
    assert len(list(ds)) == 6


# Item 3: silent wrong results --------------------------------------------------------------------


def test_one_class_folder_is_refused(tmp_path):
    root = make_folder(tmp_path / "f", classes=("cat",))
    refused(root, r"classification needs >= 2 classes; found 1 \('cat'\)")


def test_one_class_arrays_are_refused():
    x, y = np.zeros((10, 4, 4, 1), np.uint8), np.zeros(10, np.int64)
    with pytest.raises(ValueError, match="needs >= 2 classes"):
        pipelines.inspect((x, y))


def test_yolo_label_folder_case_mismatch_is_refused_listing_what_was_looked_for(tmp_path):
    root = make_yolo(tmp_path / "y")
    os.rename(root / "labels" / "train", root / "labels" / "Train")
    os.rename(root / "labels" / "val", root / "labels" / "Val")
    msg = refused(root, r"no label file matches any of its 3 train image\(s\); looked for labels/train/a\.txt, "
                        r"labels/train/b\.txt, labels/train/c\.txt")
    assert "Train/" in msg and "Val/" in msg


def test_yolo_mostly_unlabelled_warns_with_count(tmp_path):
    root = make_yolo(tmp_path / "y")
    os.remove(root / "labels" / "train" / "b.txt")
    for stem in "ef":
        write_image(root / "images" / "train" / f"{stem}.png")
    with pytest.warns(UserWarning, match=r"4 of 6 images have no label file .* e\.g\. labels/train/b\.txt"):
        pipelines.inspect(str(root))


def test_nan_box_yolo_names_file_and_line(tmp_path):
    root = make_yolo(tmp_path / "y")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 nan 0.5 0.2 0.2\n")
    refused(root, r"a\.txt:2: box values cx=nan.*must be finite")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_box_coco_names_annotation_id(tmp_path, value):
    root = make_coco(tmp_path / "c")
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["bbox"][0] = value
    path.write_text(json.dumps(data))  # Python's json writes NaN / Infinity, as some exporters do
    refused(root, r"instances_train2017\.json: annotation id 2: `bbox` (nan|inf) must be a finite number")


def test_nan_box_voc_names_file_and_object(tmp_path):
    root = make_voc(tmp_path / "v")
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<xmin>6</xmin>", "<xmin>nan</xmin>", 1))
    refused(root, r"a\.xml: object 1: <bndbox><xmin> 'nan' must be a finite number")


def test_box_checker_refuses_non_finite_coordinates():
    from pipelines.sources.labelled import BoxChecker

    with pytest.raises(ValueError, match=r"f:1: box coordinate\(s\) ymin=nan are not finite"):
        BoxChecker(2)("f:1", 0, float("nan"), 0.1, 0.5, 0.5)


def test_coco_declared_size_differing_from_the_image_is_refused(tmp_path):
    root = make_coco(tmp_path / "c")
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["images"][1]["width"] = 2 * W
    path.write_text(json.dumps(data))
    refused(root, rf"image id 2: declares width x height {2 * W}x{H} but .*b\.png decodes to {W}x{H}.*"
                  r"\(1 image\(s\) differ\)")


def test_voc_declared_size_differing_from_the_image_is_refused(tmp_path):
    root = make_voc(tmp_path / "v")
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace(f"<width>{W}</width>", f"<width>{2 * W}</width>", 1))
    refused(root, rf"a\.xml: <size>: declares width x height {2 * W}x{H} but .*a\.\w+ decodes to {W}x{H}")


@pytest.mark.parametrize("name", ["ca\nt", "dog\r", "a\tb", "x\x1b[31m"])
def test_class_folder_names_with_control_characters_are_refused(tmp_path, name):
    root = make_folder(tmp_path / "f", classes=(name, "other"))
    refused(root, r"class name .* contains control character")


def test_yolo_class_name_with_newline_is_refused(tmp_path):
    root = make_yolo(tmp_path / "y")
    (root / "data.yaml").write_text('names: ["cat", "do\\ng"]\n')
    refused(root, r"class name 'do\\ng' contains control character")


# Item 4: one-line errors, never tracebacks -------------------------------------------------------


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return bomb_png(str(tmp_path_factory.mktemp("bomb") / "bomb.png"))


def test_decompression_bomb_is_skipped_and_counted(tmp_path, bomb):
    root = make_folder(tmp_path / "f")
    os.link(bomb, root / "cat" / "bomb.png")
    assert os.path.getsize(bomb) < 100_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = pipelines.inspect(str(root), val_split=0.0)
    assert spec.splits["train"] == 6
    text = " ".join(str(w.message) for w in caught)
    assert "bomb.png: 14000x14000" in text or "bomb.png: more pixels than the limit" in text
    assert "Skipped 1 corrupt or unreadable image file(s) of 7" in text
    refused(root, r"bomb\.png.*(exceeds the limit|more pixels than the limit)", strict=True)


def test_image_just_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    root = make_folder(tmp_path / "f", size=(10, 12))
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 120 pixels: over the limit, under twice it
    with pytest.raises(ValueError, match=r"0\.png: 12x10 = 120 pixels exceeds the limit of 100"):
        pipelines.inspect(str(root), strict=True)


def test_decompression_bomb_in_yolo_and_mask_folders(tmp_path, bomb):
    root = make_yolo(tmp_path / "y")
    os.link(bomb, root / "images" / "train" / "z.png")
    with pytest.warns(UserWarning, match="Skipped 1 corrupt"):
        assert pipelines.inspect(str(root), val_split=0.0).splits["train"] == 3
    seg, _ = make_masks(tmp_path / "m")
    os.remove(seg / "masks" / "train" / "a.png")
    os.link(bomb, seg / "masks" / "train" / "a.png")
    refused(seg, r"masks/train/a\.png: .*(over the limit|decompression bomb)")


@pytest.mark.parametrize("text, match", [
    ("- cat\n- dog\n", r"data\.yaml: expected a mapping with a `names:` key; the file holds a list"),
    ("names: [cat, dog\n", r"data\.yaml: not valid YAML at line \d+"),
    ("names: !!python/object/apply:os.system ['echo hi']\n", r"data\.yaml: not valid YAML.*!!python"),
    ("names: {0: cat, x: dog}\n", r"data\.yaml: `names` key 'x' is not a class id"),
    ("names: [yes, no]\n", r"data\.yaml: names\[0\]: class name True is not a string \(YAML reads"),
    ("names: 5\n", r"data\.yaml: expected a `names:` list or mapping of class names; found 5"),
])
def test_bad_data_yaml_is_one_line(tmp_path, text, match):
    root = make_yolo(tmp_path / "y")
    (root / "data.yaml").write_text(text)
    refused(root, match)


def _edit_coco(root, fn):
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["images"][0].update(width=0), r"image id 1: `width` 0 must be a positive number"),
    (lambda d: d.update(images={"1": d["images"][0]}), r"`images` must be a list of objects; it is a dict"),
    (lambda d: d["images"][0].pop("height"), r"image id 1: `height` None must be a number"),
    (lambda d: d["annotations"][0].pop("bbox"), r"annotation id 1: `bbox` None must be a list"),
    (lambda d: d["annotations"][0].update(bbox="1 2 3 4"), r"annotation id 1: `bbox` '1 2 3 4' must be a list"),
    (lambda d: d["annotations"][0].update(image_id=[1]), r"annotation id 1: `image_id` \[1\] must be an integer"),
    (lambda d: d["annotations"][0].pop("category_id"), r"annotation id 1: category_id None is not in"),
    (lambda d: d["images"][0].update(file_name=None), r"image id 1 `file_name`: file name None is not a path"),
])
def test_bad_coco_fields_are_one_line_with_file_and_id(tmp_path, edit, match):
    root = make_coco(tmp_path / "c")
    _edit_coco(root, edit)
    msg = refused(root, match)
    assert "instances_train2017.json" in msg


def test_coco_file_that_is_not_json_names_the_file(tmp_path):
    root = make_coco(tmp_path / "c")
    (root / "annotations" / "instances_train2017.json").write_text('{"images": [')
    refused(root, r"instances_train2017\.json: not valid JSON")
    (root / "annotations" / "instances_train2017.json").write_text("[1, 2]")
    refused(root, r"instances_train2017\.json: expected a JSON object .* holds a list")


@pytest.mark.parametrize("old, new, match", [
    ("<difficult>0</difficult>", "<difficult/>", r"a\.xml: object 1: <difficult> '' must be 0 or 1"),
    ("<difficult>0</difficult>", "<difficult>maybe</difficult>", r"<difficult> 'maybe' must be 0 or 1"),
    (f"<width>{W}</width>", "<width>0</width>", r"a\.xml: <size><width> '0' must be a positive number"),
    (f"<width>{W}</width>", "<width>wide</width>", r"a\.xml: <size><width> 'wide' is not a number"),
    ("<name>cat</name>", "<name/>", r"a\.xml: object 1: missing or empty <name>"),
])
def test_bad_voc_fields_are_one_line(tmp_path, old, new, match):
    root = make_voc(tmp_path / "v")
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace(old, new, 1))
    refused(root, match)


def test_binary_label_files_name_the_file(tmp_path):
    root = make_yolo(tmp_path / "y")
    (root / "labels" / "train" / "a.txt").write_bytes(b"\xff\xfe\x00garbage")
    refused(root, r"a\.txt: not a UTF-8 text file")


# Item 5: errors that say where -------------------------------------------------------------------


def _npz(path, y_train, y_test):
    x = np.zeros((len(y_train), 4, 4, 1), np.uint8)
    np.savez(path, x_train=x, y_train=np.asarray(y_train), x_test=x[: len(y_test)], y_test=np.asarray(y_test))
    return str(path)


def test_npz_negative_label_names_its_index(tmp_path):
    path = _npz(tmp_path / "d.npz", [0, 1, 0, -1, 1, 0], [0, 1])
    with pytest.raises(ValueError, match=r"d\.npz \(y_train\): label -1 at index 3 is not a class id"):
        pipelines.inspect(path)


def test_npz_test_label_out_of_range_names_its_index(tmp_path):
    path = _npz(tmp_path / "d.npz", [0, 1, 2, 0, 1, 2], [0, 7, 1])
    with pytest.raises(ValueError, match=r"d\.npz \(y_test\): label 7 at index 1 is out of range: the training "
                                         r"labels are 0\.\.2"):
        pipelines.inspect(path)


def test_npz_huge_label_names_its_index(tmp_path):
    path = _npz(tmp_path / "d.npz", [0, 1, 2**40, 0], [0, 1])
    with pytest.raises(ValueError, match=r"label 1099511627776 at index 2 is not a class id"):
        pipelines.inspect(path)


def test_arrays_negative_label_names_its_index():
    x, y = np.zeros((6, 4, 4, 1), np.uint8), np.array([0, 1, -1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"\(x, y\) arrays: y: label -1 at index 2"):
        pipelines.inspect((x, y))


# Item 7: a corpus of bad datasets through `zoo preview` and `zoo train` --------------------------


def _yolo_case(tmp_path, edit):
    root = make_yolo(tmp_path / "data")
    edit(root)
    return root


def _coco_case(tmp_path, edit):
    root = make_coco(tmp_path / "data")
    _edit_coco(root, edit)
    return root


def _voc_case(tmp_path, old, new):
    root = make_voc(tmp_path / "data")
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace(old, new, 1))
    return root


def _linked_label(tmp_path):
    root = make_yolo(tmp_path / "data")
    os.remove(root / "labels" / "train" / "a.txt")
    os.symlink(secret_file(tmp_path), root / "labels" / "train" / "a.txt")
    return root


def _split_folder(tmp_path):
    root = make_yolo(tmp_path / "data")
    _link_split(tmp_path, root)
    return root


def _mask_link(tmp_path):
    root, _ = make_masks(tmp_path / "data")
    _link_mask(tmp_path, root)
    return root


def _npz_case(tmp_path):
    return _npz(tmp_path / "data.npz", [0, 1, 0, -1, 1, 0], [0, 1])


CORPUS = {
    "coco_absolute_file_name": (lambda t: _coco_case(t, lambda d: d["images"][0].update(file_name="/etc/hostname")),
                                r"file name '/etc/hostname' is an absolute path outside the dataset root"),
    "coco_climbing_file_name": (lambda t: _coco_case(t, lambda d: d["images"][0].update(file_name="../../x.png")),
                                r"file name '\.\./\.\./x\.png' is a path that climbs out"),
    "yolo_label_symlink": (_linked_label, r"a\.txt' leads outside the dataset root"),
    "yolo_split_symlink": (_split_folder, r"through the symlink .*images/train'"),
    "mask_symlink": (_mask_link, r"masks/train/a\.png' leads outside"),
    "one_class_folder": (lambda t: make_folder(t / "data", classes=("cat",)), r"needs >= 2 classes"),
    "newline_class_folder": (lambda t: make_folder(t / "data", classes=("ca\nt", "dog")),
                             r"class name 'ca\\nt' contains control character"),
    "yolo_labels_Train": (lambda t: _yolo_case(t, lambda r: os.rename(r / "labels" / "train", r / "labels" / "Train")),
                          r"no label file matches any of its 3 train image\(s\)"),
    "yolo_nan": (lambda t: _yolo_case(t, lambda r: (r / "labels" / "train" / "a.txt").write_text("0 nan .5 .2 .2\n")),
                 r"a\.txt:1: box values cx=nan"),
    "coco_nan": (lambda t: _coco_case(t, lambda d: d["annotations"][0]["bbox"].__setitem__(1, float("nan"))),
                 r"annotation id 1: `bbox` nan must be a finite number"),
    "voc_nan": (lambda t: _voc_case(t, "<ymin>5</ymin>", "<ymin>NaN</ymin>"), r"a\.xml: object 1: <bndbox><ymin> 'NaN'"),
    "coco_wrong_size": (lambda t: _coco_case(t, lambda d: d["images"][0].update(height=H + 10)),
                        r"image id 1: declares width x height"),
    "yaml_list": (lambda t: _yolo_case(t, lambda r: (r / "data.yaml").write_text("- cat\n- dog\n")),
                  r"data\.yaml: expected a mapping"),
    "yaml_syntax": (lambda t: _yolo_case(t, lambda r: (r / "data.yaml").write_text("names: [cat\n")),
                    r"data\.yaml: not valid YAML"),
    "yaml_python_tag": (lambda t: _yolo_case(t, lambda r: (r / "data.yaml").write_text("names: !!python/name:os.system\n")),
                        r"data\.yaml: not valid YAML.*!!python"),
    "coco_width_0": (lambda t: _coco_case(t, lambda d: d["images"][0].update(width=0)), r"`width` 0 must be a positive"),
    "coco_images_dict": (lambda t: _coco_case(t, lambda d: d.update(images={})), r"`images` must be a list"),
    "coco_no_bbox": (lambda t: _coco_case(t, lambda d: d["annotations"][0].pop("bbox")),
                     r"instances_train2017\.json: annotation id 1: `bbox` None"),
    "voc_empty_difficult": (lambda t: _voc_case(t, "<difficult>0</difficult>", "<difficult/>"),
                            r"<difficult> '' must be 0 or 1"),
    "voc_width_0": (lambda t: _voc_case(t, f"<width>{W}</width>", "<width>0</width>"), r"<size><width> '0' must be"),
    "npz_negative_label": (_npz_case, r"label -1 at index 3"),
}


@pytest.fixture(params=sorted(CORPUS))
def bad_dataset(request, tmp_path):
    make, match = CORPUS[request.param]
    return str(make(tmp_path)), match


def _one_line_error(capsys, code, match):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and SECRET not in err
    errors = [line for line in lines if line.startswith("zoo: error: ")]
    assert len(errors) == 1, err
    import re

    assert re.search(match, errors[0]), errors[0]


def test_corpus_through_zoo_preview(bad_dataset, tmp_path, capsys):
    from zoo.cli import main

    data, match = bad_dataset
    code = main(["preview", "--data", data, "--out", str(tmp_path / "p.png")])
    _one_line_error(capsys, code, match)
    assert not os.path.exists(tmp_path / "p.png")


@pytest.mark.parametrize("case", ["yolo_label_symlink", "one_class_folder", "coco_nan", "yaml_python_tag",
                                  "voc_empty_difficult", "npz_negative_label"])
def test_corpus_through_zoo_train(case, tmp_path, capsys):
    from zoo.cli import main

    make, match = CORPUS[case]
    data = str(make(tmp_path))
    model = "yolo" if os.path.isdir(data) and not case.endswith("folder") else "softmax_regression"
    code = main(["train", model, "--data", data, "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "2", "--precision", "float32", "--xla", "off"])
    _one_line_error(capsys, code, match)
    assert not os.path.exists(tmp_path / "run" / "model.keras")


def test_zoo_train_skips_a_bomb_and_writes_finite_metrics(tmp_path, bomb, capsys):
    from zoo.cli import main

    root = make_folder(tmp_path / "data", n=4)
    os.link(bomb, root / "dog" / "bomb.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["train", "softmax_regression", "--data", str(root), "--out", str(tmp_path / "run"),
                     "--epochs", "1", "--batch-size", "2", "--val-split", "0.25", "--precision", "float32",
                     "--xla", "off"])
    err = capsys.readouterr().err
    assert code == 0, err
    with open(tmp_path / "run" / "metrics.json") as f:
        metrics = json.load(f, parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    assert all(np.isfinite(v) for split in metrics.values() for v in split.values() if isinstance(v, float))
