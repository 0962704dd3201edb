"""`zoo predict`: run an exported SavedModel on image files, with TensorFlow alone.

This module imports only TensorFlow and the standard library, so it also runs as a
standalone script next to an export (`python predict.py saved_models/lenet5 digit.png`).
A run directory is exported to a temporary folder first (that part needs the project).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import tensorflow as tf


def resolve(path):
    """The SavedModel folder for `path`: a version folder, a model base folder (its highest
    version), or a run directory (exported to a temporary folder)."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isfile(os.path.join(path, "model.keras")) and os.path.isfile(os.path.join(path, "config.json")):
        from zoo.export import export  # only runs need the project

        return export(path, tempfile.mkdtemp(prefix="zoo-predict-"), verbose=False)
    versions = sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []
    for v in reversed(versions):
        candidate = os.path.join(path, str(v))
        if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise ValueError(
        f"{path!r} is not an export (BASE/<version>/saved_model.pb), a model base folder or a run directory."
    )


class Predictor:
    """A loaded export: `predictor(image_bytes_list) -> list of per-image dicts`."""

    def __init__(self, path, top_k=3):
        self.path = resolve(path)
        self.model = tf.saved_model.load(self.path)
        info_file = os.path.join(self.path, "assets.extra", "export.json")
        self.info = {}
        if os.path.isfile(info_file):
            with open(info_file) as f:
                self.info = json.load(f)
        self.class_names = self.info.get("class_names") or None
        self.top_k = top_k
        if "serving_bytes" not in self.model.signatures:
            raise ValueError(f"The export at {self.path!r} has no `serving_bytes` signature (it takes no images).")
        self.signature = self.model.signatures["serving_bytes"]

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
        try:
            outputs = self.signature(image_bytes=tf.constant([data]))
        except tf.errors.InvalidArgumentError as exc:
            raise ValueError(f"Cannot predict on {filename!r}: {exc.message.splitlines()[0]}") from None
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
    p.add_argument("model", metavar="SAVED_MODEL_OR_RUN",
                   help="an export version folder, a model base folder (highest version) or a run directory")
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
