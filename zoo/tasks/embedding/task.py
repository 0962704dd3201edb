"""The `embedding` task: how `zoo train` trains, evaluates, reports and exports embedding models.

- Data: identities, not images, are split. Sources whose splits already hold disjoint identities
  (`shapes/glyphs`) are used as they are; any other labelled source (an image folder, TFDS, arrays) has its
  classes split train/val/test by `recipe.extra["identity_split"]`. Training batches are P x K
  identity-balanced (`pk_batches`).
- Loss: `TripletLoss` (semi-hard by default) or `ContrastiveLoss`, from `recipe.extra`.
- Evaluation: N-way one-shot accuracy, verification ROC AUC and accuracy at the threshold chosen on the
  validation identities.
- Serving: an `embedding` output, L2-normalised.
"""

from __future__ import annotations

import math
import os

from zoo.tasks.base import Task, register_task
from zoo.tasks.embedding import evaluation, losses, sampler

# Sources whose train/val/test splits already hold disjoint identities.
IDENTITY_SPLIT_SOURCES = ("shapes/glyphs",)
SPLITS = ("train", "val", "test")


def _extra(recipe, key, default):
    extra = getattr(recipe, "extra", None) or {}
    return extra.get(key, default)


def make_loss(model=None, recipe=None, data_spec=None):
    """The recipe's embedding loss: `extra["loss"]` ("triplet" or "contrastive"), margin and mining."""
    name = _extra(recipe, "loss", "triplet")
    kwargs = {"margin": _extra(recipe, "margin", 0.2 if name == "triplet" else 1.0)}
    if name == "triplet":
        kwargs["mining"] = _extra(recipe, "mining", "semi_hard")
    return losses.get_loss(name, **kwargs)


def _source_name(source, data_spec):
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(data_spec, "source", None)


def splits_identities(source, data_spec=None):
    """True when the source's own splits hold disjoint identities (no class split needed)."""
    name = _source_name(source, data_spec)
    return isinstance(name, str) and name.split(":")[-1] in IDENTITY_SPLIT_SOURCES


def identity_examples(source, split, recipe=None, data_spec=None, training=False, seed=None, **build_kw):
    """Unbatched `(image, identity)` examples of `split`, with identities disjoint across splits.

    Args:
        source: Anything `pipelines.build` reads.
        split: "train", "val" or "test".
        recipe: Gives `augment` (training only), `normalization` and `extra["identity_split"]`.
        data_spec: The source's `pipelines.DataSpec` (for the class count), or None to inspect it.
        training: Augment and shuffle.
        seed: Seed of the shuffle and of the class split.
        **build_kw: More `pipelines.build` keywords (e.g. `image_size`).
    """
    import pipelines

    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; allowed: {', '.join(SPLITS)}.")
    kw = dict(build_kw, task="embedding", batch_size=None, seed=seed)
    if recipe is not None:
        kw.setdefault("normalization", recipe.normalization)
    augment = tuple(getattr(recipe, "augment", ()) or ()) if training else ()
    if splits_identities(source, data_spec):
        return pipelines.build(source, split=split, augment=augment, shuffle=training, **kw)
    spec = data_spec if data_spec is not None else pipelines.inspect(source, task="embedding")
    ids = sampler.split_identities(
        spec.num_classes, fractions=tuple(_extra(recipe, "identity_split", (0.8, 0.1, 0.1))),
        seed=0 if seed is None else seed,
    )[split]
    available = [s for s in SPLITS if (spec.splits or {}).get(s)] or ["train"]
    parts = [pipelines.build(source, split=s, augment=augment, shuffle=False, **kw) for s in available]
    examples = parts[0]
    for part in parts[1:]:
        examples = examples.concatenate(part)
    return sampler.filter_identities(examples, ids)


def make_dataset(source, split, recipe, data_spec, training, *, model=None, **kw):
    """P x K batches of `split` (K = `extra["images_per_identity"]`, P = batch_size // K).

    `kw`: `seed` (shuffle, class split) and `pipelines.build` keywords; `model` is unused.

    Training: an epoch is `ceil(train examples / batch_size)` batches drawn from the repeated, shuffled
    source (so every image gets used and the epoch length matches the learning-rate schedule's).
    Evaluation: every example once, unshuffled.
    """
    import tensorflow as tf

    seed = kw.pop("seed", None)
    k = int(_extra(recipe, "images_per_identity", 4))
    batch = getattr(recipe, "batch_size", 64) or 64
    p = max(2, batch // k)
    examples = identity_examples(source, split, recipe, data_spec, training, seed, **kw)
    if not training:
        return sampler.pk_batches(examples, p, k, shuffle_buffer=0, drop_remainder=False)
    n_train = int(((getattr(data_spec, "splits", None) or {}).get("train")) or 0)
    if not n_train:
        return sampler.pk_batches(examples, p, k, seed=seed)
    steps = math.ceil(n_train / (p * k))
    batches = sampler.pk_batches(examples.repeat(), p, k, seed=seed).take(steps)
    return batches.apply(tf.data.experimental.assert_cardinality(steps))  # lets Keras size the epoch


def evaluate(model, dataset, data_spec=None, recipe=None, split=None, threshold=None, **kw):
    """One-shot and verification metrics of `dataset` (identities unseen in training).

    The verification threshold is chosen on the validation identities (when `split` is not "val" and
    the source is known), else on `dataset`'s own pairs.
    """
    emb, labels = evaluation.embed(model, dataset)
    source = getattr(data_spec, "source", None)
    if threshold is None and split != "val" and isinstance(source, str) and not source.startswith("<"):
        try:
            val = make_dataset(source, "val", recipe, data_spec, training=False)
            v_emb, v_labels = evaluation.embed(model, val)
            threshold = evaluation.evaluate_embeddings(v_emb, v_labels, ways=())["threshold"]
        except (ValueError, FileNotFoundError):  # no validation identities: use this split's pairs
            threshold = None
    return evaluation.evaluate_embeddings(emb, labels, threshold=threshold)


def report(model, dataset, data_spec=None, run_dir=".", **kw):
    """`roc.png`: the verification ROC curve of `dataset`'s pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emb, labels = evaluation.embed(model, dataset)
    i, j, same = evaluation.sample_pairs(labels)
    d = evaluation.pair_distances(emb, i, j)
    fpr, tpr = evaluation.roc_curve(-d, same)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUC {evaluation.roc_auc(-d, same):.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false accept rate", ylabel="true accept rate", title="Verification ROC")
    ax.legend(loc="lower right")
    path = os.path.join(os.fspath(run_dir), "roc.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]


def serving_outputs(model, outputs, export_spec=None):
    """`{"embedding": L2-normalised outputs}` (normalised again, so a headless model serves unit vectors)."""
    import keras

    emb = keras.ops.cast(outputs, "float32")
    emb = keras.ops.reshape(emb, (keras.ops.shape(emb)[0], -1))
    return {"embedding": emb / keras.ops.maximum(keras.ops.norm(emb, axis=-1, keepdims=True), 1e-12)}


EMBEDDING_TASK = register_task(
    Task(
        name="embedding",
        loss=make_loss,
        metrics=lambda model=None, recipe=None, data_spec=None: [],
        make_dataset=make_dataset,
        evaluate=evaluate,
        report=report,
        serving_outputs=serving_outputs,
        classes_from_data=False,
        train_dev_refused="their splits hold disjoint identities",
    )
)
