"""What `--precision auto`, `--xla auto` and the zoo's BatchNormalization are based on: ResNet-20 train steps.

Each setting runs in its own process (the dtype policy is global): the zoo's `resnet20`, batch 128 of
32x32x3 random data, one warm-up epoch, then three timed epochs of 8 steps. `bn` is the normalisation
inside the network: `zoo` (zoo.models.layers.BatchNormalization, TensorFlow's fused kernel) or `keras`
(Keras 3's own composite computation, what every keras.layers.BatchNormalization runs).

    .venv/bin/python benchmarks/train_step_policy.py            # all settings below
    .venv/bin/python benchmarks/train_step_policy.py --no-xla   # without the (slow) XLA settings
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# (precision, xla, bn)
SETTINGS = [("float32", False, "keras"), ("mixed_bfloat16", False, "keras"),
            ("float32", False, "zoo"), ("mixed_bfloat16", False, "zoo"),
            ("float32", True, "zoo"), ("mixed_bfloat16", True, "zoo")]


def one(policy: str, xla: bool, bn: str) -> float:
    import zoo  # first: it sets TF's CPU kernel options (oneDNN) before TensorFlow is imported, as `zoo train` does

    # isort: split
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.models import layers

    if bn == "keras":  # the baseline: Keras' own computation in the same network
        layers.BatchNormalization.call = keras.layers.BatchNormalization.call
    keras.mixed_precision.set_global_policy(policy)
    model = zoo.create_model("resnet20", input_shape=(32, 32, 3), classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=xla)
    x = np.random.rand(1024, 32, 32, 3).astype("float32")
    y = np.random.randint(0, 10, 1024)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(128).prefetch(2)
    model.fit(ds, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, epochs=3, verbose=0)
    return 3072 / (time.perf_counter() - start)


def main():
    if len(sys.argv) == 4:
        print(json.dumps(one(sys.argv[1], sys.argv[2] == "1", sys.argv[3])))
        return 0
    settings = [s for s in SETTINGS if not (s[1] and "--no-xla" in sys.argv)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {}
    for policy, xla, bn in settings:
        out = subprocess.run([sys.executable, __file__, policy, "1" if xla else "0", bn], capture_output=True,
                             text=True, env=env, check=True).stdout
        key = f"{policy}, xla {'on' if xla else 'off'}, {bn} BN"
        results[key] = float(out.strip().splitlines()[-1])
        print(f"{key:36s} {results[key]:7.0f} images/s", flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
