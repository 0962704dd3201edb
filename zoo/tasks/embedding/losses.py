"""Metric-learning losses on a batch of `(labels, embeddings)`: triplet (with online mining) and contrastive.

Both take `y_true` = integer identity labels `[B]` and `y_pred` = embeddings `[B, D]`, and form every
anchor/positive/negative (or pair) inside the batch, so a P x K identity-balanced batch
(`zoo.tasks.embedding.sampler.pk_batches`) is all they need. They return one scalar per batch; `sample_weight`
is not supported.
"""

from __future__ import annotations

import keras
from keras import ops

MINING = ("semi_hard", "batch_all", "batch_hard")


def pairwise_distances(embeddings, squared=True):
    """`[B, B]` matrix of (squared) Euclidean distances between the rows of `embeddings`.

    The square root (when `squared=False`) is taken where the distance is > 0 only, so the
    gradient stays finite on the diagonal.
    """
    sq = ops.sum(ops.square(embeddings), axis=1)
    d2 = sq[:, None] - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings)) + sq[None, :]
    d2 = ops.maximum(d2, 0.0)
    if squared:
        return d2
    zero = ops.cast(ops.equal(d2, 0.0), d2.dtype)
    return ops.sqrt(d2 + zero * 1e-16) * (1.0 - zero)


def _masks(labels):
    labels = ops.reshape(labels, (-1,))
    same = ops.equal(labels[:, None], labels[None, :])
    not_self = ops.logical_not(ops.eye(ops.shape(labels)[0], dtype="bool"))
    positive = ops.logical_and(same, not_self)  # (a, p): same identity, a != p
    negative = ops.logical_not(same)  # (a, n): different identity
    return positive, negative


def _mean_where(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def triplet_loss(labels, embeddings, margin=0.2, mining="semi_hard", squared=True):
    """Triplet loss `max(d(a, p) - d(a, n) + margin, 0)` with online mining in the batch.

    Schroff, Kalenichenko & Philbin 2015, FaceNet; Hermans, Beyer & Leibe 2017, In Defense of the
    Triplet Loss for Person Re-Identification.

    Args:
        labels: Identity labels `[B]`.
        embeddings: Embeddings `[B, D]` (L2-normalised for the FaceNet margin of 0.2).
        margin: The margin `alpha`.
        mining: `"semi_hard"` (FaceNet: for every anchor/positive pair the closest negative that is
            still farther than the positive; when none is, the farthest negative), `"batch_all"`
            (every valid triplet, averaged over those with a positive loss) or `"batch_hard"` (per
            anchor the farthest positive and the closest negative).
        squared: Use squared Euclidean distances (FaceNet) or plain ones.

    Returns:
        A scalar; 0 when the batch holds no valid triplet.
    """
    dist = pairwise_distances(embeddings, squared=squared)
    positive, negative = _masks(labels)
    big = ops.stop_gradient(ops.max(dist)) + 1.0  # stands in for +inf in masked min/max
    if mining == "batch_hard":
        hardest_pos = ops.max(ops.where(positive, dist, 0.0), axis=1)
        hardest_neg = ops.min(ops.where(negative, dist, big), axis=1)
        valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
        return _mean_where(ops.relu(hardest_pos - hardest_neg + margin), valid)

    d_ap = dist[:, :, None]  # [a, p, 1]
    d_an = dist[:, None, :]  # [a, 1, n]
    neg = negative[:, None, :]
    if mining == "batch_all":
        valid = ops.logical_and(positive[:, :, None], neg)
        losses = ops.relu(d_ap - d_an + margin)
        active = ops.logical_and(valid, ops.greater(losses, 1e-16))
        return _mean_where(losses, active)

    # semi_hard
    outside = ops.logical_and(neg, ops.greater(d_an, d_ap))  # negatives farther than the positive
    semi_hard = ops.min(ops.where(outside, d_an, big), axis=2)  # the closest of them
    farthest = ops.max(ops.where(negative, dist, -big), axis=1)[:, None]
    chosen = ops.where(ops.any(outside, axis=2), semi_hard, farthest)
    has_neg = ops.any(negative, axis=1)[:, None]
    valid = ops.logical_and(positive, has_neg)
    return _mean_where(ops.relu(dist - chosen + margin), valid)


def contrastive_loss(labels, embeddings, margin=1.0):
    """Contrastive loss over every pair of the batch (Hadsell, Chopra & LeCun 2006).

    Same identity: `d^2`; different identity: `max(margin - d, 0)^2`, with `d` the Euclidean
    distance, averaged over all pairs `i != j`.
    """
    d2 = pairwise_distances(embeddings, squared=True)
    d = pairwise_distances(embeddings, squared=False)
    positive, negative = _masks(labels)
    losses = ops.where(positive, d2, ops.square(ops.relu(margin - d)))
    return _mean_where(losses, ops.logical_or(positive, negative))


def _check_margin(margin):
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
        raise ValueError(f"`margin` must be a number >= 0. Received: margin={margin!r}")
    return float(margin)


@keras.saving.register_keras_serializable(package="zoo")
class TripletLoss(keras.losses.Loss):
    """Triplet loss with online mining; see `triplet_loss`.

    Args:
        margin: The margin `alpha`. Defaults to `0.2` (FaceNet, for L2-normalised embeddings).
        mining: `"semi_hard"`, `"batch_all"` or `"batch_hard"`. Defaults to `"semi_hard"`.
        squared: Squared Euclidean distances. Defaults to `True`.
    """

    def __init__(self, margin=0.2, mining="semi_hard", squared=True, name="triplet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = _check_margin(margin)
        if mining not in MINING:
            raise ValueError(f"Unknown `mining` {mining!r}; allowed: {', '.join(repr(m) for m in MINING)}.")
        self.mining = mining
        self.squared = bool(squared)

    def call(self, y_true, y_pred):
        return triplet_loss(y_true, y_pred, margin=self.margin, mining=self.mining, squared=self.squared)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining, "squared": self.squared}


@keras.saving.register_keras_serializable(package="zoo")
class ContrastiveLoss(keras.losses.Loss):
    """Contrastive pair loss over every pair of the batch; see `contrastive_loss`.

    Args:
        margin: Distance beyond which different identities cost nothing. Defaults to `1.0`.
    """

    def __init__(self, margin=1.0, name="contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = _check_margin(margin)

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, margin=self.margin)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


LOSSES = {"triplet": TripletLoss, "contrastive": ContrastiveLoss}


def get_loss(name="triplet", **kwargs):
    """`TripletLoss` or `ContrastiveLoss` by name, with its keyword arguments."""
    if name not in LOSSES:
        raise ValueError(f"Unknown embedding loss {name!r}; allowed: {', '.join(repr(n) for n in LOSSES)}.")
    return LOSSES[name](**kwargs)
