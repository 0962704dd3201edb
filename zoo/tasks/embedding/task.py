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

import dataclasses
import math
import os

import numpy as np

from zoo.tasks.base import Task, register_task
from zoo.tasks.embedding import evaluation, losses, sampler

# Sources whose train/val/test splits are known to hold disjoint identities (their labels are not read).
IDENTITY_SPLIT_SOURCES = ("shapes/glyphs",)
SPLITS = ("train", "val", "test")
SHOWN_NAMES = 12  # identities named per split in the log
_LABEL_SETS: dict = {}  # (cache_key, split) -> the split's identities
_ANNOUNCED: set = set()


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
    name = getattr(source, "name", None)  # an opened pipelines Source
    return name if isinstance(name, str) else getattr(data_spec, "source", None)


def splits_identities(source, data_spec=None):
    """True when the source is known to hold disjoint identities per split (`IDENTITY_SPLIT_SOURCES`)."""
    name = _source_name(source, data_spec)
    return isinstance(name, str) and name.split(":")[-1] in IDENTITY_SPLIT_SOURCES


def _label_set(src, split):
    """The identities of one split: `read.labels` where the reader has it (no image decoded), else read."""
    key = (src.cache_key, split) if src.cache_key is not None else None
    if key in _LABEL_SETS:
        return _LABEL_SETS[key]
    labels = getattr(src.read, "labels", None)
    if labels is not None:
        found = np.unique(np.asarray(labels(split)).reshape(-1))
    else:  # e.g. TFDS: read the labels (images are decoded on the way)
        ds = src.read(split).map(lambda ex: ex["label"]).batch(4096)
        found = np.unique(np.concatenate([np.asarray(b).reshape(-1) for b in ds.as_numpy_iterator()] or [[]]))
    found = frozenset(int(i) for i in found)
    if key is not None:
        _LABEL_SETS[key] = found
    return found


@dataclasses.dataclass(frozen=True)
class IdentitySplit:
    """Which identities each split holds.

    Attributes:
        own: Splits used as the source holds them (their identities appear in no other split).
        pooled: Splits whose examples are pooled, then divided by identity into `ids`' splits.
        ids: `{split: sorted int64 ids}` for the splits that receive pooled identities.
        source_ids: `{split: identities}` of every split as the source holds it (None: not read).
    """

    own: tuple
    pooled: tuple = ()
    ids: dict = dataclasses.field(default_factory=dict)
    source_ids: dict | None = None


def plan_identities(src, recipe=None):
    """How `src`'s splits become identity-disjoint splits (`IdentitySplit`).

    A split whose identities appear in no other split is used as it is (a folder's `test/` holding other
    people than its `train/`). The splits that share identities are pooled and their identities divided among
    them by `recipe.extra["identity_split"]` (train, val, test fractions; default 0.8/0.1/0.1, renormalised
    over the pooled splits) with the fixed split seed, so the division never changes between training seeds:
    e.g. `train/` + `test/` and a val split carved from train's images -> train's identities split train/val.
    A source with one split gives its identities to all three.
    """
    from pipelines import splits as splits_lib

    if splits_identities(src):
        return IdentitySplit(own=SPLITS)
    present = [s for s in SPLITS if (src.splits or {}).get(s)] or ["train"]
    sets = {s: _label_set(src, s) for s in present}
    own = tuple(s for s in present if len(present) > 1 and not any(sets[s] & sets[t] for t in present if t != s))
    pooled = tuple(s for s in present if s not in own)
    if not pooled:
        return IdentitySplit(own=own, source_ids=sets)
    targets = pooled if len(pooled) > 1 else SPLITS
    wanted = [float(f) if s in targets else 0.0
              for s, f in zip(SPLITS, _extra(recipe, "identity_split", (0.8, 0.1, 0.1)))]
    if sum(wanted) <= 0:
        raise ValueError(f"identity_split {tuple(wanted)!r} gives no identity to {', '.join(targets)}.")
    pool = np.array(sorted(set().union(*(sets[s] for s in pooled))), dtype="int64")
    try:
        parts = sampler.split_identities(len(pool), fractions=tuple(f / sum(wanted) for f in wanted),
                                         seed=splits_lib.SPLIT_SEED)
    except ValueError as err:
        raise ValueError(f"{src.name}: {' and '.join(pooled)} share identities, so they are split by identity: "
                         f"{err}") from None
    return IdentitySplit(own=own, pooled=pooled, ids={s: pool[parts[s]] for s in targets}, source_ids=sets)


def _names(src, ids):
    names = list(getattr(src, "class_names", None) or [])
    shown = [names[i] if 0 <= i < len(names) else str(i) for i in sorted(ids)[:SHOWN_NAMES]]
    more = f", ... (+{len(ids) - SHOWN_NAMES} more)" if len(ids) > SHOWN_NAMES else ""
    return ", ".join(shown) + more


def describe(src, plan):
    """The log lines announcing `plan` for `src`: one when every split is its own, else one per split."""
    if not plan.pooled:
        counts = "" if plan.source_ids is None else " (" + ", ".join(
            f"{s} {len(plan.source_ids[s])}" for s in plan.own) + " identities)"
        return [f"zoo: identities: {src.name}'s {'/'.join(plan.own)} splits hold disjoint identities{counts}; "
                "used as they are"]
    pooled = list(plan.pooled)
    share = (f"{', '.join(pooled[:-1])} and {pooled[-1]} share identities" if len(pooled) > 1
             else f"one split ({pooled[0]})")
    lines = [f"zoo: identities: {src.name}: {share}, so its classes are split by identity"
             + (f"; {', '.join(plan.own)} used as the source holds it" if plan.own else "")]
    for s in SPLITS:
        ids = plan.ids.get(s) if s in plan.ids else plan.source_ids.get(s) if s in plan.own else None
        if ids is not None:
            how = "source's own" if s in plan.own else "split by identity"
            lines.append(f"zoo: identities: {s} ({how}, {len(ids)}): {_names(src, ids)}")
    return lines


def identity_examples(source, split, recipe=None, data_spec=None, training=False, seed=None, **build_kw):
    """Unbatched `(image, identity)` examples of `split`, with identities disjoint across splits.

    The first call for a source announces the identity split in the log (`describe`).

    Args:
        source: Anything `pipelines.build` reads (an opened source is not opened again).
        split: "train", "val" or "test".
        recipe: Gives `augment` (training only), `normalization`, `val_split` and `extra["identity_split"]`.
        data_spec: Unused (kept for callers that pass it).
        training: Augment and shuffle.
        seed: Seed of the shuffle (the identity split does not depend on it).
        **build_kw: More `pipelines.build` keywords (e.g. `image_size`).
    """
    import pipelines
    from pipelines import core
    from pipelines.augment import recipe as aug

    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; allowed: {', '.join(SPLITS)}.")
    src = core.open_data(source, task="embedding", val_split=getattr(recipe, "val_split", 0.1),
                         strict=build_kw.get("strict", False), channels=build_kw.get("channels"),
                         follow_symlinks=build_kw.get("follow_symlinks", False))
    plan = plan_identities(src, recipe)
    key = (src.name, src.cache_key, repr(plan.ids))
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print("\n".join(describe(src, plan)), flush=True)
    kw = dict(build_kw, task="embedding", batch_size=None, seed=seed)
    if recipe is not None:
        kw.setdefault("normalization", recipe.normalization)
    augment = aug.from_recipe(recipe)[0] if training and recipe is not None else ()
    if split not in plan.ids:
        return pipelines.build(src, split=split, augment=augment, shuffle=training, **kw)
    parts = [pipelines.build(src, split=s, augment=augment, shuffle=False, **kw) for s in plan.pooled]
    examples = parts[0]
    for part in parts[1:]:
        examples = examples.concatenate(part)
    return sampler.filter_identities(examples, plan.ids[split])


def make_dataset(source, split, recipe, data_spec, training, *, model=None, **kw):
    """P x K batches of `split` (K = `extra["images_per_identity"]`, P = batch_size // K).

    `kw`: `seed` (shuffle) and `pipelines.build` keywords; `model` is unused.

    Training: an epoch is `ceil(train examples / batch_size)` batches drawn from the repeated, shuffled
    source (so every image gets used and the epoch length matches the learning-rate schedule's).
    Evaluation: every example once, unshuffled; the dataset carries its split's name (`embedding_split`)
    and how to build the validation split (`embedding_val`) for `evaluate`.
    """
    import tensorflow as tf

    seed = kw.pop("seed", None)
    k = int(_extra(recipe, "images_per_identity", 4))
    batch = getattr(recipe, "batch_size", 64) or 64
    p = max(2, batch // k)
    examples = identity_examples(source, split, recipe, data_spec, training, seed, **kw)
    if not training:
        ds = sampler.pk_batches(examples, p, k, shuffle_buffer=0, drop_remainder=False)
        ds.embedding_split = split
        ds.embedding_val = lambda: make_dataset(source, "val", recipe, data_spec, False, **kw)
        return ds
    n_train = int(((getattr(data_spec, "splits", None) or {}).get("train")) or 0)
    if not n_train:
        return sampler.pk_batches(examples, p, k, seed=seed)
    steps = math.ceil(n_train / (p * k))
    batches = sampler.pk_batches(examples.repeat(), p, k, seed=seed).take(steps)
    return batches.apply(tf.data.experimental.assert_cardinality(steps))  # lets Keras size the epoch


def _val_threshold(model, dataset, data_spec, recipe):
    """The verification threshold chosen on the validation identities, or None when there are none."""
    build = getattr(dataset, "embedding_val", None)
    source = getattr(data_spec, "source", None)
    if build is None and isinstance(source, str) and not source.startswith("<"):
        def build():
            return make_dataset(source, "val", recipe, data_spec, training=False)
    if build is None:
        return None
    try:
        v_emb, v_labels = evaluation.embed(model, build())
        return evaluation.evaluate_embeddings(v_emb, v_labels, ways=())["threshold"]
    except (ValueError, FileNotFoundError):  # no (or too few) validation identities: use this split's pairs
        return None


def evaluate(model, dataset, data_spec=None, recipe=None, split=None, threshold=None, **kw):
    """One-shot and verification metrics of `dataset` (identities unseen in training).

    The verification threshold is chosen on the validation identities (when `split` is not "val"), else on
    `dataset`'s own pairs. A metric the split has too few identities for is None, with the reason under
    `<metric>_skipped` (also printed).
    """
    split = split or getattr(dataset, "embedding_split", None)
    emb, labels = evaluation.embed(model, dataset)
    if threshold is None and split != "val":
        threshold = _val_threshold(model, dataset, data_spec, recipe)
    metrics = evaluation.evaluate_embeddings(emb, labels, threshold=threshold, split=split)
    for key, why in metrics.items():
        if key.endswith("_skipped"):
            print(f"zoo: {split or 'evaluation'}: {key[:-len('_skipped')]} skipped: {why}", flush=True)
    return metrics


def report(model, dataset, data_spec=None, run_dir=".", **kw):
    """`roc.png`: the verification ROC curve of `dataset`'s pairs (none with fewer than 2 identities)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emb, labels = evaluation.embed(model, dataset)
    try:
        i, j, same = evaluation.sample_pairs(labels)
    except ValueError:
        return []
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
    # x * rsqrt(max(sum x^2, eps^2)), the form of tf.math.l2_normalize: LiteRT converts it to its L2_NORMALIZATION
    # op (which has an int8 kernel); a division by the norm fails in int8 once the norm quantizes to zero.
    sum_sq = keras.ops.sum(keras.ops.square(emb), axis=-1, keepdims=True)
    return {"embedding": emb * keras.ops.rsqrt(keras.ops.maximum(sum_sq, 1e-24))}


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
