"""`zoo predict`: run an export (SavedModel, LiteRT or ONNX file) on image files, with TensorFlow alone.

This module imports only TensorFlow and the standard library (and `runtimes.py` beside it with
`ai_edge_litert` / `onnxruntime` for a `.tflite` / `.onnx` file), so it also runs as a standalone
script next to an export (`python predict.py saved_models/lenet5 digit.png`). A run directory is
exported to a temporary folder first (that part needs the project).

Which model runs: a `.tflite` / `.onnx` file itself; a version folder or a model base folder
(its highest version) runs the SavedModel, which every version folder holds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import sys
import tempfile

import tensorflow as tf

PORTABLE = (".tflite", ".onnx")
TEMP_PREFIX = "zoo-predict-"  # a run directory's export, removed once loaded
# Pillow's default pixel limit (a decompression bomb check); Pillow's own setting wins where it is imported.
MAX_IMAGE_PIXELS = 89_478_485
FORMATS = "JPEG, PNG, GIF, BMP or WebP"
DETECTION_DEFAULTS = {"serving_score_threshold": 0.25, "iou_threshold": 0.5, "max_detections": 20}


def _is_run(path):
    path = os.fspath(path)
    if path.endswith(PORTABLE) or os.path.isfile(os.path.join(path, "saved_model.pb")):
        return False
    return os.path.isfile(os.path.join(path, "model.keras")) and os.path.isfile(os.path.join(path, "config.json"))


def resolve(path):
    """The model for `path`: a `.tflite` / `.onnx` file, else the SavedModel folder of a version
    folder, a model base folder (its highest version) or a run directory (exported to a temporary
    folder)."""
    path = os.fspath(path)
    if path.endswith(PORTABLE) and os.path.isfile(path):
        return path
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if _is_run(path):
        from zoo.export import export  # only runs need the project

        tmp = tempfile.mkdtemp(prefix=TEMP_PREFIX)
        try:
            return export(path, tmp, verbose=False)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    versions = sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []
    for v in reversed(versions):
        candidate = os.path.join(path, str(v))
        if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise ValueError(
        f"{path!r} is not an export (BASE/<version>/saved_model.pb, a .tflite or .onnx file), "
        "a model base folder or a run directory."
    )


class Predictor:
    """A loaded export: `predictor(image_bytes_list) -> list of per-image dicts`."""

    def __init__(self, path, top_k=3):
        self.path = resolve(path)
        temporary = None
        if _is_run(path):  # resolve exported it to TEMP_PREFIX*/<version>
            temporary = os.path.dirname(os.path.normpath(self.path))
        try:
            self._load(top_k)
        finally:  # a run directory's temporary export is in memory now
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)

    def _load(self, top_k):
        folder = os.path.dirname(self.path) if self.path.endswith(PORTABLE) else self.path
        info_file = os.path.join(folder, "assets.extra", "export.json")
        self.info = {}
        if os.path.isfile(info_file):
            with open(info_file) as f:
                self.info = json.load(f)
        self.class_names = self.info.get("class_names") or None
        self.top_k = top_k
        if self.path.endswith(PORTABLE):
            self.signature = self._portable_signature()
            return
        try:
            self.model = tf.saved_model.load(self.path)
        except Exception as exc:  # noqa: BLE001  (protobuf, OS and TF errors for a broken file)
            first = (str(getattr(exc, "message", "") or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"Cannot load the SavedModel in {self.path!r} (corrupt or not a SavedModel): "
                             f"{first}") from None
        if "serving_bytes" not in self.model.signatures:
            raise ValueError(f"The export at {self.path!r} has no `serving_bytes` signature (it takes no images).")
        self.signature = self.model.signatures["serving_bytes"]

    def _portable_signature(self):
        """`image_bytes=[bytes] -> {name: tensor}` for a LiteRT / ONNX file: decoded and resized here
        as the SavedModel does in its graph (`tf.image.resize` with the export's resize rule)."""
        try:
            from zoo.export import runtimes
        except ImportError:  # a standalone copy: runtimes.py beside this file
            import runtimes
        runtime = runtimes.load(self.path)
        shape = self.info.get("image_shape")
        if self.info.get("input_kind") not in ("image", "image_rows") or not shape:
            raise ValueError(f"{self.path!r} takes no images (or has no assets.extra/export.json beside it).")
        h, w, c = shape
        rule = self.info.get("resize") or {"method": "bilinear", "antialias": True, "to_uint8": True}

        def run(image_bytes):
            img = tf.io.decode_image(image_bytes.numpy()[0], channels=3, expand_animations=False)
            img = tf.image.rgb_to_grayscale(img) if c == 1 else img
            if tuple(img.shape[:2]) != (h, w):
                img = tf.image.resize(img, (h, w), method=rule["method"], antialias=rule["antialias"])
                img = tf.cast(tf.clip_by_value(img, 0, 255), tf.uint8) if rule["to_uint8"] else img
            out = runtime(tf.cast(img, tf.uint8).numpy()[None])
            return {k: tf.constant(v) for k, v in self._detections(out).items()}

        return lambda image_bytes: run(image_bytes)

    def _detections(self, out):
        """Portable detection outputs (boxes and per-class scores before NMS) -> NMS'd detections."""
        if not ("boxes" in out and "scores" in out and out["scores"].ndim == 3):
            return out
        extra = {**DETECTION_DEFAULTS, **((self.info.get("config") or {}).get("recipe") or {}).get("extra", {})}
        nms = tf.image.combined_non_max_suppression(
            out["boxes"][:, :, None, :], out["scores"], extra["max_detections"], extra["max_detections"],
            iou_threshold=extra["iou_threshold"], score_threshold=extra["serving_score_threshold"])
        return {"boxes": nms.nmsed_boxes, "scores": nms.nmsed_scores,
                "classes": tf.cast(nms.nmsed_classes, tf.int32), "valid_detections": nms.valid_detections}

    def label(self, index):
        index = int(index)
        if self.class_names and 0 <= index < len(self.class_names):
            return self.class_names[index]
        return str(index)

    def predict_file(self, filename):
        """One image file -> a JSON-able dict of its results."""
        if not os.path.isfile(filename):
            raise ValueError(f"No such image file: {filename!r}")
        with open(filename, "rb") as f:
            data = f.read()
        check_image(filename, data)
        try:
            outputs = self.signature(image_bytes=tf.constant([data]))
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            raise ValueError(f"Cannot predict on {filename!r}: {str(getattr(exc, 'message', exc)).splitlines()[0]}") from None
        result = {"image": filename}
        result.update(self.summarize({k: v.numpy()[0] for k, v in outputs.items()}))
        return result

    def summarize(self, out):
        """Per-image outputs -> readable results: top classes, detections, mask, embedding."""
        res = {}
        if "probabilities" in out and out["probabilities"].ndim == 1:
            probs = out["probabilities"]
            order = probs.argsort()[::-1][: self.top_k]
            res["top"] = [
                {"class": int(i), "label": self.label(i), "probability": round(float(probs[i]), 6)} for i in order
            ]
        if "boxes" in out and "scores" in out:
            n = len(out["scores"])
            for key in ("valid_detections", "num_detections", "valid_counts", "valid"):
                if key in out:
                    n = int(out[key])
            classes = out.get("classes", [None] * n)
            res["detections"] = [
                {
                    "box": [round(float(v), 4) for v in out["boxes"][i]],
                    "score": round(float(out["scores"][i]), 4),
                    "class": None if classes[i] is None else int(classes[i]),
                    "label": None if classes[i] is None else self.label(classes[i]),
                }
                for i in range(n)
            ]
        if "mask" in out:
            mask = out["mask"]
            values, counts = tf.unique_with_counts(tf.reshape(mask, [-1]))[0::2]
            res["mask"] = {
                "shape": list(mask.shape),
                "class_fractions": {
                    self.label(v): round(float(c) / mask.size, 4) for v, c in zip(values.numpy(), counts.numpy())
                },
            }
        if "embedding" in out:
            res["embedding"] = [float(v) for v in out["embedding"]]
        known = {"probabilities", "classes", "boxes", "scores", "mask", "embedding",
                 "valid_detections", "num_detections", "valid_counts", "valid"}
        for key, value in out.items():
            if key not in known:
                res[key] = value.tolist() if hasattr(value, "tolist") else value
        return res


def _webp_size(data):
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8 " and len(data) >= 30:
        return struct.unpack("<H", data[26:28])[0] & 0x3FFF, struct.unpack("<H", data[28:30])[0] & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data):
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def image_header(data):
    """`(format, (width, height) or None)` from the first bytes of an image; format None: not one we read."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG", struct.unpack(">II", data[16:24]) if len(data) >= 24 else None
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG", _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", struct.unpack("<HH", data[6:10]) if len(data) >= 10 else None
    if data[:2] == b"BM":
        return "BMP", (abs(struct.unpack("<i", data[18:22])[0]), abs(struct.unpack("<i", data[22:26])[0])) \
            if len(data) >= 26 else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP", _webp_size(data)
    return None, None


def check_image(filename, data):
    """Refuses, naming `filename` and why, bytes that are empty, not a JPEG / PNG / GIF / BMP / WebP image,
    over the pixel limit (a decompression bomb) or truncated / corrupt."""
    if not data:
        raise ValueError(f"Cannot predict on {filename!r}: the file is empty (0 bytes).")
    kind, size = image_header(data)
    if kind is None:
        what = "a TIFF image" if data[:4] in (b"II*\x00", b"MM\x00*") else "not an image"
        raise ValueError(f"Cannot predict on {filename!r}: it is {what}; zoo predict reads {FORMATS} files.")
    if size is None:
        raise ValueError(f"Cannot predict on {filename!r}: its {kind} header is truncated or corrupt.")
    pil = sys.modules.get("PIL.Image")
    limit = int(getattr(pil, "MAX_IMAGE_PIXELS", None) or MAX_IMAGE_PIXELS) if pil else MAX_IMAGE_PIXELS
    if size[0] * size[1] > limit:
        raise ValueError(f"Cannot predict on {filename!r}: {kind} of {size[0]}x{size[1]} pixels is over the limit "
                         f"of {limit} (a decompression bomb?; PIL.Image.MAX_IMAGE_PIXELS sets it).")
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError as exc:
        why = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", (exc.message or "").strip()).splitlines()
        raise ValueError(f"Cannot predict on {filename!r}: the {kind} data is truncated or corrupt "
                         f"({why[0] if why else type(exc).__name__}).") from None


def format_text(result):
    """One line (or a few) per image for the terminal."""
    parts = []
    if "top" in result:
        parts.append(", ".join(f"{t['label']} {t['probability']:.3f}" for t in result["top"]))
    if "detections" in result:
        dets = result["detections"]
        parts.append(f"{len(dets)} detection(s)" + "".join(
            f"\n  {d['label']} {d['score']:.3f} box={d['box']}" for d in dets))
    if "mask" in result:
        m = result["mask"]
        fr = ", ".join(f"{k} {v:.1%}" for k, v in sorted(m["class_fractions"].items(), key=lambda kv: -kv[1]))
        parts.append(f"mask {'x'.join(map(str, m['shape']))}: {fr}")
    if "embedding" in result:
        e = result["embedding"]
        norm = sum(v * v for v in e) ** 0.5
        parts.append(f"embedding dim={len(e)} norm={norm:.3f} [{', '.join(f'{v:.3f}' for v in e[:4])}, ...]")
    for key, value in result.items():
        if key not in ("image", "top", "detections", "mask", "embedding"):
            text = json.dumps(value)
            parts.append(f"{key}={text[:80] + '...' if len(text) > 80 else text}")
    return f"{result['image']}: " + "; ".join(parts)


def cmd_predict(args):
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1. Received: {args.top_k}")
    predictor = Predictor(args.model, top_k=args.top_k)
    for filename in args.images:
        result = predictor.predict_file(filename)
        print(json.dumps(result) if args.json else format_text(result))
    return 0


def add_arguments(p):
    p.add_argument("model", metavar="EXPORT_OR_RUN",
                   help="a .tflite or .onnx file, an export version folder (its SavedModel), a model base folder "
                   "(its highest version's SavedModel) or a run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG/BMP/GIF files")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--top-k", type=int, default=3, help="classes to show per image (default 3)")
    p.set_defaults(func=cmd_predict)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_predict(args)
    except ValueError as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
