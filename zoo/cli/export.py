"""`zoo export`: a run as a TF Serving SavedModel."""

from __future__ import annotations

import json
import os


def _cmd_export(args):
    from zoo import export as export_lib

    out = args.out
    if out is None:
        name = None
        config_file = os.path.join(args.run, "config.json")
        if os.path.isfile(config_file):
            with open(config_file) as f:
                name = json.load(f).get("model")
        out = os.path.join("saved_models", name or os.path.basename(os.path.normpath(args.run)).removesuffix(".keras"))
    preprocessing = args.preprocessing
    if preprocessing is not None and preprocessing.lstrip().startswith("{"):
        preprocessing = json.loads(preprocessing)
    class_names = args.class_names.split(",") if args.class_names else None
    export_lib.export(args.run, out, args.version, preprocessing=preprocessing, class_names=class_names)
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser("export", help="export a run as a TF Serving SavedModel (BASE/<version>/)")
    p.add_argument("run", metavar="RUN", help="a run directory (or a .keras file with --preprocessing)")
    p.add_argument("--out", help="model base folder; defaults to saved_models/<model name>")
    p.add_argument("--version", type=int, help="version number; defaults to the next free one")
    p.add_argument("--preprocessing", help="for a .keras file: scale, none, or a JSON dict "
                   '{"kind": "standardize", "mean": [...], "std": [...]}')
    p.add_argument("--class-names", help="for a .keras file: comma-separated label names")
    p.set_defaults(func=_cmd_export)
