"""Ng's error table: baseline, train, train-dev, dev and test error, the gaps between them, and what to try.

    avoidable bias     = train error     - baseline (human-level / Bayes error proxy)
    variance           = train-dev error - train error
    data mismatch      = dev error       - train-dev error
    overfitting to dev = test error      - dev error

Without a train-dev split, `dev - train` mixes variance and data mismatch; the table says so.
"""

from __future__ import annotations

import math

# The error each task's `evaluate` hook already computes: (metric, description); error = 1 - metric.
ERROR_METRICS = {
    "classification": ("accuracy", "1 - accuracy"),
    "sequence": ("accuracy", "1 - accuracy"),
    "detection": ("map50", "1 - mAP@0.5"),
    "segmentation": ("mean_iou", "1 - mean IoU"),
    "embedding": ("verification_accuracy", "1 - verification accuracy"),
}
SPLIT_ROWS = (("train", "train"), ("train_dev", "train-dev"), ("val", "dev"), ("test", "test"))
ADVICE = {
    "avoidable bias": "a bigger model, longer training or a better optimiser, less regularisation, "
                      "another architecture",
    "variance": "more training data, regularisation (weight decay, dropout, augmentation), early stopping, "
                "a smaller model",
    "variance + data mismatch": "train with --train-dev to tell them apart; meanwhile more (and more dev-like) "
                                "training data, regularisation, augmentation",
    "data mismatch": "make training data more like the dev data (collect or synthesise it, augment towards it); "
                     "look at the dev mistakes (mistakes.png) to see how they differ",
    "overfitting to dev": "a bigger dev set; the dev set was tuned on too often",
}


def split_error(task: str, metrics: dict | None):
    """`1 - metric` of one split's metrics dict, or None when the metric is missing or not finite."""
    key = ERROR_METRICS.get(task, ("accuracy", ""))[0]
    value = (metrics or {}).get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return 1.0 - float(value)


def error_table(task: str, metrics: dict, baseline: float | None = None) -> dict:
    """The table as plain data.

    Args:
        task: The run's task (chooses the error, see `ERROR_METRICS`).
        metrics: `{split: metrics dict}` as in a run's `metrics.json` ("train", "train_dev", "val", "test").
        baseline: Human-level or Bayes error proxy in [0, 1]. None: 0, with a note.

    Returns:
        `{"task", "error", "errors": {split: error|None}, "gaps": {name: value}, "largest", "advice", "notes"}`.
    """
    if task not in ERROR_METRICS:
        raise ValueError(f"Unknown task {task!r}; allowed: {', '.join(ERROR_METRICS)}.")
    if baseline is not None and not (isinstance(baseline, (int, float)) and 0.0 <= baseline <= 1.0):
        raise ValueError(f"--baseline must be an error rate in [0, 1]. Received: {baseline!r}")
    errors = {split: split_error(task, metrics.get(split)) for split, _ in SPLIT_ROWS}
    notes = []
    if baseline is None:
        notes.append("no --baseline given: taken as 0, so avoidable bias is the whole training error")
    base = float(baseline or 0.0)
    train, train_dev, dev, test = (errors[s] for s, _ in SPLIT_ROWS)
    gaps = {}
    if train is not None:
        gaps["avoidable bias"] = train - base
    if train_dev is not None:
        if train is not None:
            gaps["variance"] = train_dev - train
        if dev is not None:
            gaps["data mismatch"] = dev - train_dev
    elif dev is not None and train is not None:
        gaps["variance + data mismatch"] = dev - train
        notes.append("no train-dev split: data mismatch cannot be separated from variance "
                     "(train with --train-dev FRACTION)")
    if dev is not None and test is not None:
        gaps["overfitting to dev"] = test - dev
    if dev is None:
        notes.append("no dev split in the run's metrics")
    largest = max(gaps, key=gaps.get) if gaps else None
    if largest is not None and gaps[largest] <= 0:
        largest = None
        notes.append("no gap above zero: the errors do not grow from baseline to test on these splits")
    return {"task": task, "error": ERROR_METRICS[task][1], "baseline": base, "errors": errors, "gaps": gaps,
            "largest": largest, "advice": ADVICE.get(largest, ""), "notes": notes}


def format_table(table: dict) -> str:
    """The table as aligned text (what `zoo analyze` prints and writes to error_table.txt)."""
    def pct(v):
        return "n/a" if v is None else f"{100 * v:6.2f}%"

    lines = [f"error = {table['error']} ({table['task']})", f"{'baseline':<22}{pct(table['baseline'])}"]
    lines += [f"{label + ' error':<22}{pct(table['errors'][split])}" for split, label in SPLIT_ROWS]
    lines.append("")
    for name, value in table["gaps"].items():
        mark = "  <- largest" if name == table["largest"] else ""
        lines.append(f"{name:<26}{100 * value:+7.2f} points{mark}")
    if table["largest"]:
        lines += ["", f"largest gap: {table['largest']}; try: {table['advice']}"]
    lines += [f"note: {n}" for n in table["notes"]]
    return "\n".join(lines)
