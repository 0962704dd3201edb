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
