"""The `zoo` command. Each verb (group) is one module here with an `add_parser(subparsers)`."""

from __future__ import annotations

import argparse
import atexit
import os
import sys

from zoo.cli import analyze, export, finetune, info, predict, prepare, preview, train, tune
from zoo.cli.errors import CLIError, describe

# One line per verb module: a new verb is a module plus its entry here.
VERBS = (info, train, export, predict, finetune, preview, analyze, tune, prepare)

__all__ = ["CLIError", "build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A Keras model zoo and training pipeline.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        line = describe(exc)  # None: unexpected, a bug - its traceback is shown
        if line is None:
            raise
        print(f"zoo: error: {line}", file=sys.stderr)
        return 2


def run() -> None:
    """The `zoo` console script: `main`, its atexit handlers, then exit without the interpreter's teardown.

    After a TensorFlow run, Python's teardown (clearing every module, freeing traced graphs, TF's thread pools)
    took ~1 s of a 23 s `zoo train resnet20` (BENCHMARKS.md, issue 24). Nothing is lost by skipping it: every
    file the command writes is closed when its step ends, and atexit handlers and stdio flushes still run.
    A command that raises exits as usual.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
