"""Property tests for the label parsers (issue 23 item 7): any input parses or raises a one-line
ValueError naming the file - never another exception type, never a NaN or out-of-image box."""

import json
import os
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.sources import coco, labelled, masks, paths, voc, yolo_txt

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMBERS = ["0", "1", "2", "-1", "0.5", "0.25", "1.0", "1.04", "-0.03", "nan", "NaN", "inf", "-inf", "1e309", "-0",
           "1e-320", "0x1", "1_0", "", "abc", "٣", "99999999999999999999999"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def outcome(fn, path):
    """`fn()`, or None when it raised a one-line ValueError that names `path`."""
    try:
        return fn()
    except ValueError as exc:
        msg = str(exc)
        assert "\n" not in msg and "\r" not in msg, msg
        assert os.path.basename(str(path)) in msg, msg
        return None


def check_boxes(boxes, classes, num_classes):
    assert boxes.dtype == np.float32 and boxes.shape == (len(classes), 4)
    assert np.isfinite(boxes).all()
    assert ((boxes >= 0) & (boxes <= 1)).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert ((classes >= 0) & (classes < num_classes)).all()


# YOLO ---------------------------------------------------------------------------------------------

token = st.one_of(st.sampled_from(NUMBERS), st.text(max_size=6))
yolo_line = st.lists(token, min_size=0, max_size=7).map(" ".join)
yolo_text = st.lists(yolo_line, max_size=6).map("\n".join)


@SETTINGS
@given(content=st.one_of(yolo_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=60)),
       num_classes=st.integers(1, 3))
def test_yolo_label_file(folder, content, num_classes):
    path = folder / "label.txt"
    path.write_bytes(content)
    got = outcome(lambda: yolo_txt.parse_label_file(str(path), labelled.BoxChecker(num_classes)), path)
    if got is not None:
        check_boxes(*got, num_classes)


yaml_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.floats(), st.text(max_size=6)),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4) | st.integers(-1, 3),
                                                                              c, max_size=3), max_leaves=6)


@SETTINGS
@given(content=st.one_of(st.text(max_size=60), yaml_value.map(lambda v: json.dumps({"names": v}, default=str)),
                         st.dictionaries(st.sampled_from(["names", "nc", "path"]), yaml_value).map(
                             lambda d: json.dumps(d))))
def test_yolo_data_yaml(folder, content):
    path = folder / "data.yaml"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    names = outcome(lambda: yolo_txt.load_names(str(path)), path)
    if names is not None:
        assert names and all(isinstance(n, str) for n in names)


# COCO ---------------------------------------------------------------------------------------------

json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 10**30), st.floats(), st.text(max_size=8),
              st.sampled_from(["../x.png", "/etc/passwd", "a.png", "", "sub/../../b.png"])),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)

TARGETS = [(), ("images",), ("images", 0), ("images", 0, "id"), ("images", 0, "file_name"), ("images", 0, "width"),
           ("images", 1, "height"), ("annotations",), ("annotations", 0), ("annotations", 0, "id"),
           ("annotations", 0, "bbox"), ("annotations", 0, "bbox", 2), ("annotations", 1, "image_id"),
           ("annotations", 1, "category_id"), ("annotations", 0, "iscrowd"), ("categories",), ("categories", 0, "id"),
           ("categories", 1, "name")]


def valid_coco():
    return {"images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40},
                       {"id": 2, "file_name": "b.png", "width": 50, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 4, 20, 16], "iscrowd": 0},
                            {"id": 2, "image_id": 2, "category_id": 7, "bbox": [0, 0, 10, 10]}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}


def mutate(doc, target, value):
    if not target:
        return value
    node = doc
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = value
    return doc


@SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(TARGETS), json_value), max_size=3), raw=st.none() | st.binary(max_size=40))
def test_coco_annotations(folder, edits, raw):
    path = folder / "instances_train.json"
    doc = valid_coco()
    for target, value in edits:
        try:
            doc = mutate(doc, target, value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit replaced the container
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())

    def parse():
        cats = coco.load_categories(str(path))
        categories = {cid: i for i, cid in enumerate(sorted(cats, key=lambda c: (isinstance(c, str), c)))}
        check = labelled.BoxChecker(max(1, len(categories)))
        return coco.load_annotations(str(path), str(folder / "images"), categories, check,
                                     paths.Confine(folder)), len(categories)

    got = outcome(parse, path)
    if got is not None:
        (records, declared), n = got
        for r in records:
            check_boxes(r.boxes, r.classes, n)
            assert str(folder) in r.image
        assert all(h > 0 and w > 0 and np.isfinite([h, w]).all() for (h, w), _ in declared.values())


# VOC ----------------------------------------------------------------------------------------------

field = st.none() | st.one_of(st.sampled_from(NUMBERS), st.text(max_size=6))


def element(tag, value):
    if value is None:
        return ""
    return f"<{tag}>{escape(value)}</{tag}>" if value else f"<{tag}/>"


@st.composite
def voc_xml(draw):
    size = element("width", draw(field)) + element("height", draw(field))
    objects = []
    for _ in range(draw(st.integers(0, 2))):
        box = "".join(element(k, draw(field)) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append(f"<object>{element('name', draw(field))}{element('difficult', draw(field))}"
                       f"<bndbox>{box}</bndbox></object>")
    return f"<annotation><size>{size}</size>{''.join(objects)}</annotation>"


@SETTINGS
@given(content=st.one_of(voc_xml().map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=60)))
def test_voc_annotation(folder, content):
    path = folder / "a.xml"
    path.write_bytes(content)
    objects = outcome(lambda: voc.parse_annotation(str(path)), path)
    for where, name, *box, difficult in objects or []:
        assert isinstance(name, str) and name and isinstance(difficult, bool)
        assert np.isfinite(box).all()
        check = labelled.BoxChecker(1)
        got = outcome(lambda: check(where, 0, *box), path)  # the box rule: finite, inside, positive size
        if got is not None:
            assert np.isfinite(got).all() and (0 <= got).all() and (got <= 1).all()


# Masks --------------------------------------------------------------------------------------------


@st.composite
def mask_file(draw):
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    mode = draw(st.sampled_from(["L", "P", "I", "RGB", "1", "F"]))
    values = draw(st.lists(st.integers(-3, 300), min_size=h * w, max_size=h * w))
    arr = np.array(values).reshape(h, w)
    if mode in ("L", "P"):
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode=mode)
    elif mode == "I":
        img = Image.fromarray(arr.astype(np.int32), mode="I")
    elif mode == "1":
        img = Image.fromarray(arr > 0)
    elif mode == "F":
        img = Image.fromarray(arr.astype(np.float32), mode="F")
    else:
        img = Image.fromarray(np.clip(np.stack([arr] * 3, -1), 0, 255).astype(np.uint8), mode="RGB")
    return img, (draw(st.integers(1, 6)), draw(st.integers(1, 6)))


@SETTINGS
@given(mask=mask_file(), raw=st.none() | st.binary(max_size=40), num_classes=st.integers(1, 4))
def test_mask_file(folder, mask, raw, num_classes):
    img, (ih, iw) = mask
    path, image = folder / "m.png", folder / "i.png"
    if raw is not None:
        path.write_bytes(raw)
    else:
        img.save(path, format="TIFF" if img.mode in ("F", "I") else "PNG")  # PNG cannot hold signed ints
    Image.fromarray(np.zeros((ih, iw, 3), np.uint8)).save(image)
    try:
        assert masks.check_mask(str(path), str(image), num_classes) is None
    except ValueError:
        outcome(lambda: masks.check_mask(str(path), str(image), num_classes), path)  # one line, names the mask
        return
    arr = np.asarray(Image.open(path)).astype(np.int64)  # accepted: the size matches, ids are classes or 255
    assert arr.shape == (ih, iw)
    assert (((arr >= 0) & (arr < num_classes)) | (arr == 255)).all()
