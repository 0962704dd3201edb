"""What every verb shares: the one-line error and the guard that turns failures into it."""

from __future__ import annotations

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


def run_guarded(fn):
    """Runs `fn`, turning training failures into one line and a non-zero exit."""
    import callbacks

    try:
        return fn()
    except callbacks.TrainingDiverged as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 3
    except (TypeError, OSError) as exc:
        raise CLIError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    except Exception as exc:
        import tensorflow as tf

        if isinstance(exc, tf.errors.OpError):
            raise CLIError(f"{type(exc).__name__}: {(exc.message or '').splitlines()[0]}") from None
        raise
