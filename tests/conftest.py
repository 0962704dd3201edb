import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session", autouse=True)
def _tfds_data_dir(tmp_path_factory):
    """TFDS data (the built-in `shapes` configs) goes to one folder per test run.

    Shared by the xdist workers (generation is file-locked in `pipelines.shapes.prepare`),
    so each config a test uses is generated once per run. An explicit $TFDS_DATA_DIR wins.
    """
    if os.environ.get("TFDS_DATA_DIR"):
        yield os.environ["TFDS_DATA_DIR"]
        return
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    os.environ["TFDS_DATA_DIR"] = str(root / "tfds")
    yield os.environ["TFDS_DATA_DIR"]
    os.environ.pop("TFDS_DATA_DIR", None)
