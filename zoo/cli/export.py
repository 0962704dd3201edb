"""`zoo export`: a run as a TF Serving SavedModel, plus a LiteRT or ONNX file beside it."""

from __future__ import annotations

import json
import os


def _default_out(path):
    from zoo.training.rundir import RunDir

    name = RunDir(path).model_name if RunDir.is_run(path) else None
    return os.path.join("saved_models", name or os.path.basename(os.path.normpath(path)).removesuffix(".keras"))


def _cmd_export(args):
    from zoo import export as export_lib

    export_lib.check_format(args.format, args.quantize)  # before loading anything
    preprocessing = args.preprocessing
    if preprocessing is not None and preprocessing.lstrip().startswith("{"):
        try:
            preprocessing = json.loads(preprocessing)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--preprocessing is not valid JSON ({exc}): {preprocessing!r}") from None
    class_names = args.class_names.split(",") if args.class_names else None
    export_lib.export(args.run, args.out or _default_out(args.run), args.version, format=args.format,
                      quantize=args.quantize, allow_drop=args.allow_drop, preprocessing=preprocessing,
                      class_names=class_names)
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser("export", help="export a run as a TF Serving SavedModel (BASE/<version>/), "
                              "optionally with a LiteRT or ONNX file")
    p.add_argument("run", metavar="RUN", help="a run directory (or a .keras file with --preprocessing)")
    p.add_argument("--out", help="model base folder; defaults to saved_models/<model name>")
    p.add_argument("--version", type=int, help="version number; defaults to the next free one")
    p.add_argument("--format", default="savedmodel",
                   help="savedmodel (default), tflite (LiteRT) or onnx; the version folder always holds the "
                   "SavedModel, the other formats add model_*.tflite / model*.onnx beside it")
    p.add_argument("--quantize", help="tflite: float16, dynamic or int8; onnx: int8 (int8 is calibrated on the "
                   "run's train split and scored on its test split)")
    p.add_argument("--allow-drop", action="store_true",
                   help="keep an int8 export that loses more than 1 point on the test split (warns)")
    p.add_argument("--preprocessing", help="for a .keras file: scale, none, or a JSON dict "
                   '{"kind": "standardize", "mean": [...], "std": [...]}')
    p.add_argument("--class-names", help="for a .keras file: comma-separated label names")
    p.set_defaults(func=_cmd_export)
