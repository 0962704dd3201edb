"""LeNet-5's recipe on real digits (issue 19 items 3-4): scikit-learn's bundled digits, MNIST-style, one seed.

A reduced budget of `benchmarks/lenet5_digits.py` (the full comparison at MNIST's step count is there and in
BENCHMARKS.md): 3 copies of the 1,293 training digits, each arm's schedule scaled to 4 epochs (~240 steps).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import lenet5_digits  # noqa: E402

from zoo.models.lenet import LENET5_RECIPE  # noqa: E402


def test_lenet5_recipe_learns_real_digits_better_than_the_old_crop(tmp_path):
    assert LENET5_RECIPE.augment == ("affine",) and LENET5_RECIPE.augment_args["rotate"] == 10.0
    npz = str(tmp_path / "digits.npz")
    sizes = lenet5_digits.write_npz(npz, copies=3)
    assert sizes == {"train": 1293, "train_examples": 3879, "val": 144, "test": 360}
    new = lenet5_digits.run_arm(npz, "recipe", 0, str(tmp_path / "recipe"), epochs=4)
    old = lenet5_digits.run_arm(npz, "old", 0, str(tmp_path / "old"), epochs=4)
    # Measured (seeds 0 / 1 / 2, ~6 CPU-seconds a run): the affine recipe 0.928 / 0.933 / 0.933 test and
    # 0.931 / 0.938 / 0.924 dev; the old random-resized crop 0.914 / 0.914 / 0.919 test. The full budget reaches
    # 0.996 test (BENCHMARKS.md).
    assert new["dev_accuracy"] >= 0.88 and new["test_accuracy"] >= 0.90
    assert new["test_accuracy"] >= old["test_accuracy"]
