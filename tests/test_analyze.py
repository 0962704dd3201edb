"""zoo.analysis without training: confident learning on hand-computed probability tables, the error table."""

import numpy as np
import pytest

from zoo.analysis import confident
from zoo.analysis.table import error_table, format_table

# Hand-computed below: t0 = (.5 + .3) / 2 = .4, t1 = .45 (one example), t2 = (.8 + .02) / 2 = .41.
LABELS = [0, 1, 2, 0, 2]
PROBS = [[0.50, 0.45, 0.05],   # above t0 and t1: the larger, class 0 (its label)
         [0.10, 0.45, 0.45],   # above t1 and t2, tied: the first, class 1 (its label)
         [0.10, 0.10, 0.80],   # class 2 (its label)
         [0.30, 0.60, 0.10],   # only above t1: labelled 0, confidently 1 -> an issue
         [0.50, 0.48, 0.02]]   # above t0 and t1: class 0; labelled 2 -> an issue


def test_thresholds_are_the_mean_self_confidence_per_class():
    np.testing.assert_allclose(confident.thresholds(LABELS, PROBS), [0.4, 0.45, 0.41])
    # a class nobody is labelled with never lowers anyone's bar
    np.testing.assert_allclose(confident.thresholds([0, 0], [[0.9, 0.1, 0.0], [0.7, 0.2, 0.1]]), [0.8, 1.0, 1.0])


def test_confident_joint_counts_each_example_under_its_most_likely_confident_class():
    joint, assigned = confident.confident_joint(LABELS, PROBS)
    np.testing.assert_array_equal(assigned, [0, 1, 2, 1, 0])
    np.testing.assert_array_equal(joint, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    # an example above no threshold is not counted
    joint, assigned = confident.confident_joint([0, 0, 1, 1], [[0.5, 0.5], [0.7, 0.3], [0.4, 0.6], [0.2, 0.8]])
    np.testing.assert_array_equal(assigned, [-1, 0, -1, 1])
    assert joint.sum() == 2


def test_calibrated_joint_matches_the_label_counts():
    joint, _ = confident.confident_joint(LABELS, PROBS)
    q = confident.calibrate(joint, LABELS)
    np.testing.assert_allclose(q, np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]]) / 5)
    np.testing.assert_allclose(q.sum(1) * 5, np.bincount(LABELS))


@pytest.mark.parametrize("method", confident.METHODS)
def test_label_issues_ranked_by_self_confidence(method):
    found = confident.find_label_issues(LABELS, PROBS, method)
    np.testing.assert_array_equal(found["indices"], [4, 3])  # self-confidence .02, then .30
    np.testing.assert_array_equal(found["suggested"], [0, 1])
    np.testing.assert_allclose(found["score"], [0.02, 0.30])


def test_prune_by_noise_rate_takes_the_largest_margins_per_cell():
    # Cell (0, 1) of the calibrated joint times n decides how many labelled 0 are pruned, by margin p1 - p0.
    labels = [0, 0, 0, 0, 1, 1]
    probs = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.95, 0.05], [0.1, 0.9], [0.2, 0.8]]
    # t0 = (.9 + .2 + .3 + .95) / 4 = .5875, t1 = .85: only [0.1, 0.9] counts for class 1 -> no off-diagonal
    assert confident.find_label_issues(labels, probs, "prune_by_noise_rate")["indices"].size == 0
    probs[5] = [0.2, 0.7]  # t1 = .8: example 1 (.8) is confidently 1, example 2 (.7) not; joint [[2, 1], [0, 1]]
    # calibrated: row 0 scaled to its 4 labels -> n * Q[0, 1] = 6 * (4/3) / 6 -> prune 1, the largest margin
    found = confident.find_label_issues(labels, probs, "prune_by_noise_rate")
    np.testing.assert_array_equal(found["indices"], [1])
    np.testing.assert_array_equal(confident.find_label_issues(labels, probs)["indices"], [1])


def test_margin_and_bad_input():
    np.testing.assert_allclose(confident.normalized_margin(LABELS, PROBS), [0.05, 0.0, 0.7, -0.3, -0.48])
    with pytest.raises(ValueError, match=r"probs must be \[n, K\]"):
        confident.find_label_issues([0, 1], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="labels must be in"):
        confident.find_label_issues([0, 2], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="Unknown method 'x'"):
        confident.find_label_issues(LABELS, PROBS, "x")


def test_error_table_names_the_largest_gap():
    metrics = {"train": {"accuracy": 0.95}, "train_dev": {"accuracy": 0.93}, "val": {"accuracy": 0.85},
               "test": {"accuracy": 0.84}}
    table = error_table("classification", metrics, baseline=0.01)
    gaps = {k: round(v, 6) for k, v in table["gaps"].items()}
    assert gaps == {"avoidable bias": 0.04, "variance": 0.02, "data mismatch": 0.08, "overfitting to dev": 0.01}
    assert table["largest"] == "data mismatch" and "dev" in table["advice"]
    text = format_table(table)
    assert "train-dev error         7.00%" in text and "largest gap: data mismatch" in text


def test_error_table_without_train_dev_says_so_and_uses_each_tasks_error():
    table = error_table("segmentation", {"train": {"mean_iou": 0.7}, "val": {"mean_iou": 0.5}})
    assert table["errors"]["train"] == pytest.approx(0.3) and table["errors"]["train_dev"] is None
    assert set(table["gaps"]) == {"avoidable bias", "variance + data mismatch"}
    assert table["largest"] == "avoidable bias"
    assert any("cannot be separated" in n for n in table["notes"]) and any("--baseline" in n for n in table["notes"])
    det = error_table("detection", {"train": {"map50": 0.9}, "val": {"map50": 0.4}, "test": {"map50": None}})
    assert det["largest"] == "variance + data mismatch" and det["errors"]["test"] is None
    assert error_table("embedding", {"val": {"verification_accuracy": 0.8}})["errors"]["val"] == pytest.approx(0.2)
    perfect = error_table("classification", {s: {"accuracy": 1.0} for s in ("train", "train_dev", "val", "test")})
    assert perfect["largest"] is None and any("no gap above zero" in n for n in perfect["notes"])
    assert "largest gap" not in format_table(perfect)
    with pytest.raises(ValueError, match="--baseline must be an error rate"):
        error_table("classification", {}, baseline=5)
    with pytest.raises(ValueError, match="Unknown task 'foo'"):
        error_table("foo", {})


def test_train_dev_is_carved_from_train_never_overlapping_and_fixed():
    import pipelines

    x = np.arange(200 * 4, dtype=np.float32).reshape(200, 4)
    y = (np.arange(200) % 3).astype(np.int32)
    spec = pipelines.inspect((x, y), train_dev=0.1)
    assert spec.splits == {"train": 144, "train_dev": 16, "val": 20, "test": 20}

    def rows(split, seed):
        ds = pipelines.build((x, y), split=split, batch_size=16, train_dev=0.1, seed=seed)
        return np.concatenate([np.asarray(b)[:, 0] for b, _ in ds])

    train, carved = rows("train", 1), rows("train_dev", 1)
    assert len(train) == 144 and len(carved) == 16 and not set(train) & set(carved)
    whole = np.concatenate([np.asarray(b)[:, 0] for b, _ in pipelines.build((x, y), split="train", batch_size=16)])
    assert set(train) | set(carved) == set(whole)  # the same 160 training examples, 16 set aside
    np.testing.assert_array_equal(np.sort(rows("train_dev", 7)), np.sort(carved))  # independent of the seed
    with pytest.raises(ValueError, match="needs a train_dev fraction > 0"):
        pipelines.build((x, y), split="train_dev")
    with pytest.raises(ValueError, match=r"train_dev must be in \[0, 0.5\)"):
        pipelines.inspect((x, y), train_dev=0.6)
