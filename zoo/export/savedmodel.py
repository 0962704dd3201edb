"""Version folders (`BASE/<version>/`, written atomically) and the TF Serving SavedModel in them.

Every export writes the SavedModel (what TF Serving loads from any version folder); LiteRT and
ONNX exports add their file beside it. A version is staged in a hidden temporary folder inside
`BASE`, verified, and only then renamed to its number.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from zoo.export import graph
from zoo.export.spec import ExportSpec
from zoo.training import rundir

ASSETS = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
SAVED_MODEL_ATOL = {False: 1e-4, True: 5e-2}  # by "the model was rebuilt from mixed precision"
STAGING, LOCK = ".tmp-", ".lock"
STALE_SECONDS = 3600  # an unlocked staging folder this old was left by a killed export

try:
    import fcntl
except ImportError:  # not POSIX: staging folders are judged by age alone
    fcntl = None


def pick_version(base_dir, version):
    """The version to write: `version` if free, else one more than the highest present."""
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"{base_dir!r} is a file; the export base must be a folder (e.g. saved_models/NAME).")
    present = []
    if os.path.isdir(base_dir):
        present = [int(d) for d in os.listdir(base_dir) if d.isdigit()]
    if version is None:
        return max(present, default=0) + 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    if int(version) in present or os.path.exists(os.path.join(base_dir, str(version))):
        raise ValueError(
            f"Version {version} already exists in {base_dir!r}; versions are never overwritten. "
            f"Next free version: {max(present, default=0) + 1}."
        )
    return int(version)


class Staged(str):
    """A staging folder's path; `final` is the version folder it became (set when the block succeeds)."""

    final = None


def _locked(folder) -> bool:
    """Whether a running export holds the lock file of staging `folder`."""
    path = os.path.join(folder, LOCK)
    if fcntl is None or not os.path.isfile(path):
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def remove_stale(base_dir, max_age=STALE_SECONDS) -> None:
    """Removes the hidden staging folders killed exports left in `base_dir`: older than `max_age`, unlocked."""
    now = time.time()
    for entry in os.scandir(base_dir):
        if not (entry.name.startswith(STAGING) and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < max_age or _locked(entry.path):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp, base_dir, version, next_free) -> str:
    """Renames `tmp` to `base_dir/version` (the next free version if that appeared meanwhile and `next_free`)."""
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the version from a server running as another user
    while True:
        final = os.path.join(base_dir, str(version))
        if not os.path.exists(final):
            try:
                os.rename(tmp, final)
                return final
            except OSError as exc:  # another export took it between the check and the rename
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        if not next_free:
            raise ValueError(f"Version {version} appeared at {final!r} during export; not overwriting it.")
        version = pick_version(base_dir, None)


@contextlib.contextmanager
def staged_version(base_dir, version, *, next_free=False):
    """Yields a hidden temporary folder (`Staged`) in `base_dir`, renamed to `base_dir/version` if the block succeeds.

    Stale staging folders of killed exports are removed first (`remove_stale`); this one is locked while it
    is written. The version folder gets the umask's permissions. With `next_free` (the version was not asked
    for), an export that loses the version to a concurrent one takes the next free version instead.
    Any exception (KeyboardInterrupt included) removes the temporary folder: nothing half-written stays.
    """
    os.makedirs(base_dir, exist_ok=True)
    remove_stale(base_dir)
    tmp = Staged(tempfile.mkdtemp(prefix=f"{STAGING}{version}-", dir=base_dir))
    lock = open(os.path.join(tmp, LOCK), "w")  # noqa: SIM115  (held until the rename)
    try:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield tmp
        os.remove(os.path.join(tmp, LOCK))
        tmp.final = _publish(tmp, base_dir, version, next_free)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.close()


def write(path, keras_model, float_model, spec: ExportSpec, metrics, warmup, model_name):
    """Writes and verifies the SavedModel and `assets.extra/` in `path`; returns `export.json`'s record."""
    module = graph.ServingModule(float_model, spec)
    module.save(path)
    write_assets(path, spec, metrics, warmup, model_name)
    info = spec.to_dict()
    info["signatures"] = _describe_signatures(spec)
    info["outputs"] = _verify(path, keras_model, module, spec, warmup)
    write_info(path, info)
    return info


def write_info(path, info):
    rundir.write_json(os.path.join(path, ASSETS, "export.json"), info)  # NaN / inf as null


# ----------------------------------------------------------------------------- assets, warm-up, checks


def warmup_inputs(spec, images):
    """uint8 `[N, H, W, C]` images (float32 `[N, D]` for features) used for warm-up and checks."""
    if spec.input_kind == "features":
        if images is not None:
            return np.asarray(images, np.float32)
        return np.random.default_rng(0).normal(size=(2,) + tuple(spec.image_shape)).astype(np.float32)
    if images is not None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != spec.image_shape[-1]:
            raise ValueError(
                f"`warmup_images` must be uint8 [N, H, W, {spec.image_shape[-1]}]; "
                f"got {images.dtype} {images.shape}."
            )
        return images
    h, w, c = [d or 32 for d in spec.image_shape]
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 7 % 256)], -1)
    noise = np.random.default_rng(0).integers(0, 256, size=(h, w, 3))
    imgs = np.stack([base, noise])[..., :c] if c <= 3 else np.random.default_rng(1).integers(0, 256, (2, h, w, c))
    return imgs.astype(np.uint8)


def encode_png(image):
    """PNG bytes of one uint8 `[H, W, C]` image."""
    return tf.io.encode_png(tf.constant(image)).numpy()


def request_inputs(spec, warmup):
    """{signature: {input name: numpy array}} for the warm-up requests and checks."""
    if spec.input_kind == "features":
        return {"serving_default": {"features": warmup}}
    requests = {"serving_default": {"images": warmup}}
    if spec.has_bytes:
        requests["serving_bytes"] = {"image_bytes": np.array([encode_png(im) for im in warmup], dtype=object)}
    return requests


def write_assets(path, spec, metrics, warmup, model_name):
    """labels.txt, metrics.json and the TF Serving warm-up requests in `path/assets.extra/`."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    extra = os.path.join(path, ASSETS)
    os.makedirs(extra, exist_ok=True)
    if spec.class_names:
        with open(os.path.join(extra, "labels.txt"), "w") as f:
            f.write("\n".join(spec.class_names) + "\n")
    rundir.write_json(os.path.join(extra, "metrics.json"), metrics or {})
    with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
        for signature, inputs in request_inputs(spec, warmup).items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _describe_signatures(spec):
    if spec.input_kind == "features":
        return {"serving_default": {"features": {"dtype": "float32", "shape": [None, spec.image_shape[0]]}}}
    sigs = {"serving_default": {"images": {"dtype": "uint8", "shape": [None, None, None, spec.image_shape[-1]]}}}
    if spec.has_bytes:
        sigs["serving_bytes"] = {"image_bytes": {"dtype": "string", "shape": [None]}}
    return sigs


def expected_outputs(keras_model, float_model, spec, inputs):
    """The Keras model's named outputs (numpy) on uint8 images (float features) at any size."""
    x = graph.preprocess(tf.constant(inputs), spec)
    named = graph.output_fn(spec)(float_model, keras_model(x, training=False), spec)
    return {k: np.asarray(v) for k, v in named.items()}


def check_close(got, want, atol, where):
    """Raises ValueError unless `got` has `want`'s outputs, shapes and (floats) values within `atol`."""
    if set(got) != set(want):
        raise ValueError(f"{where} returns {sorted(got)}, expected {sorted(want)}.")
    worst = 0.0
    for name, b in want.items():
        a = np.asarray(got[name])
        if a.shape != b.shape:
            raise ValueError(f"Export check failed: {where} output {name!r} has shape {a.shape}, Keras {b.shape}.")
        if a.dtype.kind == "f":
            diff = float(np.max(np.abs(a - b.astype(a.dtype)), initial=0.0))
            worst = max(worst, diff)
            if np.isfinite(atol) and not np.allclose(a, b.astype(a.dtype), atol=atol, rtol=atol):
                raise ValueError(
                    f"Export check failed: {where} output {name!r} differs from the Keras model "
                    f"(max abs diff {diff:.3g}, tolerance {atol:g})."
                )
    return worst


def _verify(path, keras_model, module, spec, warmup):
    """Loads the SavedModel back and checks every signature against the Keras model; returns output specs."""
    loaded = tf.saved_model.load(path)
    expected = expected_outputs(keras_model, module.model, spec, warmup)
    atol = SAVED_MODEL_ATOL[module.model is not keras_model]
    specs = {}
    for signature, inputs in request_inputs(spec, warmup).items():
        got = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        check_close({k: v.numpy() for k, v in got.items()}, expected, atol, signature)
        for name in got:
            out = loaded.signatures[signature].structured_outputs[name]
            specs[name] = {"dtype": out.dtype.name, "shape": out.shape.as_list()}
    return specs
