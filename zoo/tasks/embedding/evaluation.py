"""One-shot evaluation, verification and identification on L2-normalised embeddings.

Distances are squared Euclidean (FaceNet): two images are the same identity when
`||f(a) - f(b)||^2 <= threshold`. All functions work on numpy embeddings; `embed` computes them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

UNKNOWN = "unknown"


def embed(model, data, batch_size=64):
    """Embeddings of `data`: an array of images, or a dataset of `(images, labels)` batches.

    Returns:
        `embeddings` for an array; `(embeddings, labels)` for a dataset.
    """
    if isinstance(data, np.ndarray) or hasattr(data, "shape"):
        return np.asarray(model.predict(np.asarray(data), batch_size=batch_size, verbose=0), dtype="float32")
    embs, labels = [], []
    for x, y in data:
        embs.append(np.asarray(model(x, training=False), dtype="float32"))
        labels.append(np.asarray(y))
    if not embs:
        raise ValueError("The dataset to embed is empty.")
    return np.concatenate(embs), np.concatenate(labels).reshape(-1).astype("int64")


def distances(a, b):
    """Squared Euclidean distance between rows of `a` `[N, D]` and rows of `b` `[M, D]`: `[N, M]`."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    d = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _by_identity(labels, min_count):
    labels = np.asarray(labels).reshape(-1)
    ids, counts = np.unique(labels, return_counts=True)
    return {int(i): np.flatnonzero(labels == i) for i in ids[counts >= min_count]}


def oneshot_accuracy(embeddings, labels, n_way, *, episodes=500, seed=0):
    """N-way one-shot accuracy.

    Each episode draws `n_way` identities, enrols one image of each (the support set) and classifies
    one other image of each (the queries) by the nearest enrolled embedding (Koch et al. 2015;
    Vinyals et al. 2016). Use identities never seen in training.

    Args:
        embeddings: `[N, D]` embeddings.
        labels: `[N]` identity labels.
        n_way: Identities per episode.
        episodes: Number of episodes (each scores `n_way` queries).
        seed: Episode sampling seed.

    Returns:
        The fraction of queries whose nearest support has their identity.
    """
    groups = _by_identity(labels, 2)
    if isinstance(n_way, bool) or not isinstance(n_way, int) or n_way < 2:
        raise ValueError(f"`n_way` must be an integer >= 2. Received: n_way={n_way!r}")
    if len(groups) < n_way:
        raise ValueError(
            f"{n_way}-way one-shot needs {n_way} identities with at least 2 images; "
            f"the data has {len(groups)}."
        )
    rng = np.random.default_rng(seed)
    ids = np.array(sorted(groups))
    emb = np.asarray(embeddings, "float64")
    correct = 0
    for _ in range(episodes):
        chosen = rng.choice(ids, size=n_way, replace=False)
        picks = np.array([rng.choice(groups[int(c)], size=2, replace=False) for c in chosen])
        d = distances(emb[picks[:, 1]], emb[picks[:, 0]])  # queries x supports
        correct += int(np.sum(np.argmin(d, axis=1) == np.arange(n_way)))
    return correct / (episodes * n_way)


def sample_pairs(labels, *, pairs=2000, seed=0):
    """Balanced verification pairs: `pairs // 2` same-identity and as many different-identity pairs.

    Returns:
        `(i, j, same)` index arrays and the boolean same-identity flag.
    """
    labels = np.asarray(labels).reshape(-1)
    groups = _by_identity(labels, 2)
    if not groups or len(np.unique(labels)) < 2:
        raise ValueError("Verification pairs need at least 2 identities, one of them with 2 or more images.")
    rng = np.random.default_rng(seed)
    half = max(1, pairs // 2)
    ids = np.array(sorted(groups))
    pos = np.array([rng.choice(groups[int(c)], size=2, replace=False) for c in rng.choice(ids, size=half)])
    i = rng.integers(0, len(labels), size=4 * half)
    j = rng.integers(0, len(labels), size=4 * half)
    keep = labels[i] != labels[j]
    neg = np.stack([i[keep], j[keep]], axis=1)[:half]
    both = np.concatenate([pos, neg])
    same = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    return both[:, 0], both[:, 1], same


def pair_distances(embeddings, i, j):
    """Squared distances between `embeddings[i]` and `embeddings[j]`, pairwise."""
    e = np.asarray(embeddings, "float64")
    return np.sum(np.square(e[i] - e[j]), axis=1)


def roc_auc(scores, positive):
    """Area under the ROC curve for `scores` where larger means positive (ties count one half)."""
    scores = np.asarray(scores, "float64").reshape(-1)
    positive = np.asarray(positive, bool).reshape(-1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative pairs.")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties (Mann-Whitney U).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, positive):
    """False and true positive rates as the decision threshold on `scores` sweeps down."""
    scores = np.asarray(scores, "float64")
    positive = np.asarray(positive, bool)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.concatenate([[0], np.cumsum(positive[order])])
    fp = np.concatenate([[0], np.cumsum(~positive[order])])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def verification_accuracy(dists, same, threshold):
    """Fraction of pairs classified right by `dist <= threshold` (same identity)."""
    return float(np.mean((np.asarray(dists) <= threshold) == np.asarray(same, bool)))


def select_threshold(dists, same):
    """The distance threshold that maximises verification accuracy on these pairs.

    Candidates are midpoints between consecutive sorted distances (and both ends), so the result
    does not sit on a training pair. Use pairs from a validation split.
    """
    d = np.sort(np.unique(np.asarray(dists, "float64")))
    if d.size == 0:
        raise ValueError("Threshold selection needs at least one pair.")
    candidates = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2.0, [d[-1] + 1e-6]])
    accs = [verification_accuracy(dists, same, t) for t in candidates]
    return float(candidates[int(np.argmax(accs))])


def verify(model, a, b, threshold):
    """Same identity? `(same, squared_distance)` for one image pair or two aligned batches.

    Args:
        model: An embedding model (L2-normalised output).
        a: One image `[H, W, C]` or a batch `[N, H, W, C]`.
        b: Same shape as `a`.
        threshold: Squared-distance threshold (e.g. from `select_threshold`).
    """
    a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape. Received: {a.shape} and {b.shape}")
    single = a.ndim == len(model.inputs[0].shape) - 1
    if single:
        a, b = a[None], b[None]
    e = embed(model, np.concatenate([a, b]))
    d = np.sum(np.square(e[: len(a)] - e[len(a):]), axis=1)
    same = d <= threshold
    return (bool(same[0]), float(d[0])) if single else (same, d)


@dataclasses.dataclass
class Gallery:
    """Enrolled identities: one or more embeddings per name."""

    embeddings: np.ndarray
    names: list

    @classmethod
    def enroll(cls, model, images, names):
        """Embeds `images` `[N, H, W, C]` enrolled under `names` (N names, repeats allowed)."""
        names = list(names)
        if len(names) != len(images):
            raise ValueError(f"Got {len(images)} images but {len(names)} names to enrol.")
        return cls(embed(model, np.asarray(images, "float32")), names)


def identify(model, image, gallery, threshold):
    """The enrolled identity nearest to `image`, or `"unknown"` when it is farther than `threshold`.

    Args:
        model: An embedding model.
        image: One image `[H, W, C]`.
        gallery: A `Gallery`, or a dict `{name: image or [n, H, W, C] images}` enrolled on the fly.
        threshold: Squared-distance threshold.

    Returns:
        `(name, squared_distance)`.
    """
    if isinstance(gallery, dict):
        images, names = [], []
        for name, imgs in gallery.items():
            imgs = np.asarray(imgs, "float32")
            imgs = imgs[None] if imgs.ndim == np.asarray(image).ndim else imgs
            images.append(imgs)
            names += [name] * len(imgs)
        gallery = Gallery.enroll(model, np.concatenate(images), names)
    if not isinstance(gallery, Gallery) or not len(gallery.names):
        raise ValueError("`gallery` must be a non-empty Gallery or dict {name: images}.")
    e = embed(model, np.asarray(image, "float32")[None])
    d = distances(e, gallery.embeddings)[0]
    best = int(np.argmin(d))
    return (gallery.names[best] if d[best] <= threshold else UNKNOWN), float(d[best])


def _too_few(split, n_ids, need):
    where = f"{split} split" if split else "the split"
    return f"{where} has {n_ids} identit{'y' if n_ids == 1 else 'ies'} with 2+ images, needs >= {need}"


def evaluate_embeddings(embeddings, labels, *, threshold=None, ways=(5, 20), episodes=500, pairs=2000, seed=0,
                        split=None):
    """One-shot, verification and ROC metrics of embeddings of identities unseen in training.

    Args:
        embeddings, labels: The evaluated split.
        threshold: Verification threshold chosen on another (validation) split; None picks it on
            these pairs (then `verification_accuracy` is optimistic, as for a validation split).
        ways: N of the N-way one-shot accuracies.
        episodes, pairs, seed: Sample sizes and seed.
        split: The split's name, for the reasons below.

    Returns:
        `{"oneshot_{N}way", "verification_auc", "verification_accuracy", "threshold"}`. A metric the split has
        too few identities for (N-way: N identities with 2+ images; verification: 2 identities) is None, and
        `"<metric>_skipped"` says why (e.g. "test split has 1 identity with 2+ images, needs >= 5").
    """
    out = {}
    n_ids = len(_by_identity(labels, 2))
    for n in ways:
        if n_ids >= n:
            out[f"oneshot_{n}way"] = oneshot_accuracy(embeddings, labels, n, episodes=episodes, seed=seed)
        else:
            out[f"oneshot_{n}way"], out[f"oneshot_{n}way_skipped"] = None, _too_few(split, n_ids, n)
    if n_ids < 1 or len(np.unique(np.asarray(labels))) < 2:
        out.update(verification_auc=None, verification_accuracy=None, threshold=None)
        n_all = len(np.unique(np.asarray(labels)))
        out["verification_skipped"] = (f"{f'{split} split' if split else 'the split'} has {n_all} "
                                       f"identit{'y' if n_all == 1 else 'ies'} ({n_ids} with 2+ images), "
                                       "needs >= 2 (one with 2+ images)")
        return out
    i, j, same = sample_pairs(labels, pairs=pairs, seed=seed)
    d = pair_distances(embeddings, i, j)
    out["verification_auc"] = roc_auc(-d, same)
    if threshold is None:
        threshold = select_threshold(d, same)
    out["verification_accuracy"] = verification_accuracy(d, same, threshold)
    out["threshold"] = float(threshold)
    return out
