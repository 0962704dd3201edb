"""Augmentation: boxes and masks follow the image on both backends; seeded runs repeat."""

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines.augment import Policy, albu, choose_backend, tf_ops
from pipelines.augment import recipe as aug_recipe
from zoo.cli.train import parse_sets
from zoo.recipes import Recipe

GEOMETRIC = Policy(names=("flip", "crop", "distort"), crop_scale=(0.4, 1.0), distort=0.15, min_visibility=0.25)


def _box_images(n=24, size=48, seed=0):
    """Black images, each with one white rectangle; its box is the target."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    boxes = np.zeros((n, 3, 4), np.float32)
    classes = np.full((n, 3), -1, np.int32)
    for i in range(n):
        y0, x0 = rng.integers(4, size // 2, 2)
        y1, x1 = y0 + rng.integers(8, size // 2), x0 + rng.integers(8, size // 2)
        images[i, y0:y1, x0:x1] = 255
        boxes[i, 0] = np.array([y0, x0, y1, x1]) / size
        classes[i, 0] = 1
    return images, boxes, classes


def _extent(img, size):
    ys, xs = np.nonzero(img.mean(-1) > 127)
    if len(ys) == 0:
        return None
    return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]) / size


def _check_boxes(images, boxes, classes, out=32):
    checked = 0
    for img, b, c in zip(images, boxes, classes):
        found = _extent(img, out)
        if c[0] < 0:  # dropped: mostly cropped away
            continue
        assert found is not None
        np.testing.assert_allclose(b[0], found, atol=2.5 / out)
        assert np.all(c[1:] == -1) and np.all(b[1:] == 0)
        checked += 1
    assert checked > len(images) // 2


def test_tf_boxes_follow_flip_crop_perspective():
    images, boxes, classes = _box_images()
    ex = {"image": tf.constant(images), "boxes": tf.constant(boxes), "classes": tf.constant(classes)}
    out = tf_ops.augment_batch(ex, tf.constant([3, 4], tf.int64), GEOMETRIC, (32, 32))
    assert out["image"].shape == (24, 32, 32, 3)
    _check_boxes(out["image"].numpy(), out["boxes"].numpy(), out["classes"].numpy())


def test_albumentations_boxes_follow_flip_crop_perspective():
    images, boxes, classes = _box_images()
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "boxes": boxes, "classes": classes})
    res = list(albu.apply(ds, GEOMETRIC, (32, 32), "detection", seed=1).as_numpy_iterator())
    imgs = np.stack([r["image"] for r in res])
    bs = np.zeros((len(res), 3, 4), np.float32)
    cs = np.full((len(res), 3), -1, np.int32)
    for i, r in enumerate(res):
        bs[i, : len(r["boxes"])], cs[i, : len(r["classes"])] = r["boxes"], r["classes"]
    _check_boxes(imgs, bs, cs)


AFFINE = Policy(names=("affine",), rotate=20, scale=(0.8, 1.2), shift=0.1, shear=10, min_visibility=0.25)


def test_tf_boxes_follow_affine():
    images, boxes, classes = _box_images()
    ex = {"image": tf.constant(images), "boxes": tf.constant(boxes), "classes": tf.constant(classes)}
    out = tf_ops.augment_batch(ex, tf.constant([5, 6], tf.int64), AFFINE, (32, 32))
    _check_boxes(out["image"].numpy(), out["boxes"].numpy(), out["classes"].numpy())


def test_albumentations_boxes_follow_affine():
    images, boxes, classes = _box_images()
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "boxes": boxes, "classes": classes})
    res = list(albu.apply(ds, AFFINE, (32, 32), "detection", seed=2).as_numpy_iterator())
    bs = np.zeros((len(res), 3, 4), np.float32)
    cs = np.full((len(res), 3), -1, np.int32)
    for i, r in enumerate(res):
        bs[i, : len(r["boxes"])], cs[i, : len(r["classes"])] = r["boxes"], r["classes"]
    _check_boxes(np.stack([r["image"] for r in res]), bs, cs)


def _extents(policy, seed=0):
    """Bright-pixel extents (pixels) of a centred 8x8 square on 32x32 after `policy`."""
    img = np.zeros((16, 32, 32, 1), np.uint8)
    img[:, 12:20, 12:20] = 255
    out = tf_ops.augment_batch({"image": tf.constant(img)}, tf.constant([seed, 1], tf.int64), policy, (32, 32))
    return np.stack([_extent(o, 1) for o in out["image"].numpy()])


def test_affine_strengths_in_closed_form():
    zoom = _extents(Policy(names=("affine",), rotate=0, scale=(2.0, 2.0), shift=0.0))
    np.testing.assert_allclose(zoom, np.tile([8, 8, 24, 24], (16, 1)), atol=1)  # 2x about the centre
    moved = _extents(Policy(names=("affine",), rotate=0, scale=(1.0, 1.0), shift=0.25))
    np.testing.assert_allclose(moved[:, 2:] - moved[:, :2], 8, atol=1)  # same size, shifted by <= 8 px
    assert np.abs(moved[:, :2] - 12).max() <= 9 and np.abs(moved[:, :2] - 12).max() >= 3
    turned = _extents(Policy(names=("affine",), rotate=45, scale=(1.0, 1.0), shift=0.0))
    sides = turned[:, 2:] - turned[:, :2]  # a square turned by a from -45..45 deg spans 8(|cos a| + |sin a|)
    assert sides.max() >= 10 and sides.min() >= 7 and sides.max() <= 8 * 2**0.5 + 1.5


def test_recipe_strengths_reach_the_policy_and_bad_ones_name_themselves():
    r = Recipe(augment=("affine", "pad_crop"), augment_args={"rotate": 5, "scale": [0.95, 1.05], "pad_pixels": 2})
    policy, local = aug_recipe.from_recipe(r)
    assert policy.names == ("affine",) and policy.rotate == 5 and policy.scale == (0.95, 1.05)
    assert local == {"pad_crop": {"pad": 2}}
    assert aug_recipe.from_recipe(Recipe(augment=("pad_crop",), extra={"pad_pixels": 3}))[1]["pad_crop"]["pad"] == 3
    assert aug_recipe.from_recipe(Recipe()) == ((), {})
    sets = parse_sets(["augment=crop", "augment_args={'crop_scale': (0.8, 1.0)}"])
    assert aug_recipe.from_recipe(Recipe().override(**sets))[0].crop_scale == (0.8, 1.0)
    for args, message in [({"rotation": 10}, "Unknown augment_args key 'rotation'.*Did you mean 'rotate'"),
                          ({"scale": (1.2, 0.9)}, r"scale=\(1.2, 0.9\) must be \(low, high\)"),
                          ({"rotate": "10"}, "rotate='10' must be a number in"),
                          ({"pad_pixels": -1}, "pad_pixels=-1 must be an integer >= 0")]:
        with pytest.raises(ValueError, match=message):
            aug_recipe.from_recipe(Recipe(augment=("affine",), augment_args=args))
    with pytest.raises(ValueError, match="augment_args` must be a dict"):
        aug_recipe.from_recipe(Recipe(augment=("affine",), augment_args=[("rotate", 1)]))


def test_boxes_dropped_when_cropped_away_and_compacted():
    img = np.zeros((1, 40, 40, 3), np.uint8)
    boxes = np.array([[[0.0, 0.0, 0.1, 0.1], [0.4, 0.4, 0.6, 0.6], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[2, 5, -1]], np.int32)
    # A homography that zooms into the centre: the corner box leaves the image.
    policy = Policy(names=("crop",), crop_scale=(0.25, 0.25), crop_ratio=(1.0, 1.0), min_visibility=0.3)
    ex = {"image": tf.constant(img), "boxes": tf.constant(boxes), "classes": tf.constant(classes)}
    kept = 0
    for s in range(10):
        out = tf_ops.augment_batch(ex, tf.constant([s, 0], tf.int64), policy, (40, 40))
        c = out["classes"].numpy()[0]
        assert c[-1] == -1 and 2 not in c  # corner box never survives a centre-ish 50% crop
        kept += int(c[0] == 5)
        assert np.all(out["boxes"].numpy()[0][c < 0] == 0)
    assert kept > 0


@pytest.mark.parametrize("backend,names", [("tf", ("flip", "crop", "distort")), ("tf", ("flip", "crop")),
                                           ("albumentations", ("flip", "crop", "distort")), ("tf", ("affine",)),
                                           ("albumentations", ("affine",))])
def test_masks_follow_image_with_nearest_neighbour(backend, names):
    rng = np.random.default_rng(0)
    mask = np.zeros((8, 40, 40), np.uint8)
    for i in range(8):
        for k in (1, 2, 3):
            y, x = rng.integers(0, 30, 2)
            mask[i, y:y + 10, x:x + 10] = k
    images = np.repeat((mask * 60)[..., None], 3, axis=-1).astype(np.uint8)
    policy = Policy(names=names, distort=0.15)
    if backend == "tf":
        out = tf_ops.augment_batch({"image": tf.constant(images), "mask": tf.constant(mask)},
                                   tf.constant([1, 2], tf.int64), policy, (32, 32))
        out_img, out_mask = out["image"].numpy(), out["mask"].numpy()
    else:
        ds = tf.data.Dataset.from_tensor_slices({"image": images, "mask": mask})
        res = list(albu.apply(ds, policy, (32, 32), "segmentation", seed=0).as_numpy_iterator())
        out_img, out_mask = np.stack([r["image"] for r in res]), np.stack([r["mask"] for r in res])
    assert set(np.unique(out_mask)) <= {0, 1, 2, 3, 255}  # class ids never blend
    valid = out_mask != 255
    agree = np.abs(out_img[..., 0].astype(np.float32) - out_mask.astype(np.float32) * 60) < 20
    padded = np.pad(out_mask, ((0, 0), (1, 1), (1, 1)), mode="edge")
    interior = np.all([padded[:, 1 + dy:33 + dy, 1 + dx:33 + dx] == out_mask
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0) & valid
    assert agree[interior].mean() > 0.98 and interior.mean() > 0.5
    if (~valid).any():  # outside the source image: black pixels, ignored mask
        assert (out_img[..., 0][~valid] < 20).mean() > 0.9


def test_color_keeps_geometry_and_zero_strength_is_identity():
    images, boxes, classes = _box_images(n=4)
    ex = {"image": tf.constant(images), "boxes": tf.constant(boxes), "classes": tf.constant(classes)}
    zero = Policy(names=("color",), brightness=0, contrast=0, saturation=0, hue=0)
    out = tf_ops.augment_batch(ex, tf.constant([0, 0], tf.int64), zero, (48, 48))
    np.testing.assert_allclose(out["image"].numpy(), images.astype(np.float32), atol=0.05)
    strong = tf_ops.augment_batch(ex, tf.constant([0, 0], tf.int64), Policy(names=("color",)), (48, 48))
    np.testing.assert_array_equal(strong["boxes"].numpy(), boxes)
    assert not np.allclose(strong["image"].numpy(), images)
    assert strong["image"].numpy().min() >= 0 and strong["image"].numpy().max() <= 255


def _pair(n=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 20, 20, 3), dtype=np.uint8), np.arange(n) % 3


@pytest.mark.parametrize("backend", ["tf", "albumentations"])
def test_seeded_deterministic_runs_repeat(backend):
    kw = dict(batch_size=8, augment=("flip", "crop", "color", "distort"), backend=backend, image_size=16,
              deterministic=True)

    def batches(seed):
        return [x.numpy() for x, _ in pipelines.build(_pair(), seed=seed, **kw)]

    a, b, c = batches(7), batches(7), batches(8)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_epochs_differ_and_eval_splits_are_not_augmented():
    ds = pipelines.build(_pair(), batch_size=8, augment=("flip", "color"), backend="tf", seed=3, deterministic=True)
    e1, e2 = [x.numpy() for x, _ in ds], [x.numpy() for x, _ in ds]
    assert not all(np.array_equal(p, q) for p, q in zip(e1, e2))
    plain = [x.numpy() for x, _ in pipelines.build(_pair(), split="val", batch_size=8)]
    augmented = [x.numpy() for x, _ in pipelines.build(_pair(), split="val", batch_size=8, augment=("flip", "color"))]
    assert all(np.array_equal(p, q) for p, q in zip(plain, augmented))


def test_auto_backend_reads_measured_table():
    table = {"us_per_image": {n: {"tf": 1.0, "albumentations": 2.0} for n in ("base", "flip", "crop", "color", "distort")}}
    assert choose_backend(Policy(names=("flip",)), table) == "tf"
    table["us_per_image"]["flip"] = {"tf": 10.0, "albumentations": 0.0}
    assert choose_backend(Policy(names=("flip",)), table) == "albumentations"
    assert choose_backend(Policy(names=("distort",), distort_kind="elastic"), table) == "albumentations"
    table["us_per_image"]["distort"] = {"tf": 1.0, "albumentations": 30.0}  # unmeasured "affine" costs as distort
    assert choose_backend(Policy(names=("affine",)), table) == "tf"
    with pytest.raises(ValueError, match="distort_kind='grid' needs backend='albumentations'"):
        pipelines.build(_pair(), augment=Policy(names=("distort",), distort_kind="grid"), backend="tf")


def test_unbatched_examples_and_detection_padding():
    images, boxes, classes = _box_images(n=6)
    # detection through arrays is not a source kind; use the tf backend on an unbatched dataset directly
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "boxes": boxes, "classes": classes})
    out = list(tf_ops.apply(ds, GEOMETRIC, (32, 32), "detection", seed=0, batched=False).as_numpy_iterator())
    assert out[0]["image"].shape == (32, 32, 3) and out[0]["boxes"].shape == (3, 4)


def test_crop_and_resize_path_matches_projective_path():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (6, 40, 30, 3), dtype=np.uint8))
    policy = Policy(names=("flip", "crop"))
    m = tf_ops.homography(tf.constant([5, 6], tf.int64), 6, tf.constant([40, 30]), (24, 20), policy)
    fast = tf_ops._crop_resize(images, m, tf.constant([40, 30]), (24, 20), "bilinear")
    exact = tf_ops._transform(tf.cast(images, tf.float32), m, (24, 20), "BILINEAR", 0.0)
    np.testing.assert_allclose(fast.numpy()[:, 1:-1, 1:-1], exact.numpy()[:, 1:-1, 1:-1], atol=0.5)
