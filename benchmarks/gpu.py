"""Training-step throughput under four precision/XLA settings, and an XLA / mixed-precision check.

For each model, times training steps on synthetic batches under:
float32 without XLA, float32 with XLA, mixed precision without XLA, mixed precision with XLA,
and prints images/s and the speed-up over the first. Mixed precision is `mixed_float16` on
GPUs and `mixed_bfloat16` on CPUs. Under `KERAS_BACKEND=jax` every step is XLA-compiled, so
the "without XLA" rows are reported as not applicable and speed-ups are over float32 + XLA.

    python benchmarks/gpu.py                       # GPU sizes if a GPU is visible, CPU sizes otherwise
    python benchmarks/gpu.py --models resnet20 --steps 5 --out results/
    python benchmarks/gpu.py --check               # every registered model: XLA step + finite mixed-precision loss
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
import traceback

import numpy as np

DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "resnet20", "unet", "yolo")
# (input_shape, batch) per model: the usual sizes on a GPU, small ones on a CPU.
GPU_SIZES = {
    "resnet50": ((224, 224, 3), 256),
    "mobilenet_v2": ((224, 224, 3), 256),
    "resnet20": ((32, 32, 3), 512),
    "unet": ((128, 128, 3), 64),
    "yolo": ((224, 224, 3), 64),
}
CPU_SIZES = {
    "resnet50": ((64, 64, 3), 8),
    "mobilenet_v2": ((64, 64, 3), 8),
    "resnet20": ((32, 32, 3), 32),
    "unet": ((64, 64, 3), 8),
    "yolo": ((64, 64, 3), 8),
}
SETTINGS = (("float32", False), ("float32", True), ("mixed", False), ("mixed", True))


def backend_name():
    import keras

    return keras.backend.backend()


def has_gpu():
    if backend_name() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend_name() == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def device_name():
    try:
        if backend_name() == "jax":
            import jax

            return str(jax.devices()[0].device_kind)
        if backend_name() == "tensorflow":  # other backends run without TF installed
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    except Exception:
        pass
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _build(name, input_shape, policy, overrides=None):
    import keras

    import zoo

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    spec = zoo.get_spec(name)
    if overrides is not None:
        return zoo.create_model(name, **{**overrides, "input_shape": input_shape})
    kwargs = {"input_shape": input_shape}
    if spec.task in ("classification", "sequence"):
        kwargs["classes"] = 10
    return zoo.create_model(name, **kwargs)


def time_setting(name, input_shape, batch, precision, xla, steps, warmup=2, mixed_policy=None, overrides=None):
    """Images/s of `steps` training steps (after `warmup`), and the last loss.

    `overrides` (builder keywords, e.g. the registry's `test_overrides`) replace the default `classes=10`.
    """
    import keras

    policy = "float32" if precision == "float32" else mixed_policy
    model = _build(name, input_shape, policy, overrides)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch,) + tuple(input_shape)).astype("float32")
    y = np.zeros((batch,) + tuple(model.output_shape[1:]), "float32")
    if backend_name() == "jax" and not xla:
        return None, None
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse", jit_compile=xla)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    elapsed = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    return batch * steps / elapsed, float(np.asarray(loss).ravel()[0])


def run_benchmark(models, steps, sizes, out_dir=None):
    import zoo

    gpu = has_gpu()
    mixed_policy = "mixed_float16" if gpu else "mixed_bfloat16"
    rows = []
    for name in models:
        if name not in zoo.list_models():
            print(f"{name}: not registered, skipped", flush=True)
            continue
        spec = zoo.get_spec(name)
        input_shape, batch = sizes.get(name, (spec.input_shape, 64 if sizes is GPU_SIZES else 8))
        base = None
        for precision, xla in SETTINGS:
            try:
                ips, loss = time_setting(name, input_shape, batch, precision, xla, steps, mixed_policy=mixed_policy)
                error = None
            except Exception as exc:  # record the failing op instead of stopping the table
                ips, loss, error = None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            if base is None and ips:
                base = ips
            row = {
                "model": name, "input_shape": list(input_shape), "batch": batch,
                "precision": precision if precision == "float32" else mixed_policy, "xla": xla,
                "images_per_s": round(ips, 1) if ips else None,
                "speedup": round(ips / base, 2) if ips and base else None,
                "loss_finite": bool(np.isfinite(loss)) if loss is not None else None,
                "error": error,
            }
            rows.append(row)
            shown = f"{row['images_per_s']:>9.1f} img/s  x{row['speedup']}" if ips else f"n/a {error or ''}"
            print(f"{name:<13} {row['precision']:<15} xla={'on ' if xla else 'off'} {shown}", flush=True)
    result = {"device": device_name(), "backend": backend_name(), "gpu": gpu, "steps": steps, "rows": rows}
    if out_dir:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_benchmark.json").write_text(json.dumps(result, indent=2))
        (out / "gpu_benchmark.md").write_text(markdown(result))
    return result


def markdown(result):
    lines = [
        f"Device: {result['device']} (Keras backend: {result['backend']}, {result['steps']} timed steps)",
        "",
        "| model | input | batch | precision | XLA | images/s | speed-up |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for r in result["rows"]:
        ips = f"{r['images_per_s']:,.1f}" if r["images_per_s"] else ("n/a" if not r["error"] else "error")
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input_shape']))} | {r['batch']} | {r['precision']} | "
            f"{'on' if r['xla'] else 'off'} | {ips} | {r['speedup'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def check_all(models=None):
    """Every registered model: a jit_compile=True train step, and a finite mixed-precision loss."""
    import zoo

    mixed_policy = "mixed_float16" if has_gpu() else "mixed_bfloat16"
    problems = {}
    for name in models or zoo.list_models():
        spec = zoo.get_spec(name)
        shape = spec.test_overrides.get("input_shape", spec.input_shape)
        for precision in ("float32", "mixed"):
            try:
                _, loss = time_setting(
                    name, shape, 4, precision, True, steps=1, warmup=1, mixed_policy=mixed_policy,
                    overrides=spec.test_overrides,
                )
                if loss is not None and not np.isfinite(loss):
                    problems[f"{name}/{precision}"] = f"non-finite loss {loss}"
            except Exception as exc:
                msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                problems[f"{name}/{precision}"] = f"{type(exc).__name__}: {msg}"
                traceback.print_exc(limit=1)
        status = "ok" if not any(k.startswith(name + "/") for k in problems) else "FAILED"
        print(f"{name:<22} xla + {mixed_policy}: {status}", flush=True)
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on GPU, 5 on CPU)")
    parser.add_argument("--sizes", choices=("auto", "gpu", "cpu"), default="auto")
    parser.add_argument("--out", default=None, help="folder for gpu_benchmark.json / .md")
    parser.add_argument("--check", action="store_true", help="XLA + mixed precision check of every registered model")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    if args.check:
        problems = check_all(None if args.models == ",".join(DEFAULT_MODELS) else args.models.split(","))
        print(json.dumps(problems, indent=2) if problems else "every model trains under XLA with a finite mixed-precision loss")
        return 1 if problems else 0
    gpu = has_gpu()
    sizes = GPU_SIZES if args.sizes == "gpu" or (args.sizes == "auto" and gpu) else CPU_SIZES
    steps = args.steps or (50 if gpu else 5)
    result = run_benchmark(args.models.split(","), steps, sizes, args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
