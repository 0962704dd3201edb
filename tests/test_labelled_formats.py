"""Bring-your-own detection and segmentation data: YOLO txt, COCO JSON, Pascal VOC, mask folders."""

import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

import pipelines

W, H = 50, 40
# Per image: (class, xmin, ymin, xmax, ymax) in pixels.
OBJECTS = {
    "a": [(0, 5, 4, 25, 20), (1, 30, 10, 45, 38)],
    "b": [(1, 0, 0, 10, 10)],
    "c": [],
    "d": [(0, 10, 10, 40, 30)],
}
NAMES = ["cat", "dog"]


def expected(stem):
    return np.array([[y0 / H, x0 / W, y1 / H, x1 / W] for _, x0, y0, x1, y1 in OBJECTS[stem]], np.float32).reshape(-1, 4)


def write_image(path, value=100):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((H, W, 3), value, np.uint8)).save(path)


def make_yolo(root, names_as="yaml"):
    for split, stems in (("train", "abc"), ("val", "d")):
        for s in stems:
            write_image(root / "images" / split / f"{s}.png")
            if s == "c":
                continue  # background image: no label file
            os.makedirs(root / "labels" / split, exist_ok=True)
            with open(root / "labels" / split / f"{s}.txt", "w") as f:
                for c, x0, y0, x1, y1 in OBJECTS[s]:
                    f.write(f"{c} {(x0 + x1) / 2 / W} {(y0 + y1) / 2 / H} {(x1 - x0) / W} {(y1 - y0) / H}\n")
    if names_as == "yaml":
        (root / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    else:
        (root / "classes.txt").write_text("cat\ndog\n")
    return root


def make_coco(root):
    cat_ids = {0: 3, 1: 7}  # non-contiguous COCO ids
    ann_id = 1
    for split, stems in (("train2017", "abc"), ("val2017", "d")):
        images, anns = [], []
        for i, s in enumerate(stems):
            write_image(root / split / f"{s}.png")
            images.append({"id": i + 1, "file_name": f"{s}.png", "width": W, "height": H})
            for c, x0, y0, x1, y1 in OBJECTS[s]:
                anns.append({"id": ann_id, "image_id": i + 1, "category_id": cat_ids[c],
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
                ann_id += 1
        if split == "train2017":
            anns.append({"id": 99, "image_id": 1, "category_id": 3, "bbox": [0, 0, 50, 40], "iscrowd": 1})
        os.makedirs(root / "annotations", exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": anns,
             "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}))
    return root


def make_voc(root, difficult=("b",)):
    os.makedirs(root / "Annotations")
    os.makedirs(root / "ImageSets" / "Main")
    for s, objs in OBJECTS.items():
        write_image(root / "JPEGImages" / f"{s}.png")
        xml = [f"<annotation><size><width>{W}</width><height>{H}</height><depth>3</depth></size>"]
        for c, x0, y0, x1, y1 in objs:
            d = int(s in difficult)
            xml.append(f"<object><name>{NAMES[c]}</name><difficult>{d}</difficult><bndbox><xmin>{x0 + 1}</xmin>"
                       f"<ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
        (root / "Annotations" / f"{s}.xml").write_text("".join(xml) + "</annotation>")
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\nc\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("d\n")
    return root


def make_masks(root, palette=True):
    os.makedirs(root)
    (root / "classes.txt").write_text("background\ncircle\nsquare\n")
    rng = np.random.default_rng(0)
    masks = {}
    for split, stems in (("train", "abc"), ("val", "d")):
        for s in stems:
            write_image(root / "images" / split / f"{s}.jpg")
            m = rng.integers(0, 3, size=(H, W)).astype(np.uint8)
            m[0, 0] = 255
            img = Image.fromarray(m, mode="L")
            if palette:
                img = Image.fromarray(m, mode="P")
                img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 252 + [255, 255, 255])
            os.makedirs(root / "masks" / split, exist_ok=True)
            img.save(root / "masks" / split / f"{s}.png")
            masks[s] = m
    return root, masks


def boxes_by_image(root, split, stems, **kw):
    kw.setdefault("val_split", 0.0)  # keep all three train images (no test split held out)
    ds = pipelines.build(str(root), split=split, batch_size=None, shuffle=False, cache=False, deterministic=True, **kw)
    out = []
    for _, t in ds:
        keep = t["classes"].numpy() >= 0
        out.append((t["boxes"].numpy()[keep], t["classes"].numpy()[keep], t))
    assert len(out) == len(stems)
    return out


@pytest.mark.parametrize("maker", [make_yolo, make_coco, make_voc], ids=["yolo", "coco", "voc"])
def test_box_formats_round_trip(tmp_path, maker):
    root = maker(tmp_path / "data")
    spec = pipelines.inspect(str(root), val_split=0.0)
    assert spec.task == "detection" and spec.class_names == NAMES
    assert spec.splits["train"] == 3 and spec.splits["val"] == 1
    got = boxes_by_image(root, "train", "abc")
    for (boxes, classes, _), stem in zip(got, "abc"):
        np.testing.assert_allclose(boxes, expected(stem), atol=1e-6)
        assert classes.tolist() == [c for c, *_ in OBJECTS[stem]]
    (val_boxes, _, _), = boxes_by_image(root, "val", "d")
    np.testing.assert_allclose(val_boxes, expected("d"), atol=1e-6)


def test_yolo_classes_txt_and_background(tmp_path):
    root = make_yolo(tmp_path / "d", names_as="txt")
    got = boxes_by_image(root, "train", "abc")
    assert len(got[2][0]) == 0  # "c" has no label file: a background image


def test_voc_difficult_is_kept_and_flagged(tmp_path):
    root = make_voc(tmp_path / "voc")
    got = boxes_by_image(root, "train", "abc")
    flags = [t["difficult"].numpy()[t["classes"].numpy() >= 0].tolist() for _, _, t in got]
    assert flags == [[False, False], [True], []]


def test_mask_folders_round_trip(tmp_path):
    root, masks = make_masks(tmp_path / "seg")
    spec = pipelines.inspect(str(root))
    assert spec.task == "segmentation" and spec.class_names == ["background", "circle", "square"]
    ds = pipelines.build(str(root), split="train", batch_size=None, shuffle=False, cache=False, val_split=0.0, deterministic=True)
    for (_, mask), stem in zip(ds, "abc"):
        np.testing.assert_array_equal(mask.numpy(), masks[stem])


def test_grayscale_masks_work_too(tmp_path):
    root, masks = make_masks(tmp_path / "seg", palette=False)
    (_, mask), = pipelines.build(str(root), split="val", batch_size=None, cache=False).take(1)
    np.testing.assert_array_equal(mask.numpy(), masks["d"])


def label_error(root, match):
    with pytest.raises(ValueError, match=match):
        pipelines.inspect(str(root))


def test_yolo_bad_labels_name_file_and_line(tmp_path):
    root = make_yolo(tmp_path / "y")
    label = root / "labels" / "train" / "a.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n0 0.5 oops 0.2 0.2\n")
    label_error(root, r"a\.txt:2: expected 'class cx cy w h'")
    label.write_text("0 0.5 0.5 0.2\n")
    label_error(root, r"a\.txt:1: expected 'class cx cy w h'")
    label.write_text("\n5 0.5 0.5 0.2 0.2\n")
    label_error(root, r"a\.txt:2: class id 5 is outside the names list \(0\.\.1\)")
    label.write_text("0 0.5 0.5 0.0 0.2\n")
    label_error(root, r"a\.txt:1: box has non-positive size")
    label.write_text("0 0.5 0.5 0.2 0.2\n0 1.0 0.5 0.04 0.2\n")  # 2% outside on the right
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = boxes_by_image(root, "train", "abc")
    assert any("clipped 1 box(es)" in str(w.message) for w in caught)
    assert got[0][0][1][3] == pytest.approx(1.0)


def test_coco_bad_annotation_names_its_id(tmp_path):
    root = make_coco(tmp_path / "c")
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["category_id"] = 42
    path.write_text(json.dumps(data))
    label_error(root, r"annotation id 2: category_id 42 is not in `categories`")
    data["annotations"][1]["category_id"] = 3
    data["annotations"][1]["bbox"] = [10, 10, 0, 5]
    path.write_text(json.dumps(data))
    label_error(root, r"annotation id 2: box has non-positive size")


def test_voc_unknown_class_names_file(tmp_path):
    root = make_voc(tmp_path / "v")
    (root / "classes.txt").write_text("cat\n")
    label_error(root, r"a\.xml: object 2: class 'dog' is not in classes\.txt")


def test_mask_errors_name_the_file(tmp_path):
    root, _ = make_masks(tmp_path / "m")
    Image.fromarray(np.zeros((H + 1, W), np.uint8), mode="L").save(root / "masks" / "train" / "a.png")
    label_error(root, r"a\.png: mask is 50x41 but its image a\.jpg is 50x40")
    Image.fromarray(np.full((H, W), 7, np.uint8), mode="L").save(root / "masks" / "train" / "a.png")
    label_error(root, r"a\.png: class id\(s\) \[7\] beyond classes\.txt")
    os.remove(root / "masks" / "train" / "a.png")
    label_error(root, r"a\.jpg: no mask masks/train/a\.png")


def test_unknown_and_ambiguous_layouts(tmp_path):
    root = tmp_path / "u"
    write_image(root / "images" / "train" / "a.png")
    label_error(root, r"Unknown dataset layout .*found images/.*Looked for: YOLO txt.*COCO JSON.*Pascal VOC")
    os.makedirs(root / "labels" / "train")
    os.makedirs(root / "masks" / "train")
    label_error(root, r"Ambiguous dataset layout .*YOLO txt, image/mask folders")


def test_corrupt_image_is_skipped_with_count(tmp_path):
    root = make_yolo(tmp_path / "y")
    (root / "images" / "train" / "b.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="Skipped 1 corrupt"):
        spec = pipelines.inspect(str(root), val_split=0.0)
    assert spec.splits["train"] == 2
    with pytest.raises(ValueError, match=r"b\.png"):
        pipelines.inspect(str(root), strict=True)
