"""What every verb shares: the one-line error and the guard that turns failures into it."""

from __future__ import annotations

import os
import sys


class CLIError(Exception):
    """An error shown to the user as one line, with exit status 2."""


def one_line_errors(parser):
    """argparse errors as one line (`zoo train: error: ...`), exit 2, no usage dump."""

    def error(message):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    return parser


def _first_line(text) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def describe(exc) -> str | None:
    """The one line shown for `exc`, or None for an unexpected error (a bug: its traceback is shown).

    Known kinds: `CLIError` and `ValueError` (their message), `OSError` (what failed and on which path,
    e.g. a file where a folder is needed), `KeyError`, and TensorFlow's `OpError` (its first line).
    """
    if isinstance(exc, (CLIError, ValueError, KeyError)):
        return _first_line(exc.args[0] if exc.args else exc) or type(exc).__name__
    if isinstance(exc, OSError):
        if exc.filename is None:
            return _first_line(exc) or type(exc).__name__
        where = f"{os.fspath(exc.filename)!r}" + (f" -> {os.fspath(exc.filename2)!r}" if exc.filename2 else "")
        hint = " (a part of that path is a file, not a folder)" if isinstance(exc, NotADirectoryError) else ""
        return f"{exc.strerror or type(exc).__name__}: {where}{hint}"
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(exc, tf.errors.OpError):
        return f"{type(exc).__name__}: {_first_line(exc.message or '')}"
    return None


def check_out_file(path, what="--out") -> str:
    """Refuses, before any work, an output file whose folder cannot exist (a file is in its way)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"{what} {path!r}: {parent!r} is a file, not a folder.")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a folder; give a file name.")
    return path


def run_guarded(fn):
    """Runs `fn`, turning training failures into one line and a non-zero exit."""
    import callbacks

    try:
        return fn()
    except callbacks.TrainingDiverged as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 3
    except (TypeError, OSError) as exc:
        raise CLIError(describe(exc) if isinstance(exc, OSError) else _first_line(exc) or type(exc).__name__) \
            from None
    except Exception as exc:
        import tensorflow as tf

        if isinstance(exc, tf.errors.OpError):
            raise CLIError(describe(exc)) from None
        raise
