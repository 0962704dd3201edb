"""Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 2021), from the paper, in numpy.

The `cleanlab` package implements it but is AGPL-3.0; this project is Apache-2.0, so the rule is
re-implemented here (it is short) and tested against hand-computed probability tables.

Inputs are out-of-sample predicted probabilities `probs[n, K]` (each row from a model that never saw
example n, e.g. by K-fold cross-training) and the given labels `labels[n]`.
"""

from __future__ import annotations

import numpy as np

METHODS = ("confident_joint", "prune_by_noise_rate")


def _check(labels, probs):
    labels, probs = np.asarray(labels, np.int64).reshape(-1), np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be [n, K] with n = len(labels) = {len(labels)}. Received: {probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must be in [0, {probs.shape[1]}). Received: {labels.min()}..{labels.max()}")
    return labels, probs


def thresholds(labels, probs) -> np.ndarray:
    """Per-class threshold t_j: the mean self-confidence `probs[i, j]` over examples labelled j (Eq. 2).

    A class with no examples gets threshold 1.
    """
    labels, probs = _check(labels, probs)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(labels, probs):
    """The confident joint C[given, true] (Eq. 1) and each example's confident true class (-1: none).

    Example x with given label i is counted in C[i, j*] where j* is the class with the largest
    probability among those with `probs[x, j] >= t_j`; examples above no threshold are not counted.

    Returns:
        `(C [K, K] int64, assigned [n] int64)`.
    """
    labels, probs = _check(labels, probs)
    t = thresholds(labels, probs)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -np.inf)
    assigned = np.where(above.any(1), masked.argmax(1), -1)
    k = probs.shape[1]
    joint = np.zeros((k, k), np.int64)
    counted = assigned >= 0
    np.add.at(joint, (labels[counted], assigned[counted]), 1)
    return joint, assigned


def calibrate(joint, labels) -> np.ndarray:
    """The calibrated joint Q[given, true] (Eq. 3): rows rescaled to the given-label counts, sum 1."""
    joint = np.asarray(joint, np.float64)
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(joint)).astype(np.float64)
    rows = joint.sum(1, keepdims=True)
    q = np.where(rows > 0, joint / np.maximum(rows, 1) * counts[:, None], 0.0)
    return q / max(q.sum(), 1e-12)


def self_confidence(labels, probs) -> np.ndarray:
    labels, probs = _check(labels, probs)
    return probs[np.arange(len(labels)), labels]


def normalized_margin(labels, probs) -> np.ndarray:
    """`p[given] - max_{j != given} p[j]`: negative when another class is preferred."""
    labels, probs = _check(labels, probs)
    rows = np.arange(len(labels))
    others = probs.copy()
    others[rows, labels] = -np.inf
    return probs[rows, labels] - others.max(1)


def find_label_issues(labels, probs, method: str = "confident_joint") -> dict:
    """Suspected label errors, most suspicious first.

    Args:
        labels: Given labels `[n]`.
        probs: Out-of-sample probabilities `[n, K]`.
        method: "confident_joint": every example in an off-diagonal cell of the confident joint (its
            confident class is not its given label). "prune_by_noise_rate": for each off-diagonal cell
            (i, j), the `round(n * Q[i, j])` examples labelled i with the largest margin `p[j] - p[i]`
            (Section 3.2 of the paper).

    Returns:
        `{"indices": int64 [m] ranked by self-confidence (lowest first), "suggested": [m] class ids,
        "score": [m] self-confidence, "joint": C, "thresholds": t}`.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; allowed: {', '.join(METHODS)}.")
    labels, probs = _check(labels, probs)
    joint, assigned = confident_joint(labels, probs)
    if method == "confident_joint":
        flagged = np.flatnonzero((assigned >= 0) & (assigned != labels))
    else:
        q, n = calibrate(joint, labels), len(labels)
        chosen = []
        for i, j in zip(*np.nonzero(~np.eye(len(joint), dtype=bool))):
            m = int(round(n * q[i, j]))
            members = np.flatnonzero(labels == i)
            if m and len(members):
                margin = probs[members, j] - probs[members, i]
                chosen.append(members[np.argsort(-margin, kind="stable")[:m]])
        flagged = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    score = self_confidence(labels, probs)[flagged]
    order = np.argsort(score, kind="stable")
    flagged, score = flagged[order], score[order]
    others = probs[flagged].copy()
    others[np.arange(len(flagged)), labels[flagged]] = -np.inf
    suggested = np.where(assigned[flagged] >= 0, assigned[flagged], others.argmax(1) if len(flagged) else 0)
    suggested = np.where(suggested == labels[flagged], others.argmax(1) if len(flagged) else 0, suggested)
    return {"indices": flagged.astype(np.int64), "suggested": suggested.astype(np.int64), "score": score,
            "joint": joint, "thresholds": thresholds(labels, probs)}
