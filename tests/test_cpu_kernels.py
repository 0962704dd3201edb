"""`import zoo` turns TensorFlow's oneDNN CPU kernels on unless the user chose otherwise."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = ("import zoo; from tensorflow.python.util import _pywrap_util_port as port; "
         "print(port.IsMklEnabled(), zoo.BACKEND)")


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env={**base, **env},
                          check=True)
    return done.stdout.split()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="TF's oneDNN kernels: x86-64 builds")
def test_import_zoo_turns_onednn_kernels_on():
    # TF itself enables them only on CPUs with AVX-512 VNNI/BF16 or AMX; AVX2-only CPUs ran Eigen's kernels
    assert _probe() == ["True", "tensorflow"]


def test_the_users_choice_is_kept():
    assert _probe(TF_ENABLE_ONEDNN_OPTS="0") == ["False", "tensorflow"]
