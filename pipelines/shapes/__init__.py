"""The built-in `shapes` TFDS dataset; importing this module registers it with TFDS."""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os

import tensorflow_datasets as tfds

from pipelines.shapes.builder import Shapes, ShapesConfig  # noqa: F401  (registers "shapes")

CONFIGS = tuple(c.name for c in Shapes.BUILDER_CONFIGS)


def _default_data_dir():
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(os.path.join("~", "tensorflow_datasets"))


@contextlib.contextmanager
def _lock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare(config: str = "classification", data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Generates `shapes/<config>` into `data_dir` once (file-locked, safe across processes).

    Args:
        config: One of `CONFIGS`.
        data_dir: TFDS data directory. Defaults to $TFDS_DATA_DIR or ~/tensorflow_datasets.

    Returns:
        The prepared builder.
    """
    if config not in CONFIGS:
        close = difflib.get_close_matches(config, CONFIGS, n=1)
        hint = f" Did you mean 'shapes/{close[0]}'?" if close else ""
        raise ValueError(f"Unknown shapes config {config!r}; allowed: {', '.join(CONFIGS)}.{hint}")
    data_dir = data_dir or _default_data_dir()
    builder = tfds.builder(f"shapes/{config}", data_dir=data_dir)
    if not builder.is_prepared():
        with _lock(os.path.join(data_dir, f".shapes-{config}.lock")):
            builder = tfds.builder(f"shapes/{config}", data_dir=data_dir)
            if not builder.is_prepared():
                builder.download_and_prepare()
    return builder
