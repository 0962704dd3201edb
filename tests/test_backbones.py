"""ResNet / MobileNet backbones: keras.applications compatibility, feature taps, weights resolution."""

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format

import zoo
from zoo.models import backbones, features, mobilenet, resnet, weights

A = keras.applications
KERAS_TWINS = {
    "resnet50": (A.ResNet50, {}),
    "mobilenet": (A.MobileNet, {"alpha": 0.5}),
    "mobilenet_v2": (A.MobileNetV2, {"alpha": 0.5}),
}


def randomize(model, seed=0):
    """Random weights everywhere, BN statistics included, so a mis-assigned tensor changes the output."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape, kind = tuple(w.shape), w.path.rsplit("/", 1)[-1]
            if kind in ("moving_variance", "gamma"):
                values.append(rng.uniform(0.5, 1.5, shape))
            elif kind == "kernel":
                fan_in = np.prod(shape[:2]) if isinstance(layer, keras.layers.DepthwiseConv2D) else np.prod(shape[:-1])
                values.append(rng.normal(0, np.sqrt(1.0 / fan_in), shape))
            else:
                values.append(rng.normal(0, 0.1, shape))
        layer.set_weights([v.astype("float32") for v in values])
    return model


def images(size=64, batch=2, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


def save_legacy_h5(model, path):
    """Writes a weights-only HDF5 file the way Keras 2 did (the format of Keras' published files)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.mark.parametrize(
    "name, params",
    [("resnet50", 25_636_712), pytest.param("resnet101", 44_707_176, marks=pytest.mark.slow),
     pytest.param("resnet152", 60_419_944, marks=pytest.mark.slow),
     ("mobilenet", 4_253_864), ("mobilenet_v2", 3_538_984)],
)
def test_params_equal_keras_applications_at_224(name, params):
    assert zoo.model_info(name)["params"] == params


@pytest.mark.parametrize("name, trainable", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_basic_block_resnets_match_the_paper_layout(name, trainable):
    # torchvision's counts for the same (bias-free) architecture.
    model = zoo.create_model(name)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert model.get_layer("conv3_block1_0_conv").strides == (2, 2)  # projection shortcut: strided 1x1 conv
    assert model.get_layer("conv3_block1_1_conv").kernel_size == (3, 3)
    with pytest.raises(ValueError):
        model.get_layer("conv2_block1_0_conv")  # 64 -> 64 channels: identity shortcut


@pytest.mark.parametrize("name, millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85)])
def test_cifar_resnets_have_the_papers_size(name, millions):
    model = zoo.create_model(name)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert abs(trainable / 1e6 - millions) < 0.01
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) + 1 == int(name[len("resnet"):])  # 6n+2 weighted layers: convs and the classifier
    assert model.output_shape == (None, 10) and model.input_shape == (None, 32, 32, 3)


def test_option_a_shortcut_pads_channels_without_parameters():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")
    y = np.asarray(resnet.PadShortcut(32, 2)(x))
    assert y.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not np.any(y[..., :8]) and not np.any(y[..., 24:])
    odd = np.random.default_rng(1).normal(size=(2, 7, 7, 16)).astype("float32")  # ceil(7 / 2) = 4, as slicing
    np.testing.assert_array_equal(np.asarray(resnet.PadShortcut(32, 2)(odd))[..., 8:24], odd[:, ::2, ::2, :])
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(resnet.PadShortcut(32, 2)(x) * 3.0)
    mask = np.zeros(x.shape, "float32")
    mask[:, ::2, ::2, :] = 3.0  # the gradient reaches exactly the subsampled pixels
    np.testing.assert_array_equal(tape.gradient(total, x).numpy(), mask)
    a, b = zoo.resnet20(), zoo.resnet20(shortcut="B")
    assert b.count_params() > a.count_params()
    assert "conv3_block1_0_conv" in [l.name for l in b.layers]
    with pytest.raises(ValueError, match="'C'"):
        zoo.resnet20(shortcut="C")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERAS_TWINS))
@pytest.mark.parametrize("include_top", [True, False])
def test_weights_saved_from_keras_applications_load(name, include_top, tmp_path):
    factory, kw = KERAS_TWINS[name]
    top = {"classifier_activation": None} if include_top else {}
    theirs = randomize(factory(weights=None, include_top=include_top, input_shape=(64, 64, 3), **kw, **top))
    x = images()
    expected = np.asarray(theirs(x))

    path = tmp_path / "keras.weights.h5"
    theirs.save_weights(path)
    ours = zoo.create_model(name, weights=str(path), include_top=include_top, input_shape=(64, 64, 3), **kw, **top)
    assert np.max(np.abs(np.asarray(ours(x)) - expected)) <= 1e-4

    legacy = tmp_path / "keras_published_format.h5"
    save_legacy_h5(theirs, legacy)
    ours = zoo.create_model(name, weights=str(legacy), include_top=include_top, input_shape=(64, 64, 3), **kw, **top)
    assert np.max(np.abs(np.asarray(ours(x)) - expected)) <= 1e-4


def test_legacy_file_with_top_fills_a_model_without_top_and_misfits_fail(tmp_path):
    theirs = randomize(A.ResNet50(weights=None, include_top=True, input_shape=(32, 32, 3)))
    path = tmp_path / "resnet50.h5"
    save_legacy_h5(theirs, path)
    features = keras.Model(theirs.inputs, theirs.get_layer("conv5_block3_out").output)
    ours = zoo.resnet50(weights=str(path), include_top=False, input_shape=(32, 32, 3))
    x = images(32)
    assert np.max(np.abs(np.asarray(ours(x)) - np.asarray(features(x)))) <= 1e-4

    notop = tmp_path / "resnet50_notop.h5"
    save_legacy_h5(ours, notop)
    with pytest.raises(ValueError, match="does not fit"):
        zoo.resnet50(weights=str(notop), input_shape=(32, 32, 3))  # no classifier in the file
    with pytest.raises(ValueError, match="does not fit"):
        zoo.resnet101(weights=str(path), include_top=False, input_shape=(32, 32, 3))


def test_preprocess_input_matches_keras_applications():
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(resnet.preprocess_input(x.copy()), A.resnet50.preprocess_input(x.copy()))
    np.testing.assert_allclose(mobilenet.preprocess_input(x.copy()), A.mobilenet_v2.preprocess_input(x.copy()))
    # features.preprocess_input reads the mode each family declares at registration.
    for name, family in (("resnet101", resnet), ("resnet18", resnet), ("mobilenet_v2", mobilenet), ("mobilenet", mobilenet)):
        np.testing.assert_allclose(features.preprocess_input(name)(x.copy()), family.preprocess_input(x.copy()))
    assert zoo.get_spec("resnet50").preprocessing == "caffe" and zoo.get_spec("mobilenet").preprocessing == "tf"
    # A model that declares none (no published ImageNet weights) gets an error, not ResNet's "caffe".
    for name in ("resnet20", "lenet5"):
        with pytest.raises(ValueError, match=f"{name!r} declares no ImageNet preprocessing"):
            features.preprocess_input(name)
    with pytest.raises(ValueError, match="preprocessing"):
        zoo.registry.register_model(
            task="classification", input_shape=(8,), reference="-", description="-", preprocessing="cafe"
        )(lambda: None)


def test_backbones_alias_keeps_the_old_names():
    assert backbones.feature_extractor is features.feature_extractor
    assert backbones.imagenet_file is weights.imagenet_file and backbones.OFFLINE_ENV == weights.OFFLINE_ENV
    assert dict(backbones.FEATURE_LAYERS["resnet50"]) == zoo.get_spec("resnet50").feature_layers
    assert set(features.FEATURE_LAYERS) == {n for n in zoo.list_models() if zoo.get_spec(n).feature_layers}


DEEP = ("resnet101", "resnet152")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in sorted(features.FEATURE_LAYERS)]
)
def test_feature_layers_sit_at_their_strides(name):
    size = 32 if name in ("resnet20", "resnet32", "resnet56") else 64
    kw = {"alpha": 0.25} if name.startswith("mobilenet") else {}
    base = zoo.create_model(name, include_top=False, input_shape=(size, size, 3), **kw)
    for level, layer_name in zoo.get_spec(name).feature_layers.items():
        stride = 2 ** int(level[1:])
        assert tuple(base.get_layer(layer_name).output.shape[1:3]) == (size // stride, size // stride), level
    # The deepest level is what the backbone without top returns.
    assert base.get_layer(layer_name).output is base.output


def test_feature_extractor_defaults_and_errors():
    model = features.feature_extractor("resnet18", (64, 64, 3))
    assert [tuple(o.shape[1:]) for o in model.outputs] == [(8, 8, 128), (4, 4, 256), (2, 2, 512)]
    outs = model(images(64))
    assert isinstance(outs, list) and all(np.all(np.isfinite(np.asarray(o))) for o in outs)
    model = features.feature_extractor("mobilenet_v2", (64, 64, 3), levels=("C1", "C2", "C3", "C4", "C5"), alpha=0.35)
    assert [o.shape[1] for o in model.outputs] == [32, 16, 8, 4, 2]
    with pytest.raises(ValueError, match="Did you mean: .*resnet50"):
        features.feature_extractor("resnet5", (64, 64, 3))
    with pytest.raises(ValueError, match=r"\['C3', 'C4', 'C5'\] for 'resnet20'; allowed: C0, C1, C2"):
        features.feature_extractor("resnet20", (32, 32, 3))
    with pytest.raises(ValueError, match="pooling"):
        features.feature_extractor("resnet18", (64, 64, 3), pooling="avg")


@pytest.mark.parametrize("name", ["resnet50", "resnet18", "mobilenet", "mobilenet_v2"])
def test_minimum_input_size_is_named(name):
    with pytest.raises(ValueError, match="minimum is 32x32") as err:
        zoo.create_model(name, input_shape=(31, 64, 3))
    assert "input_shape=(31, 64, 3)" in str(err.value)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("resnet50", {"weights": "imagenet", "classes": 10}, "classes=10"),
        ("resnet50", {"weights": "imagenet", "input_shape": (64, 64, 1), "include_top": False}, "3 input channels"),
        ("mobilenet", {"weights": "imagenet", "alpha": 0.3}, "closest: 0.25"),
        ("mobilenet", {"weights": "imagenet", "depth_multiplier": 2}, "depth_multiplier=2"),
        ("mobilenet_v2", {"alpha": 0}, "alpha=0"),
        ("resnet18", {"weights": "imagenet"}, "weights='imagenet'"),
        ("resnet20", {"weights": "imagenet"}, "weights='imagenet'"),
    ],
)
def test_backbone_argument_errors(name, kwargs, message):
    with pytest.raises(ValueError) as err:
        zoo.create_model(name, **kwargs)
    assert message in str(err.value)


def test_imagenet_files_are_keras_own():
    from keras.src.applications import resnet as keras_resnet

    for name, hashes in resnet.RESNET_HASHES.items():
        assert keras_resnet.WEIGHTS_HASHES[name] == hashes
        assert zoo.get_spec(name).pretrained["imagenet"].md5 == hashes
    assert sorted(weights.published()) == ["mobilenet", "mobilenet_v2", "resnet101", "resnet152", "resnet50"]
    assert weights.imagenet_file("resnet50", include_top=False)[0] == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert weights.imagenet_file("mobilenet", include_top=True, alpha=0.75, rows=160)[0] == "mobilenet_7_5_160_tf.h5"
    assert (
        weights.imagenet_file("mobilenet_v2", include_top=False, alpha=1.0, rows=224)[0]
        == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    )


def test_imagenet_offline_error_says_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(ValueError) as err:
        zoo.resnet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    message = str(err.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"not it")
    with pytest.raises(ValueError, match="wrong md5 hash"):
        zoo.resnet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))


def test_imagenet_weights_load_from_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    theirs = randomize(A.MobileNet(weights=None, include_top=False, alpha=0.25, input_shape=(32, 32, 3)))
    (tmp_path / "models").mkdir()
    save_legacy_h5(theirs, tmp_path / "models" / "mobilenet_2_5_224_tf_no_top.h5")
    ours = zoo.mobilenet(weights="imagenet", include_top=False, alpha=0.25, input_shape=(32, 32, 3))
    x = images(32)
    assert np.max(np.abs(np.asarray(ours(x)) - np.asarray(theirs(x)))) <= 1e-4


def test_recipes_are_the_papers():
    cifar = {n: zoo.model_info(n, params=False)["recipe"] for n in ("resnet20", "resnet32", "resnet56")}
    assert [r["published"]["test_error"] for r in cifar.values()] == [0.0875, 0.0751, 0.0697]
    r = cifar["resnet20"]
    assert (r["optimizer"], r["lr"], r["momentum"], r["weight_decay"], r["batch_size"]) == ("momentum", 0.1, 0.9, 1e-4, 128)
    assert r["schedule_args"]["boundaries_fraction"] == [0.5, 0.75] and r["extra"]["total_steps"] == 64000
    assert set(r["augment"]) == {"flip", "pad_crop"} and r["extra"]["pad_pixels"] == 4
    for name in ("resnet50", "mobilenet", "mobilenet_v2"):
        recipe = zoo.get_spec(name).recipe
        assert recipe.published["dataset"] == "ImageNet"
        assert zoo.Recipe.from_dict(recipe.to_dict()) == recipe


def test_cifar_resnets_use_torch_bn_momentum_and_imagenet_ones_keep_keras():
    # 0.9 (fb.resnet.torch): a few hundred CPU steps must be enough for the moving statistics.
    small = zoo.create_model("resnet20", input_shape=(16, 16, 3), classes=3)
    assert {l.momentum for l in small.layers if isinstance(l, keras.layers.BatchNormalization)} == {0.9}
    assert {l.momentum for l in zoo.resnet20(bn_momentum=0.97).layers
            if isinstance(l, keras.layers.BatchNormalization)} == {0.97}
    big = zoo.create_model("resnet18", input_shape=(32, 32, 3), classes=3, weights=None)
    assert {l.momentum for l in big.layers if isinstance(l, keras.layers.BatchNormalization)} == {0.99}
    with pytest.raises(ValueError, match=r"bn_momentum=1\.5"):
        zoo.resnet20(bn_momentum=1.5)


def test_imagenet_resnets_start_with_identity_blocks_and_stay_finite():
    # zero_init_last (timm's default): a random deep ResNet in inference mode neither overflows nor NaNs.
    x = np.random.default_rng(0).normal(0.0, 50.0, size=(2, 32, 32, 3)).astype("float32")
    model = zoo.create_model("resnet101", input_shape=(32, 32, 3), classes=3)
    last = [l for l in model.layers if l.name.endswith("_3_bn")]
    assert len(last) == 33 and all(not np.any(np.asarray(l.gamma)) for l in last)
    assert np.all(np.isfinite(np.asarray(model(x, training=False))))
    plain = zoo.create_model("resnet101", input_shape=(32, 32, 3), classes=3, zero_init_last=False)
    assert all(np.all(np.asarray(l.gamma) == 1) for l in plain.layers if l.name.endswith("_3_bn"))
    assert not any(l.name.endswith("_2_bn") and not np.any(np.asarray(l.gamma)) for l in model.layers)
