"""The zoo under KERAS_BACKEND=jax, as on a GPU image with JAX and no TensorFlow (issue #13's benchmark).

Each check runs in a subprocess: Keras picks its backend once per process.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("jax")  # in the `test` extra

import zoo  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

IMPORT_AND_BUILD = """
import json, sys
import numpy as np
import zoo

loaded = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tensorflow_datasets", "pipelines"})
shapes = {}
for name in ("resnet20", "unet"):
    spec = zoo.get_spec(name)
    model = zoo.create_model(name, **spec.test_overrides)
    x = np.random.default_rng(0).uniform(0, 1, (2,) + tuple(model.input_shape[1:])).astype("float32")
    y = np.asarray(model(x, training=False))
    assert np.isfinite(y).all(), name
    shapes[name] = list(y.shape[1:])
try:
    zoo.train
    train_error = None
except AttributeError as exc:
    train_error = str(exc)
print(json.dumps({"backend": zoo.BACKEND, "loaded": loaded, "models": zoo.list_models(), "shapes": shapes,
                  "train_error": train_error}))
"""


def _run_jax(args, timeout=240):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_import_registers_every_model_without_tensorflow():
    result = json.loads(_run_jax(["-c", IMPORT_AND_BUILD]).strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["loaded"] == []  # neither TensorFlow, TFDS nor the tf.data pipelines were imported
    assert result["models"] == zoo.list_models()  # the same registry as under TensorFlow
    assert result["shapes"]["resnet20"] == [zoo.get_spec("resnet20").test_overrides.get("classes", 10)]
    unet = zoo.get_spec("unet")
    assert result["shapes"]["unet"] == list(unet.output_shape(unet.test_overrides))
    assert "needs the TensorFlow backend" in result["train_error"]


BENCHMARK = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("gpu_bench", "benchmarks/gpu.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
assert bench.main(["--check", "--models", "resnet20"]) == 0
bench.run_benchmark(["resnet20"], steps=1, sizes={"resnet20": ((16, 16, 3), 4)}, out_dir=sys.argv[1])
"""


@pytest.mark.slow
def test_gpu_benchmark_runs_under_jax(tmp_path):
    # One process (JAX start-up is paid once): the `--check` command line, then a one-step timing table.
    check = _run_jax(["-c", BENCHMARK, str(tmp_path)], timeout=420)
    assert "every model trains under XLA with a finite mixed-precision loss" in check
    result = json.loads((tmp_path / "gpu_benchmark.json").read_text())
    assert result["backend"] == "jax"
    rows = {(r["precision"], r["xla"]): r for r in result["rows"]}
    assert set(rows) == {("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)}
    # JAX always compiles: the "XLA off" settings are not applicable, the others are timed and finite.
    assert rows[("float32", False)]["images_per_s"] is None and rows[("mixed_bfloat16", False)]["images_per_s"] is None
    assert rows[("float32", True)]["speedup"] == 1.0
    assert rows[("mixed_bfloat16", True)]["images_per_s"] > 0 and rows[("mixed_bfloat16", True)]["loss_finite"]
