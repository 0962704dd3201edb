"""LeNet-5's recipe on real digits (issue 19 items 3-4): scikit-learn's bundled digits, MNIST-style, three seeds.

A reduced budget of `benchmarks/lenet5_digits.py` (the full comparison at MNIST's step count is there and in
BENCHMARKS.md): 3 copies of the 1,293 training digits, each arm's schedule scaled to 4 epochs (~240 steps).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import lenet5_digits  # noqa: E402

from zoo.models.lenet import LENET5_RECIPE  # noqa: E402


def test_lenet5_recipe_learns_real_digits_better_than_the_old_crop(tmp_path):
    assert LENET5_RECIPE.augment == ("affine",) and LENET5_RECIPE.augment_args["rotate"] == 10.0
    npz = str(tmp_path / "digits.npz")
    sizes = lenet5_digits.write_npz(npz, copies=3)
    assert sizes == {"train": 1293, "train_examples": 3879, "val": 144, "test": 360}
    runs = {arm: [lenet5_digits.run_arm(npz, arm, seed, str(tmp_path / f"{arm}{seed}"), epochs=4)
                  for seed in (0, 1, 2)] for arm in ("recipe", "old")}
    # Measured (seeds 0 / 1 / 2, ~6 CPU-seconds a run): the affine recipe 0.936 / 0.925 / 0.939 test, the old
    # random-resized crop 0.936 / 0.900 / 0.922. One seed alone is a coin flip (seed 0 tied here and lost by
    # 0.003 in one CI run: single runs move by ~1 point), so the arms are compared by their means over three
    # seeds. The full budget reaches 0.996 test (BENCHMARKS.md).
    for new in runs["recipe"]:
        assert new["dev_accuracy"] >= 0.88 and new["test_accuracy"] >= 0.90
    mean = {arm: np.mean([r["test_accuracy"] for r in rs]) for arm, rs in runs.items()}
    assert mean["recipe"] >= mean["old"]
