"""zoo.export: every registered model serves from TensorFlow alone with the Keras model's outputs."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import export as export_lib
from zoo.export import export
from zoo.tasks import classification

ALL = zoo.list_models()
# One export per family, task and input rank (its smallest member): the export code does not depend on
# depth, and the deep variants cost minutes. ZOO_EXPORT_ALL=1 exports every registered model.
GROUPS = {}
for _name in ALL:
    _spec = zoo.get_spec(_name)
    _key = _name if os.environ.get("ZOO_EXPORT_ALL") else f"{_spec.family}-{_spec.task}-{len(_spec.input_shape)}d"
    GROUPS.setdefault(_key, []).append(_name)
# Served with a standardisation so the baked-in preprocessing is not the identity.
STANDARDIZE = {"kind": "standardize", "scale": 1 / 255, "mean": [0.3, 0.5, 0.4], "std": [0.2, 0.25, 0.3]}

# Runs in a fresh interpreter that cannot import the project: what TF Serving and other runtimes see.
TF_ONLY = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("zoo", "pipelines", "callbacks"):
                raise ImportError(f"the serving process must not import {name}")

    sys.meta_path.insert(0, Block())
    import numpy as np
    import tensorflow as tf

    jobs = json.load(open(sys.argv[1]))
    for job in jobs:
        model = tf.saved_model.load(job["dir"])
        out = {}
        for sig in job["signatures"]:
            fn = model.signatures[sig["name"]]
            arg = np.load(sig["input"], allow_pickle=True)
            for k, v in fn(**{sig["key"]: tf.constant(arg)}).items():
                out[sig["name"] + "/" + k] = v.numpy()
        np.savez(job["out"], **out)
    print("loaded modules:", sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "pipelines", "callbacks")))
    """
)


def run_tf_only(jobs, tmp):
    """Runs TF_ONLY on `jobs`; returns {name: {"signature/output": array}}."""
    manifest = os.path.join(tmp, "jobs.json")
    with open(manifest, "w") as f:
        json.dump(jobs, f)
    script = os.path.join(tmp, "serve.py")
    with open(script, "w") as f:
        f.write(TF_ONLY)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, script, manifest], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded modules: []" in proc.stdout
    outs = {}
    for job in jobs:
        with np.load(job["out"] + ".npz") as z:
            outs[job["name"]] = dict(z)
    return outs


def images_for(shape, n=3, seed=0, size=None):
    h, w, c = shape
    h, w = size or (h or 24, w or 24)
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def model_input(images, spec, norm):
    """The Keras model's input computed independently of zoo.export: `(x * scale - mean) / std`."""
    x = images.astype(np.float32)
    if norm["kind"] != "none":
        x = x * np.float32(norm["scale"])
    if norm["kind"] == "standardize":
        x = (x - np.float32(norm["mean"][: x.shape[-1]])) / np.float32(norm["std"][: x.shape[-1]])
    if spec.input_kind == "image_rows":
        x = x.reshape(x.shape[0], x.shape[1], -1)
    return x


def expected_outputs(model, x, spec):
    """Named outputs the export promises, from the Keras model (float32 numpy in, no tracing)."""
    out = model(x, training=False)
    if spec.task in export_lib.CLASSIFIER_TASKS and export_lib.graph.output_fn(spec) is classification.serving_outputs:
        probs = np.asarray(out, np.float32)
        if probs.shape[-1] == 1:
            probs = np.concatenate([1 - probs, probs], -1)
        return {"probabilities": probs, "classes": probs.argmax(-1)}
    return {k: np.asarray(v) for k, v in export_lib.graph.output_fn(spec)(model, out, spec).items()}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Every registered model exported, then run in one TensorFlow-only subprocess."""
    tmp = str(tmp_path_factory.mktemp("served"))
    jobs, expected, failures = [], {}, {}
    for group, members in GROUPS.items():
        sizes = {}
        for member in members if len(members) > 1 else ():
            keras.backend.clear_session()
            sizes[member] = len(list(zoo.create_model(member, **zoo.get_spec(member).test_overrides)._flatten_layers()))
        name = min(members, key=lambda m: (sizes.get(m, 0), m))
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        spec = zoo.get_spec(name)
        model = zoo.create_model(name, **spec.test_overrides)
        is_image = len(model.inputs[0].shape) in (3, 4)
        channels = model.inputs[0].shape[-1] if len(model.inputs[0].shape) == 4 else 1
        pre = dict(STANDARDIZE, mean=STANDARDIZE["mean"][:channels], std=STANDARDIZE["std"][:channels]) \
            if is_image else "none"
        try:
            path = export(model, os.path.join(tmp, name), preprocessing=pre, verbose=False)
        except Exception as exc:  # reported per model by the parametrised test
            failures[group] = f"{name}: {type(exc).__name__}: {exc}"
            continue
        info = json.load(open(os.path.join(path, "assets.extra", "export.json")))
        espec = export_lib.ExportSpec(**{k: v for k, v in info.items() if k not in ("signatures", "outputs", "files")})
        sigs = []
        if is_image:
            imgs = images_for(espec.image_shape)
            np.save(os.path.join(tmp, f"{name}_images.npy"), imgs)
            sigs.append({"name": "serving_default", "key": "images", "input": os.path.join(tmp, f"{name}_images.npy")})
            if espec.has_bytes:
                pngs = np.array([export_lib.encode_png(im) for im in imgs], dtype=object)
                np.save(os.path.join(tmp, f"{name}_png.npy"), pngs)
                sigs.append({"name": "serving_bytes", "key": "image_bytes", "input": os.path.join(tmp, f"{name}_png.npy")})
            x = model_input(imgs, espec, espec.normalization)
        else:
            x = np.random.default_rng(0).normal(size=(3,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
            np.save(os.path.join(tmp, f"{name}_features.npy"), x)
            sigs.append({"name": "serving_default", "key": "features", "input": os.path.join(tmp, f"{name}_features.npy")})
        expected[group] = expected_outputs(model, x, espec)
        jobs.append({"name": group, "model": name, "dir": path, "signatures": sigs, "out": os.path.join(tmp, f"{name}_out")})
    outs = run_tf_only(jobs, tmp)
    return expected, outs, failures, {job["name"]: job["model"] for job in jobs}


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_model_family_serves_keras_outputs_from_tensorflow_alone(served, group):
    expected, outs, failures, chosen = served
    assert group not in failures, failures.get(group)
    got, want_outputs, name = outs[group], expected[group], chosen[group]
    signatures = {k.split("/")[0] for k in got}
    model_rank = len(zoo.get_spec(name).input_shape)
    assert signatures == ({"serving_default"} if model_rank == 1 else {"serving_default", "serving_bytes"})
    for sig in signatures:
        assert sorted(k.split("/")[1] for k in got if k.startswith(sig + "/")) == sorted(want_outputs)
        for key, want in want_outputs.items():
            value = got[f"{sig}/{key}"]
            assert value.shape == want.shape, (name, sig, key)
            if want.dtype.kind == "f":
                np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-5, err_msg=f"{name} {sig}/{key}")
            else:
                np.testing.assert_array_equal(value, want, err_msg=f"{name} {sig}/{key}")
    if zoo.get_spec(name).task in export_lib.CLASSIFIER_TASKS:
        assert {"probabilities", "classes"} == set(want_outputs)


def small_classifier(classes=3, shape=(12, 12, 3), activation="softmax"):
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, activation=activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name="small")


def test_versions_are_numbered_and_never_overwritten(tmp_path, capsys):
    model = small_classifier()
    base = tmp_path / "small"
    first = export(model, base, preprocessing="scale")
    assert first == os.path.join(str(base), "1")
    assert capsys.readouterr().out.strip() == first
    assert export(model, base, preprocessing="scale", verbose=False).endswith(os.sep + "2")
    assert export(model, base, version=7, preprocessing="scale", verbose=False).endswith(os.sep + "7")
    assert export(model, base, preprocessing="scale", verbose=False).endswith(os.sep + "8")
    stamp = os.path.getmtime(base / "2" / "saved_model.pb")
    with pytest.raises(ValueError, match=r"Version 2 already exists.*Next free version: 9"):
        export(model, base, version=2, preprocessing="scale")
    assert os.path.getmtime(base / "2" / "saved_model.pb") == stamp
    assert sorted(os.listdir(base)) == ["1", "2", "7", "8"]  # no temporary folders left


def test_a_failed_export_leaves_no_version_behind(tmp_path, monkeypatch):
    def broken_verify(path, *args):
        assert os.path.basename(path).startswith(".tmp-1-")  # written beside the final folder
        assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        raise ValueError("simulated mismatch")

    monkeypatch.setattr(export_lib.savedmodel, "_verify", broken_verify)
    with pytest.raises(ValueError, match="simulated mismatch"):
        export(small_classifier(), tmp_path / "m", preprocessing="scale")
    assert os.listdir(tmp_path / "m") == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"version": 0}, r"`version` must be a positive integer"),
        ({"version": "3"}, r"`version` must be a positive integer"),
        ({"preprocessing": None}, r"needs the training preprocessing"),
        ({"preprocessing": "zscore"}, r"Unknown normalization kind 'zscore'; allowed: scale, standardize, none"),
        ({"preprocessing": {"kind": "standardize"}}, r"needs per-channel 'mean' and 'std'"),
        ({"preprocessing": {"kind": "standardize", "mean": [0.5] * 3, "std": [0, 1, 1]}}, r"std > 0"),
        ({"class_names": ["a", "b"]}, r"2 class names for a model with 3 classes"),
        ({"task": "regression"}, r"Unknown task 'regression'"),
        ({"preprocessing": {"kind": "scale", "resize": {"method": "cubic"}}}, r"Unknown resize method 'cubic'"),
        ({"warmup_images": np.zeros((1, 12, 12, 3), np.float32)}, r"`warmup_images` must be uint8"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path, kwargs, match):
    kwargs = {"preprocessing": "scale", **kwargs}
    with pytest.raises(ValueError, match=match):
        export(small_classifier(), tmp_path / "m", **kwargs)
    assert not os.path.exists(tmp_path / "m") or os.listdir(tmp_path / "m") == []


def test_bad_sources_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="neither a run directory nor a .keras file"):
        export(str(tmp_path / "missing"), tmp_path / "m")
    os.makedirs(tmp_path / "notarun")
    with pytest.raises(ValueError, match="is not a run directory: it needs model.keras and config.json"):
        export(str(tmp_path / "notarun"), tmp_path / "m")
    with pytest.raises(ValueError, match="must be a keras.Model, a run directory or a .keras file"):
        export(42, tmp_path / "m")


def write_run(run, model, *, normalization, class_names, metrics):
    """A run directory in the layout zoo.train writes (model.keras, config.json, metrics.json)."""
    os.makedirs(run, exist_ok=True)
    model.save(os.path.join(run, "model.keras"))
    data = {"task": "classification", "num_classes": len(class_names), "class_names": class_names,
            "image_shape": list(model.inputs[0].shape[1:]), "splits": {"train": 8, "val": 2, "test": 2},
            "normalization": normalization, "source": "test", "max_boxes": None, "split_seed": 0, "extra": {}}
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"model": "small", "task": "classification", "model_kwargs": {}, "recipe": {}, "data": data,
                   "precision": "float32", "xla": False}, f)
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump(metrics, f)


def test_run_directory_export_assets_warmup_and_bad_inputs(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    model = small_classifier()
    norm = {"kind": "standardize", "scale": 1 / 255, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.6, 0.7]}
    metrics = {"test": {"accuracy": 0.75, "loss": 0.6}}
    write_run(tmp_path / "run", model, normalization=norm, class_names=["cat", "dog", "eel"], metrics=metrics)
    path = export(str(tmp_path / "run"), tmp_path / "small", verbose=False)
    extra = os.path.join(path, "assets.extra")
    assert sorted(os.listdir(extra)) == ["export.json", "labels.txt", "metrics.json", "tf_serving_warmup_requests"]
    assert open(os.path.join(extra, "labels.txt")).read().split() == ["cat", "dog", "eel"]
    assert json.load(open(os.path.join(extra, "metrics.json"))) == metrics
    info = json.load(open(os.path.join(extra, "export.json")))
    assert info["normalization"] == norm and info["image_shape"] == [12, 12, 3]
    assert info["outputs"] == {"probabilities": {"dtype": "float32", "shape": [None, 3]},
                               "classes": {"dtype": "int64", "shape": [None]}}

    # The warm-up file holds real PredictionLog records that the model answers.
    loaded = tf.saved_model.load(path)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(os.path.join(extra, "tf_serving_warmup_requests"))]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["serving_default", "serving_bytes"]
    assert all(log.predict_log.request.model_spec.name == "small" for log in logs)
    images = tf.make_ndarray(logs[0].predict_log.request.inputs["images"])
    assert images.dtype == np.uint8 and images.shape[1:] == (12, 12, 3)
    by_images = loaded.signatures["serving_default"](images=tf.constant(images))
    pngs = tf.make_ndarray(logs[1].predict_log.request.inputs["image_bytes"])
    by_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(pngs))
    want = model(model_input(images, export_lib.ExportSpec("classification", "small", "image", (12, 12, 3), norm),
                             norm)).numpy()
    np.testing.assert_allclose(by_images["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_bytes["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)

    # Wrong dtype, rank or channel count: a clear error, never a cast.
    sig = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor but is a float"):
        sig(images=tf.zeros([1, 12, 12, 3], tf.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor images \[12,12,3\] is not compatible"):
        sig(images=tf.zeros([12, 12, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor images \[1,12,12,1\] is not compatible"):
        sig(images=tf.zeros([1, 12, 12, 1], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([b"not an image"]))


def test_other_sizes_are_resized_in_the_graph_like_the_pipeline(tmp_path):
    model = small_classifier()
    loaded = tf.saved_model.load(export(model, tmp_path / "m", preprocessing="scale", verbose=False))
    big = images_for((12, 12, 3), n=2, size=(30, 20))
    # The pipeline's resize of mixed-size folders: antialiased bilinear, truncated back to uint8.
    # The graph computes it as two matrix products (ops converters map), so float rounding can land a value
    # that is an exact integer in one just below it in the other: one level, on a few pixels in a million.
    resized = tf.cast(tf.cast(tf.image.resize(big, (12, 12), antialias=True), tf.uint8), tf.float32).numpy()
    want = model(resized * np.float32(1 / 255)).numpy()
    got = loaded.signatures["serving_default"](images=tf.constant(big))["probabilities"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    pngs = tf.constant([export_lib.encode_png(im) for im in big])
    got = loaded.signatures["serving_bytes"](image_bytes=pngs)["probabilities"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size,to", [((30, 20), (12, 12)), ((480, 640), (224, 224)), ((100, 90), (224, 224))])
def test_graph_resize_has_the_pipelines_numbers_without_scale_and_translate(size, to):
    """Antialiased bilinear as two matrix products: the pipeline's values (float32 rounding aside)."""
    spec = export_lib.ExportSpec("classification", "m", "image", to + (3,), {"kind": "none", "scale": 1.0,
                                                                             "mean": [0.0] * 3, "std": [1.0] * 3})
    images = images_for((None, None, 3), n=2, size=size)
    pipeline = tf.cast(tf.cast(tf.image.resize(images, to, antialias=True), tf.uint8), tf.float32).numpy()
    fn = tf.function(lambda x: export_lib.resize(x, spec))
    served = fn(tf.constant(images)).numpy()
    assert np.abs(served - pipeline).max() <= 1 and np.sum(served != pipeline) <= max(2, 1e-4 * served.size)
    np.testing.assert_allclose(export_lib.graph._antialiased_bilinear(tf.cast(images, tf.float32), to).numpy(),
                               tf.image.resize(images, to, antialias=True).numpy(), atol=2e-4)
    ops = {n.op for n in fn.get_concrete_function(tf.TensorSpec([None, None, None, 3], tf.uint8)).graph.as_graph_def(
        ).node} | {n.op for f in fn.get_concrete_function(tf.TensorSpec([None, None, None, 3], tf.uint8)).graph
                   .as_graph_def().library.function for n in f.node_def}
    assert "ScaleAndTranslate" not in ops and "MatMul" in ops


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_exports_a_float32_graph(tmp_path, policy):
    keras.mixed_precision.set_global_policy(policy)
    model = small_classifier()
    keras.mixed_precision.set_global_policy("float32")
    reference = small_classifier()
    reference.set_weights(model.get_weights())
    path = export(model, tmp_path / "m", preprocessing="scale", verbose=False)
    loaded = tf.saved_model.load(path)
    images = images_for((12, 12, 3))
    got = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"]
    assert got.dtype == tf.float32
    x = images.astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_allclose(got.numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.numpy(), model(x).numpy(), atol=2e-2)
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    dtypes = {a.type for f in graph.library.function for n in f.node_def for k, a in n.attr.items() if k == "T"}
    assert not dtypes & {tf.float16.as_datatype_enum, tf.bfloat16.as_datatype_enum}


def test_task_hook_names_the_outputs_and_raw_outputs_otherwise(tmp_path, monkeypatch):
    from zoo.tasks import base as tasks

    inputs = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(5, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, name="embed")(x))
    images = images_for((12, 12, 3))
    raw = model(images.astype(np.float32) / np.float32(255)).numpy()

    monkeypatch.setitem(tasks._TASKS, "embedding", None)
    loaded = tf.saved_model.load(export(model, tmp_path / "raw", task="embedding", preprocessing="scale", verbose=False))
    got = loaded.signatures["serving_default"](images=tf.constant(images))
    assert list(got) == ["raw_output"]
    np.testing.assert_allclose(got["raw_output"].numpy(), raw, rtol=1e-5, atol=1e-6)

    def l2(model, outputs, spec):
        assert spec.task == "embedding" and spec.image_shape == (12, 12, 3)
        return {"embedding": tf.math.l2_normalize(outputs, axis=-1)}

    monkeypatch.setitem(tasks._TASKS, "embedding", tasks.Task("embedding", loss=None, serving_outputs=l2))
    loaded = tf.saved_model.load(export(model, tmp_path / "hook", task="embedding", preprocessing="scale", verbose=False))
    for sig, arg in [("serving_default", {"images": tf.constant(images)}),
                     ("serving_bytes", {"image_bytes": tf.constant([export_lib.encode_png(i) for i in images])})]:
        got = loaded.signatures[sig](**arg)
        assert list(got) == ["embedding"]
        np.testing.assert_allclose(got["embedding"].numpy(), raw / np.linalg.norm(raw, axis=-1, keepdims=True),
                                   rtol=1e-5, atol=1e-6)


def test_saved_model_cli_lists_the_documented_signatures(tmp_path):
    path = export(small_classifier(), tmp_path / "m", preprocessing="scale", verbose=False)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", path], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    blocks = {}
    for block in shown.stdout.split("signature_def[")[1:]:
        blocks[block.split("'")[1]] = block
    assert {"serving_default", "serving_bytes"} <= set(blocks)
    readme = open(os.path.join(os.path.dirname(__file__), "..", "saved_models", "README.md")).read()
    rows = [[c.strip().strip("`") for c in line.split("|")[1:6]]
            for line in readme.splitlines() if line.startswith("| `serving_")]
    checked = 0
    for signature, task, kind, tensor, dtype in rows:
        if task in ("all", "classification"):
            side = "inputs" if kind == "input" else "outputs"
            assert f"{side}['{tensor}'] tensor_info:\n        dtype: {dtype}\n" in blocks[signature], (signature, tensor)
            checked += 1
    assert checked == 6, rows  # 2 signatures x (1 input + 2 classification outputs)
    assert all(f"{sig}" in readme for sig in blocks if sig != "__saved_model_init_op")


def test_predict_prints_top_classes_with_tensorflow_alone(tmp_path, capsys):
    model = small_classifier()
    base = tmp_path / "small"
    path = export(model, base, preprocessing="scale", class_names=["cat", "dog", "eel"], verbose=False)
    images = images_for((12, 12, 3), n=2)
    files = []
    for i, im in enumerate(images):
        files.append(str(tmp_path / f"img{i}.png"))
        with open(files[-1], "wb") as f:
            f.write(export_lib.encode_png(im))
    probs = model(images.astype(np.float32) * np.float32(1 / 255)).numpy()
    names = ["cat", "dog", "eel"]

    # As a standalone script next to an export: no project on the path, no project import.
    script = os.path.join(os.path.dirname(export_lib.__file__), "predict.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", script, str(base), *files, "--json", "--top-k", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["image"] for r in results] == files
    for r, p in zip(results, probs):
        order = p.argsort()[::-1][:2]
        assert [t["label"] for t in r["top"]] == [names[i] for i in order]
        np.testing.assert_allclose([t["probability"] for t in r["top"]], p[order], atol=1e-5)

    # The `zoo predict` command on the version folder, as text.
    from zoo.cli import main

    assert main(["predict", path, files[0]]) == 0
    top = names[int(probs[0].argmax())]
    assert capsys.readouterr().out.startswith(f"{files[0]}: {top} {probs[0].max():.3f}")
    assert main(["predict", path, str(tmp_path / "nope.png")]) == 2
    assert "No such image file" in capsys.readouterr().err


def test_export_command_writes_the_next_version(tmp_path, capsys):
    from zoo.cli import main

    write_run(tmp_path / "run", small_classifier(), normalization={"kind": "scale", "scale": 1 / 255},
              class_names=["a", "b", "c"], metrics={"test": {"accuracy": 1.0}})
    out = tmp_path / "exports" / "small"
    assert main(["export", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "1"), str(out / "2")]
    assert main(["export", str(tmp_path / "run"), "--out", str(out), "--version", "2"]) == 2
    assert "Version 2 already exists" in capsys.readouterr().err


def image_folder(root, seed=0):
    """root/{train,test}/{red,green,blue}/*.{png,jpg} of two sizes: noisy images tinted by class."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", 24), ("test", 12)):
        for c, name in enumerate(("red", "green", "blue")):
            os.makedirs(os.path.join(root, split, name))
            for i in range(per_class):
                size = (14, 14) if i % 2 else (18, 16)
                img = rng.integers(0, 140, size=(*size, 3))
                img[..., (c + 1) % 3 if split == "test" and i % 5 == 4 else c] += 100  # 1 in 5 test images mislabelled
                img = np.clip(img, 0, 255).astype(np.uint8)
                encoded = tf.io.encode_jpeg(img, quality=90) if i % 3 == 0 else tf.io.encode_png(img)
                ext = "jpg" if i % 3 == 0 else "png"
                with open(os.path.join(root, split, name, f"{i}.{ext}"), "wb") as f:
                    f.write(encoded.numpy())


@pytest.mark.slow
def test_served_accuracy_on_the_test_folder_equals_the_runs_test_accuracy(tmp_path):
    root = str(tmp_path / "colours")
    image_folder(root)
    # float32: a mixed-precision run is served in float32, which may flip a borderline prediction.
    run = zoo.train("softmax_regression", root, out=tmp_path / "run", epochs=3, batch_size=16, lr=0.05,
                    normalization="standardize", precision="float32", verbose=0,
                    model_kwargs={"input_shape": (12, 12, 3)})
    metrics = json.load(open(os.path.join(run.run_dir, "metrics.json")))
    path = export(run.run_dir, tmp_path / "served", verbose=False)

    # Serve every test file (mixed sizes, PNG and JPEG) through predict.py with TensorFlow alone.
    files, labels = [], []
    for label, name in enumerate(sorted(os.listdir(os.path.join(root, "test")))):
        for f in sorted(os.listdir(os.path.join(root, "test", name))):
            files.append(os.path.join(root, "test", name, f))
            labels.append(name)
    script = os.path.join(os.path.dirname(export_lib.__file__), "predict.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", script, path, *files, "--json", "--top-k", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    predicted = [json.loads(line)["top"][0]["label"] for line in proc.stdout.splitlines()]
    correct = sum(p == t for p, t in zip(predicted, labels))
    assert len(predicted) == len(files) == metrics["test"]["examples"] == 36
    assert 0.5 < correct / len(files) < 1  # learned something; mistakes, so the comparison is not trivial
    assert correct / len(files) == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
