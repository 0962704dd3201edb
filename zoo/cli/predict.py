"""`zoo predict`: run an exported model (or a run directory) on image files."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from zoo.export import predict

    predict.add_arguments(subparsers.add_parser("predict", help="run an exported model on image files"))
