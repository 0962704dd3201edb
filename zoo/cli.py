"""The `zoo` command: list, info (train, evaluate, export... as they land)."""

from __future__ import annotations

import argparse
import json
import sys


class CLIError(Exception):
    """An error shown to the user as one line, with exit status 2."""


def _cmd_list(args):
    import zoo

    if args.markdown:
        from zoo.registry import markdown_table

        print(markdown_table())
        return
    names = zoo.list_models(args.pattern)
    if not names:
        raise CLIError(f"no model matches {args.pattern!r}; try `zoo list` for all of them")
    width = max(len(n) for n in names)
    for n in names:
        spec = zoo.get_spec(n)
        print(f"{n:<{width}}  {spec.task:<14}  {spec.description}")


def _cmd_info(args):
    import zoo

    info = zoo.model_info(args.model)
    info["input_shape"] = list(info["input_shape"])
    print(json.dumps(info, indent=2, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A Keras model zoo and training pipeline.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")
    p.add_argument("--markdown", action="store_true", help="print the README model table")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="show a model's task, input shape, parameters, reference and recipe")
    p.add_argument("model")
    p.set_defaults(func=_cmd_info)
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


# Later modules add subcommands here: functions `(subparsers) -> None`.
_EXTRA_COMMANDS = []

from zoo.training.cli import add_parser as _training_parser  # noqa: E402  (train, evaluate, demo)

_EXTRA_COMMANDS += [_training_parser]

from zoo.export import add_parser as _export_parser  # noqa: E402
from zoo.predict import add_parser as _predict_parser  # noqa: E402

_EXTRA_COMMANDS += [_export_parser, _predict_parser]

from zoo.finetune import add_parser as _finetune_parser  # noqa: E402

_EXTRA_COMMANDS += [_finetune_parser]

from pipelines.preview import add_parser as _preview_parser  # noqa: E402  (zoo preview --data FOLDER)

_EXTRA_COMMANDS += [_preview_parser]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        print(f"zoo: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
