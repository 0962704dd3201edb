"""Benchmark: TensorFlow's oneDNN CPU kernels off vs on, the zoo's models, train-step time.

TensorFlow 2.21 enables its oneDNN kernels by default only on x86 CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere
(an AVX2-only CPU) it runs Eigen's kernels unless `TF_ENABLE_ONEDNN_OPTS=1`. `import zoo` sets it (unless the
user did). Each (model, setting) runs in its own process, since TF reads the variable once at import: SGD with
momentum, random data, 14 steps, the median of the steps after the third.

    .venv/bin/python benchmarks/onednn.py             # every model below
    .venv/bin/python benchmarks/onednn.py --models resnet20,lenet5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# name: (input shape, batch)
MODELS = {"lenet5": ((28, 28, 1), 128), "rnn": ((28, 28), 128), "deep_nn": ((784,), 128),
          "resnet20": ((32, 32, 3), 128), "mobilenet_v2": ((96, 96, 3), 32), "resnet50": ((64, 64, 3), 16)}


def one(name: str, steps: int = 14) -> float:
    """Median milliseconds per train step of `name` in this process."""
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    import zoo

    shape, batch = MODELS[name]
    model = zoo.create_model(name, input_shape=shape, classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    x = np.random.rand(batch * 4, *shape).astype("float32")
    y = np.random.randint(0, 10, batch * 4)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().repeat()
    ends = []
    stamp = keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: ends.append(time.perf_counter()))
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[stamp])
    return float(np.median(np.diff(ends)[3:]) * 1000)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one model, prints ms/step
    args = parser.parse_args(argv)
    if args.one:
        from tensorflow.python.util import _pywrap_util_port as port  # noqa: PLC0415

        print(json.dumps({"ms": one(args.one), "onednn": bool(port.IsMklEnabled())}))
        return 0
    rows = ["| model | batch | oneDNN off, ms/step | oneDNN on, ms/step | speed-up |", "|---|---:|---:|---:|---:|"]
    for name in args.models.split(","):
        ms = {}
        for setting in ("0", "1"):
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting, "TF_CPP_MIN_LOG_LEVEL": "3"}
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", name], env=env,
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            assert result["onednn"] == (setting == "1"), result  # the setting took effect
            ms[setting] = result["ms"]
        rows.append(f"| {name} | {MODELS[name][1]} | {ms['0']:.1f} | {ms['1']:.1f} | {ms['0'] / ms['1']:.2f}x |")
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
