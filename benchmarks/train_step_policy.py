"""What `--precision auto` and `--xla auto` are based on: ResNet-20 train-step throughput per setting.

Each setting runs in its own process (the dtype policy is global): a CIFAR ResNet-20 (zoo's
`resnet20`), batch 128 of 32x32x3 random data, one warm-up epoch, then two timed epochs of 8 steps.

    .venv/bin/python benchmarks/train_step_policy.py            # float32 / bf16, XLA off / on
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SETTINGS = [("float32", False), ("mixed_bfloat16", False), ("float32", True), ("mixed_bfloat16", True)]


def one(policy: str, xla: bool) -> float:
    import numpy as np
    import tensorflow as tf
    import keras

    import zoo

    keras.mixed_precision.set_global_policy(policy)
    model = zoo.create_model("resnet20", input_shape=(32, 32, 3), classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=xla)
    x = np.random.rand(1024, 32, 32, 3).astype("float32")
    y = np.random.randint(0, 10, 1024)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(128).prefetch(2)
    model.fit(ds, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, epochs=2, verbose=0)
    return 2048 / (time.perf_counter() - start)


def main():
    if len(sys.argv) == 3:
        print(json.dumps(one(sys.argv[1], sys.argv[2] == "1")))
        return 0
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {}
    for policy, xla in SETTINGS:
        out = subprocess.run([sys.executable, __file__, policy, "1" if xla else "0"], capture_output=True, text=True,
                             env=env, check=True).stdout
        results[f"{policy}, xla {'on' if xla else 'off'}"] = float(out.strip().splitlines()[-1])
        print(f"{policy:15s} xla {'on ' if xla else 'off'}  {results[list(results)[-1]]:7.0f} images/s", flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
