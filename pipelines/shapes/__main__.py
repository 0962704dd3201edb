"""Prepare `shapes` configs ahead of time: `python -m pipelines.shapes [CONFIG ...] [--data_dir DIR]`.

Equivalent to `tfds build --imports pipelines shapes/CONFIG` (which needs TFDS' CLI extras).
"""

import argparse
import time

from pipelines.shapes import CONFIGS, prepare


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pipelines.shapes", description=__doc__.split("\n")[0])
    ap.add_argument("configs", nargs="*", default=list(CONFIGS), help=f"any of {', '.join(CONFIGS)} (default: all)")
    ap.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    args = ap.parse_args(argv)
    for config in args.configs:
        start = time.time()
        builder = prepare(config, args.data_dir)
        sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
        print(f"shapes/{config}: {sizes} in {builder.data_dir} ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
