"""Every registered model's serving graph builds and its float32 LiteRT file converts and matches Keras
(issue 22: "the commands work for every registered model"). Parametrised over `zoo.list_models()`, so a new
model is covered when it is registered. Each model is untrained at its registry test size.

The ImageNet ResNets (5 to 58 M parameters even at 32x32: 20-60 CPU-seconds each to convert) are left to
`benchmarks/export_matrix.py`, which exports every model to every format; their blocks (basic, bottleneck)
are the CIFAR ResNets' and `test_export_formats.py` covers every task.
"""

import os

import keras
import pytest

import zoo
from benchmarks import export_matrix as matrix
from zoo.export import graph, portable, savedmodel, tflite
from zoo.export import spec as spec_lib

HEAVY = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MODELS = [name for name in zoo.list_models() if name not in HEAVY]


def test_heavy_models_are_registered():
    assert set(HEAVY) <= set(zoo.list_models())  # a renamed model must not drop out of both lists silently


@pytest.mark.parametrize("name", MODELS)
def test_serving_graph_builds_and_tflite_float32_matches_keras(tmp_path, name):
    keras.utils.set_random_seed(0)
    model = zoo.create_model(name, **zoo.get_spec(name).test_overrides)
    _, spec, _, _ = spec_lib.resolve(model, "scale")
    float_model = graph.float32_model(model)
    signatures = graph.ServingModule(float_model, spec).signatures()
    assert "serving_default" in signatures
    served = set(signatures["serving_default"].structured_outputs)
    warmup = savedmodel.warmup_inputs(spec, None)
    record = portable.write(tflite, str(tmp_path), model, float_model, spec, None, warmup, None)
    assert record["file"] == "model_float32.tflite" and os.path.getsize(tmp_path / record["file"]) == record["bytes"]
    assert record["max_abs_diff"] <= record["tolerance"] == 1e-4
    assert set(record["outputs"]) <= served  # the portable outputs are served outputs (detection: before NMS)


def test_siamese_litert_int8_uses_l2_normalization_and_stays_close_to_keras(tmp_path):
    """The embedding's UnitNormalization and the task's re-normalisation convert to LiteRT's L2_NORMALIZATION
    (int8 kernel); written as a division, the int8 file failed when run (`div.cc: data[i] != zero_point`)."""
    import numpy as np

    from zoo.export import runtimes

    run = matrix.tiny_run("siamese", str(tmp_path))
    cell = matrix.cell(run, str(tmp_path / "out"), "tflite", "int8")
    assert cell["result"] == "ok", cell
    path = tmp_path / "out" / "1" / cell["file"]
    ops = [op["op_name"] for op in runtimes.LiteRT(str(path)).interpreter._get_ops_details()]
    assert ops.count("L2_NORMALIZATION") == 2 and "DIV" not in ops, ops
    model = keras.saving.load_model(os.path.join(run, "model.keras"))
    images = np.random.default_rng(2).integers(0, 256, (4, *model.inputs[0].shape[1:]), dtype=np.uint8)
    got = runtimes.load(str(path))(images)["embedding"]
    want = np.asarray(model(images.astype(np.float32) / 255))
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=0.05)
    assert np.min(np.sum(got * want, axis=-1)) > 0.9  # cosine of the int8 and the float embedding
