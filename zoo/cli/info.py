"""`zoo list` and `zoo info`: what the registry holds."""

from __future__ import annotations

import json

from zoo.cli.errors import CLIError


def _cmd_list(args):
    from zoo.registry import get_spec, list_models, markdown_table

    if args.markdown:
        print(markdown_table())
        return
    names = list_models(args.pattern)
    if not names:
        raise CLIError(f"no model matches {args.pattern!r}; try `zoo list` for all of them")
    width = max(len(n) for n in names)
    for n in names:
        spec = get_spec(n)
        print(f"{n:<{width}}  {spec.task:<14}  {spec.description}")


def _cmd_info(args):
    from zoo.registry import model_info

    info = model_info(args.model)
    info["input_shape"] = list(info["input_shape"])
    print(json.dumps(info, indent=2, default=str))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")
    p.add_argument("--markdown", action="store_true", help="print the README model table")
    p.set_defaults(func=_cmd_list)
    p = subparsers.add_parser("info", help="show a model's task, input shape, parameters, reference and recipe")
    p.add_argument("model")
    p.set_defaults(func=_cmd_info)
