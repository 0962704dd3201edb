"""`zoo analyze`: error analysis of a finished run, as the curriculum's "structuring ML projects" teaches it.

- The error table (`table`): bias, variance, data mismatch and overfitting to dev, the largest gap named.
- Mistakes (`mistakes`): the dev examples the model gets most wrong, traceable to their files.
- Label issues (`folds` + `confident`): K-fold out-of-sample probabilities, then confident learning.

Everything is written to `RUN/analysis/` and, as TensorBoard text and image summaries, to `RUN/logs/analysis`.
"""

from __future__ import annotations

import os

import numpy as np

from zoo.analysis import confident, mistakes
from zoo.analysis import data as data_lib
from zoo.analysis.confident import find_label_issues
from zoo.analysis.table import error_table, format_table
from zoo.training import rundir

__all__ = ["analyze", "error_table", "find_label_issues", "format_table"]

LABEL_TASKS = ("classification", "sequence")


def _metrics(rd):
    """The run's metrics.json; splits it lacks (e.g. an interrupted run) are evaluated now."""
    from zoo.training import loop

    metrics = dict(rd.run.metrics or {})
    for split in ("train", "train_dev", "val", "test"):
        if split not in metrics and rd.spec.splits.get(split):
            metrics[split] = loop.evaluate(rd.run.path, rd.source, split=split)
    return metrics


def _label_issues(rd, out_dir, folds, epochs, method, top, log):
    from zoo.analysis import folds as folds_lib

    if rd.task not in LABEL_TASKS:
        raise ValueError(f"--label-issues supports {', '.join(LABEL_TASKS)} runs; {rd.run.path!r} is {rd.task!r}.")
    labels, probs, x = folds_lib.out_of_sample(rd, folds, epochs, log=log)
    found = confident.find_label_issues(labels, probs, method)
    names = mistakes._names(rd, probs.shape[1])
    where = data_lib.paths(rd, "train", len(labels))
    idx, sug, score = found["indices"], found["suggested"], found["score"]
    files = [mistakes.write_csv(os.path.join(out_dir, "label_issues.csv"), ("path", "given", "suggested", "score"),
                                [(where[i], names[labels[i]], names[s], f"{c:.4f}") for i, s, c in zip(idx, sug, score)])]
    titles = [f"{os.path.basename(str(where[i]))[-18:]}\ngiven {names[labels[i]]}\nsuggested {names[s]} ({c:.2f})"
              for i, s, c in zip(idx[:top], sug[:top], score[:top])]
    files.append(mistakes.gallery([x[i] for i in idx[:top]], titles, os.path.join(out_dir, "label_issues.png")))
    np.savez_compressed(os.path.join(out_dir, "out_of_sample.npz"), labels=labels, probs=probs)
    files.append(os.path.join(out_dir, "out_of_sample.npz"))
    line = (f"suspected label errors: {len(idx)} of {len(labels)} training examples "
            f"({folds}-fold out-of-sample probabilities, confident learning: {method})")
    return [line], files, {"indices": idx.tolist(), "suggested": sug.tolist(), "score": score.tolist(),
                           "paths": [where[i] for i in idx]}


def _tensorboard(rd, text, files):
    """The summary as text and every PNG as an image summary, in `RUN/logs/analysis`."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(rd.run.path, "logs", "analysis"))
    with writer.as_default():
        tf.summary.text("analysis", "\n".join("    " + line for line in text.splitlines()), step=0)
        for path in files:
            if path.endswith(".png"):
                image = tf.io.decode_png(tf.io.read_file(path), channels=3)
                tf.summary.image(os.path.basename(path)[:-4], image[None], step=0)
    writer.flush()


def analyze(run_dir, *, baseline=None, data=None, label_issues=False, folds=4, fold_epochs=None,
            method="confident_joint", top=18, log=print, follow_symlinks=False) -> dict:
    """Writes `RUN/analysis/` (error table, mistakes, optionally label issues) and returns what it found.

    Args:
        run_dir: A finished run directory with a dev split.
        baseline: Human-level / Bayes error proxy in [0, 1]. Defaults to the recipe's `baseline_error`, else 0.
        data: The run's source at a new place (defaults to the recorded one).
        label_issues: Also rank suspected label errors of the training split (classification, sequence).
        folds: K for the K-fold cross-training behind `label_issues`.
        fold_epochs: Epochs per fold model. Defaults to the run's own.
        method: Confident-learning rule, see `confident.METHODS`.
        top: Examples per gallery.
        log: Where progress lines go.
        follow_symlinks: Read dataset files behind symlinks that leave the dataset folder.

    Returns:
        `{"table", "summary", "files", "label_issues"}`.

    Raises:
        ValueError: one line (no run, unknown task, moved/changed data, no dev split, bad option).
    """
    rd = data_lib.open_run(run_dir, data, follow_symlinks=follow_symlinks)
    if method not in confident.METHODS:
        raise ValueError(f"Unknown --method {method!r}; allowed: {', '.join(confident.METHODS)}.")
    if label_issues and rd.task not in LABEL_TASKS:
        raise ValueError(f"--label-issues supports {', '.join(LABEL_TASKS)} runs; {rd.run.path!r} is {rd.task!r}.")
    out_dir = os.path.join(rd.run.path, "analysis")
    os.makedirs(out_dir, exist_ok=True)
    if baseline is None and "baseline_error" in (rd.recipe.extra or {}):
        baseline = float(rd.recipe.extra["baseline_error"])
    table = error_table(rd.task, _metrics(rd), baseline)
    lines, files = mistakes.BY_TASK[rd.task](rd, out_dir, top)
    issues = None
    if label_issues:
        more, written, issues = _label_issues(rd, out_dir, folds, fold_epochs, method, top, log)
        lines, files = lines + more, files + written
    summary = format_table(table) + "\n\n" + "\n".join(lines)
    for name, text in (("error_table.txt", format_table(table) + "\n"), ("summary.txt", summary + "\n")):
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
    rundir.write_json(os.path.join(out_dir, "error_table.json"), table)
    files = [os.path.join(out_dir, "error_table.txt"), os.path.join(out_dir, "summary.txt")] + files
    _tensorboard(rd, summary, files)
    return {"table": table, "summary": summary, "files": files, "label_issues": issues}
