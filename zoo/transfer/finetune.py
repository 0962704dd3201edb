"""`zoo finetune`: a pretrained backbone, a new head, and two phases of `zoo.train`.

    >>> from zoo.transfer.finetune import finetune
    >>> run = finetune("runs/pretrained", "my_images/", out="runs/ft")          # a zoo run directory
    >>> run = finetune("keras:MobileNetV2", "my_images/", out="runs/ft2", image_size=96)

The new classifier starts imprinted from the training split's class means (`head_init`, `heads.imprint`).
Phase 1 ("head") trains it with the whole backbone frozen (by default only for a random head: an imprinted
one already classifies by nearest class mean, and phase 2 starts from it, a closed-form LP-FT); phase 2
("finetune") unfreezes the top of the backbone (BatchNormalization trains too unless `train_bn=False`)
and trains at a lower learning rate with early stopping, optionally with layer-wise decayed rates. Both phases
augment as the backbone was trained (`augment="auto"`: a zoo run's own recipe); phase 2 then also runs without
that augmentation (`phase2-noaug/`) and the lower dev loss is kept (`phase_two`). Each phase is one
`zoo.train` run in a sub-directory (`phase1-head/`, `phase2-finetune/`); the run directory itself then
holds the same files as a `zoo train` run (model.keras, config.json, history.csv with a `phase` column,
metrics.json, curves.png marking where fine-tuning began, the confusion matrix), so `zoo evaluate` and
`zoo export` take it as they take any run, and `zoo finetune --resume --out DIR` continues it.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil

import keras

from callbacks import reports
from zoo.contract import check_int, check_number
from zoo.recipes import Recipe
from zoo.tasks.base import get_task
from zoo.training import loop, rundir
from zoo.training.data import make_dataset
from zoo.transfer import layers, optimizers
from zoo.transfer.heads import imprint, with_new_head
from zoo.transfer.lr_find import lr_find
from zoo.transfer.sources import load_pretrained

PHASES = ("phase1-head", "phase2-finetune")
NOAUG = "phase2-noaug"  # phase 2 again without augmentation: "auto" augmentation is kept only if dev says so
START = "phase2-start.weights.h5"  # where both phase-2 runs start from (kept until the choice is made)
KERAS_MIN_SIZE = 32  # the smallest input most keras.applications backbones accept
# finetune_steps 600: resnet20 on real digits at 10 per class gained 3 dev / 1.4 test points over 300, neutral on
# lenet5, glyphs and `shapes` (BENCHMARKS.md, "Phase 2's step budget, honoured and doubled")
DEFAULTS = {
    "weights": "auto", "image_size": None, "preprocess": None, "feature_layer": None, "dropout": 0.2,
    "head_init": "imprint", "head_epochs": None, "head_steps": "auto", "head_lr": "auto",
    "finetune_epochs": None, "finetune_steps": 600, "finetune_min_epochs": 30, "finetune_lr": 3e-4,
    "finetune_schedule": "constant",
    "unfreeze": "all",
    "train_bn": True, "lr_decay": None, "lr_groups": "blocks", "early_stopping": "auto", "optimizer": "adam",
    "batch_size": 32, "augment": "auto", "augment_args": {}, "val_split": 0.1, "seed": 0, "precision": "float32",
    "xla": "auto",
    "strict": False, "follow_symlinks": False,
}
HEAD_INITS = ("imprint", "random")
SCHEDULES = ("constant", "cosine")  # phase 2's rate over its planned epochs
HEAD_STEPS = 300  # phase 1's budget when `head_steps` is "auto" and phase 1 runs
MIN_EPOCHS = 3  # a phase's step budget, converted to epochs, is at least this many epochs
# `finetune_min_epochs` 30: `shapes` at 600 per class (57 steps an epoch) gained 1.0 +- 0.8 test points over six seeds
# from 11 to 30 epochs (worst seed 0.914 -> 0.957); it adds steps only above ~640 training images, so none on the real
# digits, and never beyond MIN_EPOCHS_STEPS (BENCHMARKS.md, "Phase 2 runs at least 30 epochs of a larger set")
MIN_EPOCHS_STEPS = 20_000


def _is_int(v, low):
    return not isinstance(v, bool) and isinstance(v, int) and v >= low


def _check(settings):
    for key in ("head_epochs", "finetune_epochs"):
        v = settings[key]
        if v is not None and not _is_int(v, 0):
            raise ValueError(f"`{key}` must be an integer >= 0 or None (from the step budget). Received: {key}={v!r}")
    if settings["head_steps"] != "auto" and not _is_int(settings["head_steps"], 1):
        raise ValueError(f"`head_steps` must be an integer >= 1 or 'auto'. Received: head_steps={settings['head_steps']!r}")
    check_int("finetune_steps", settings["finetune_steps"], min=1)
    check_int("finetune_min_epochs", settings["finetune_min_epochs"], min=0)
    if settings["head_epochs"] == 0 and settings["finetune_epochs"] == 0:
        raise ValueError("Nothing to train: head_epochs and finetune_epochs are both 0.")
    for key in ("head_lr", "finetune_lr"):
        v = settings[key]
        if v != "auto" and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise ValueError(f"`{key}` must be a positive number or 'auto' (a range test). Received: {key}={v!r}")
    patience = settings["early_stopping"]
    if patience != "auto" and patience is not None and not _is_int(patience, 0):
        raise ValueError(f"`early_stopping` must be 'auto', None or an integer >= 0. Received: {patience!r}")
    if settings["finetune_schedule"] not in SCHEDULES:
        raise ValueError(f"`finetune_schedule` must be one of {', '.join(SCHEDULES)}. "
                         f"Received: {settings['finetune_schedule']!r}")
    if settings["head_init"] not in HEAD_INITS:
        raise ValueError(f"`head_init` must be one of {', '.join(HEAD_INITS)}. Received: {settings['head_init']!r}")
    check_number("dropout", settings["dropout"], min=0, below=1)
    check_int("batch_size", settings["batch_size"], min=1)
    check_number("val_split", settings["val_split"], min=0, below=1)
    size = settings["image_size"]
    if size is not None and not _is_int(size, 1):
        raise ValueError(f"`image_size` must be a positive integer. Received: image_size={size!r}")
    decay = settings["lr_decay"]  # checked here, not after phase 1 has trained
    if decay is not None and (isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1):
        raise ValueError(f"`lr_decay` must be in (0, 1] or None (one rate). Received: lr_decay={decay!r}")
    groups = settings["lr_groups"]
    if groups != "blocks" and not (str(groups).isdigit() and int(groups) >= 1):
        raise ValueError(f"`lr_groups` must be 'blocks' or a positive integer. Received: lr_groups={groups!r}")


def runs_head(settings):
    """Whether phase 1 runs: not with `head_epochs=0`; with `head_steps="auto"`, only for a random head or when
    phase 2 is off (fine-tuning starts from the imprinted head: a closed-form linear probe, then fine-tune)."""
    if settings["head_epochs"] is not None:
        return settings["head_epochs"] != 0
    return settings["head_steps"] != "auto" or settings["head_init"] != "imprint" or settings["finetune_epochs"] == 0


def _steps(settings, label):
    steps = settings[f"{label}_steps"]
    return HEAD_STEPS if steps == "auto" else steps


def phase_epochs(steps, train_examples, batch_size, epochs=None, min_epochs=0):
    """`(epochs, steps per epoch)` of a phase: `epochs` if given, else the step budget `steps` in whole epochs.

    A small training set still gets its `steps` optimizer steps (50 images at batch 32 and 300 steps: 150 epochs
    of 2; a cap of 100 epochs once cut that to 200 steps, BENCHMARKS.md, issue 19); a larger one gets at least
    `min_epochs` epochs as long as they fit in `MIN_EPOCHS_STEPS` steps, and any set at least `MIN_EPOCHS`.
    """
    per_epoch = max(1, math.ceil(train_examples / batch_size))
    if epochs is None:
        floor = min(min_epochs, MIN_EPOCHS_STEPS // per_epoch)
        epochs = max(MIN_EPOCHS, floor, math.ceil(steps / per_epoch))
    return epochs, per_epoch


def patience_for(epochs, setting="auto"):
    """Early-stopping patience of a phase: a fifth of its epochs (at least 3) for "auto"."""
    return max(3, epochs // 5) if setting == "auto" else setting


def _backbone_shape(backbone, data_shape, image_size, weights):
    """Input shape to build a `keras:`/zoo-name backbone at (saved models keep their own)."""
    text = os.fspath(backbone) if isinstance(backbone, (str, os.PathLike)) else ""
    if not text or os.path.exists(text) or len(data_shape) != 3:
        return None
    size = (image_size, image_size) if image_size else tuple(data_shape[:2])
    if text.startswith("keras:"):  # ImageNet backbones: RGB, at least 32x32
        return (max(size[0], KERAS_MIN_SIZE), max(size[1], KERAS_MIN_SIZE), 3)
    return (*size, 3 if weights == "imagenet" else data_shape[2])


def _model_name(backbone, src):
    base = src.config.get("model") if src.config else None
    if base is None:
        text = os.fspath(backbone) if isinstance(backbone, (str, os.PathLike)) else src.model.name
        base = os.path.basename(os.path.normpath(text.split(":", 1)[-1])).removesuffix(".keras")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{base}_finetune")


def build_model(backbone, data_spec, settings):
    """The new model (phase-1 state: everything frozen but the head) and the resolved source."""
    shape = tuple(data_spec.image_shape)
    weights = settings["weights"]
    at = _backbone_shape(backbone, shape, settings["image_size"], weights)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(settings["precision"])
    try:
        src = load_pretrained(backbone, weights=weights, input_shape=at, preprocess=settings["preprocess"])
        model = with_new_head(
            src.model, data_spec.num_classes, dropout=settings["dropout"], feature_layer=settings["feature_layer"],
            input_shape=shape, preprocess=src.preprocess, name=_model_name(backbone, src),
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    layers.freeze_backbone(model)
    return model, src


def unfreeze_top(model, backbone_layers, spec, *, train_bn=False):
    """Phase 2's trainable set: the head plus the part of the backbone that `spec` names.

    Args:
        model: The model from `build_model`.
        backbone_layers: Names of the source model's layers, in its own order (for index specs).
        spec: "all"; "N%" or a fraction in (0, 1) (the top share of the backbone's layers with weights);
            an integer N (from the source model's layer N on, as in `base_model.layers[N:]`); or
            comma-separated names, globs, `re:` regexes or block names (`conv5_*`, `block_13`).
        train_bn: Also train BatchNormalization layers.

    Returns:
        The names of the layers made trainable.
    """
    layers.freeze(model)
    head = layers.head_layers(model)
    text = str(spec).strip()
    body = layers.backbone_layers(model)
    weighted = [layer for layer in body if layer.weights]
    if text == "all":
        chosen = layers.unfreeze(model, [layer.name for layer in weighted], train_bn=train_bn)
    elif re.fullmatch(r"\d+(\.\d+)?%|0?\.\d+", text):
        share = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
        if not 0 < share <= 1:
            raise ValueError(f"--unfreeze share must be in (0, 100%]. Received: {spec!r}")
        top = weighted[len(weighted) - max(1, math.ceil(share * len(weighted))):] if weighted else []
        chosen = layers.unfreeze(model, [layer.name for layer in top], train_bn=train_bn)
    elif re.fullmatch(r"-?\d+", text):
        index = int(text)
        if not -len(backbone_layers) <= index < len(backbone_layers):
            raise ValueError(f"--unfreeze {index}: the backbone has {len(backbone_layers)} layers (0-based).")
        names = [layer.name for layer in body]
        start = backbone_layers[index]
        if start not in names:
            raise ValueError(f"--unfreeze {index}: layer {start!r} is not part of the new model (it was cut off).")
        chosen = layers.unfreeze(model, names[names.index(start):], train_bn=train_bn)
    else:
        chosen = layers.unfreeze(model, [s.strip() for s in text.split(",") if s.strip()], train_bn=train_bn)
    return chosen + layers.unfreeze(model, head)


def _phase_done(path):
    return rundir.is_complete(path)


def _read_history(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return [{k: (float(v) if k != "epoch" else int(v)) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def plot_phases(rows, path, boundary):
    """curves.png: loss and metrics per epoch, train vs dev, with a line where fine-tuning began."""
    mark = (boundary, "fine-tuning starts") if boundary is not None else None
    return reports.plot_curves(rows, path, mark=mark)


def _assemble(run_dir, config, kept=PHASES[1]):
    """Top-level run files from the phase directories (`kept`: the phase-2 run chosen on dev)."""
    rows, boundary, offset = [], None, 0
    used = (PHASES[0], kept)
    for phase, label in zip(used, ("head", "finetune")):
        part = _read_history(os.path.join(run_dir, phase, rundir.HISTORY))
        if label == "finetune" and part and offset:
            boundary = offset
        for row in part:
            rows.append({"epoch": row["epoch"] + offset, "phase": label,
                         **{k: v for k, v in row.items() if k != "epoch"}})
        offset += len(part)
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(os.path.join(run_dir, rundir.HISTORY + ".tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys or ["epoch", "phase"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(os.path.join(run_dir, rundir.HISTORY + ".tmp"), os.path.join(run_dir, rundir.HISTORY))
    last = next(os.path.join(run_dir, p) for p in reversed(used) if _phase_done(os.path.join(run_dir, p)))
    for name in os.listdir(last):  # model.keras, metrics.json, confusion matrix, diagnosis...
        src = os.path.join(last, name)
        if os.path.isfile(src) and name not in (rundir.CONFIG, rundir.HISTORY, rundir.COMPLETE, "curves.png"):
            shutil.copy2(src, os.path.join(run_dir, name + ".tmp"))
            os.replace(os.path.join(run_dir, name + ".tmp"), os.path.join(run_dir, name))
    final = rundir.read_json(os.path.join(last, rundir.CONFIG))
    phases = []
    for phase in used:
        path = os.path.join(run_dir, phase)
        if _phase_done(path):
            phases.append({"dir": phase, "epochs": len(_read_history(os.path.join(path, rundir.HISTORY))),
                           "recipe": rundir.read_json(os.path.join(path, rundir.CONFIG))["recipe"],
                           "metrics": rundir.read_json(os.path.join(path, rundir.METRICS))})
    config = {**final, "finetune": {**config["finetune"], "phases": phases, "finetune_began_after_epoch": boundary}}
    rundir.write_json(os.path.join(run_dir, rundir.CONFIG), config)
    plot_phases(rows, os.path.join(run_dir, "curves.png"), boundary)
    rundir.mark_complete(run_dir)
    return config, rows


def _settings(backbone, data, out, resume, options):
    """`(settings, backbone, data, run_dir)` for a new run, or read back from the run being resumed."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown finetune option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(DEFAULTS))}.")
    if resume:
        if out is None or not os.path.isfile(os.path.join(os.fspath(out), rundir.CONFIG)):
            raise ValueError(f"Nothing to resume in {out!r}: it has no {rundir.CONFIG}.")
        run_dir = os.fspath(out)
        saved = rundir.RunDir(run_dir, finished=False).config.get("finetune")  # refuses a config that is no object
        if saved is None:
            raise ValueError(f"{run_dir!r} is not a fine-tuning run; resume it with `zoo train --resume`.")
        settings = {**DEFAULTS, **{k: saved[k] for k in DEFAULTS if k in saved}}
        ran = [p for p, on in zip(PHASES, (runs_head(settings), settings["finetune_epochs"] != 0)) if on]
        if all(_phase_done(os.path.join(run_dir, p)) for p in ran) and os.path.isfile(os.path.join(run_dir, rundir.METRICS)):
            raise rundir.RunComplete(f"The run in {run_dir!r} is complete; nothing to resume (fine-tune into a "
                                     "new --out directory to train again).")
        return settings, saved["backbone"], saved["source"] if data is None else data, run_dir
    if data is None:
        raise ValueError("No data source given; pass --data SOURCE.")
    settings = {**DEFAULTS, **options}
    if settings["augment"] != "auto":
        settings["augment"] = tuple(settings["augment"] or ())
    _check(settings)
    check_augment(() if settings["augment"] == "auto" else settings["augment"], settings["augment_args"])
    if not isinstance(backbone, (str, os.PathLike)):
        raise ValueError("`backbone` must be a run directory, .keras file, 'keras:<Application>' or zoo name.")
    name = os.path.basename(os.path.normpath(os.fspath(backbone).split(":", 1)[-1])).removesuffix(".keras")
    return settings, backbone, data, rundir.prepare(out or rundir.default_dir(f"{name}-finetune"), resume=False)


def resolve_augment(settings, backbone, src):
    """Sets "auto" augmentation to what the backbone was trained with; returns where it came from.

    A zoo run's own recipe (`augment`, `augment_args` in its config.json), a zoo model name's registered recipe,
    none for `keras:` and bare `.keras` backbones (their training augmentation is unknown). What the backbone's
    training was invariant to is what its features are.
    """
    if settings["augment"] != "auto":
        return "--augment"
    from zoo.registry import get_spec

    recipe = (src.config or {}).get("recipe")
    origin = "the backbone run's recipe"
    text = os.fspath(backbone) if isinstance(backbone, (str, os.PathLike)) else ""
    if recipe is None and src.kind == "zoo":
        spec = get_spec(text.split(":", 1)[-1])
        recipe, origin = (spec.recipe.to_dict() if spec.recipe is not None else None), f"{spec.name}'s recipe"
    settings["augment"] = tuple((recipe or {}).get("augment") or ())
    settings["augment_args"] = {**((recipe or {}).get("augment_args") or {}), **settings["augment_args"]}  # given win
    return origin if recipe is not None else "none known for this backbone"


def check_augment(augment, augment_args):
    """Refuses an unknown augmentation name or strength (one line), not after imprinting when phase 2 starts.

    Called before the run directory is made (given names, strengths' names), and once "auto" is resolved: the
    strengths' values are checked only with augmentation names to apply them to.
    """
    from pipelines.augment.recipe import from_recipe

    from_recipe(Recipe(augment=tuple(augment), augment_args=augment_args))


def _train_split(data, settings, training=True):
    """The training split as the phases see it: with their augmentation and shuffled (`training`), or neither."""
    recipe = Recipe(batch_size=settings["batch_size"], augment=tuple(settings["augment"]),
                    augment_args=settings["augment_args"], val_split=settings["val_split"], normalization="scale")
    return make_dataset(get_task("classification"), data, "train", recipe, None, training, seed=settings["seed"],
                        strict=settings["strict"], follow_symlinks=settings["follow_symlinks"])


def init_head(model, data, settings):
    """Imprints the new head from the training split's class means (`heads.imprint`) unless `head_init` is random."""
    if settings["head_init"] != "imprint":
        return
    try:
        scale = imprint(model, _train_split(data, settings, training=False))
    except ValueError as exc:  # e.g. a class with no training image: keep the random head
        print(f"zoo finetune: head left random: {exc}", flush=True)
        return
    print(f"zoo finetune: head imprinted from the training split's class means (logit scale {scale:.3g})", flush=True)


def find_lr(model, data, settings, label):
    """Phase `label`'s rate from a range test (`lr_find`) on the training split, with the phase's trainable set."""
    ds = _train_split(data, settings)
    keras.utils.set_random_seed(settings["seed"])
    rule = "minimum" if label == "head" else "edge"
    found = lr_find(model, ds, loss=keras.losses.SparseCategoricalCrossentropy(), optimizer=settings["optimizer"],
                    rule=rule)
    what = "lowest" if rule == "minimum" else "first doubled"
    print(f"zoo finetune: {label} lr auto: smoothed loss {what} at lr {found.landmark:.2g} -> lr "
          f"{found.suggestion:.2g} (range test, {len(found.lrs)} steps)", flush=True)
    return found


class _Phases:
    """Runs the two phases of one fine-tuning run as `zoo.train` runs in sub-directories."""

    def __init__(self, run_dir, data, settings, config, train_examples, verbose):
        self.run_dir, self.data, self.settings, self.config = run_dir, data, settings, config
        self.train_examples = train_examples
        self.common = {"optimizer": settings["optimizer"], "batch_size": settings["batch_size"],
                       "augment": settings["augment"], "augment_args": settings["augment_args"],
                       "val_split": settings["val_split"], "normalization": "scale"}
        self.train_kw = {"seed": settings["seed"], "xla": settings["xla"], "strict": settings["strict"],
                         "follow_symlinks": settings["follow_symlinks"], "verbose": verbose}

    def plan(self, index, net, key=None):
        """Epochs, rate and patience of phase `index` (0: head, 1: finetune), recorded in config.json."""
        label = ("head", "finetune")[index]
        s = self.settings
        epochs, per_epoch = phase_epochs(_steps(s, label), self.train_examples, s["batch_size"],
                                         s[f"{label}_epochs"], s["finetune_min_epochs"] if index else 0)
        plan = {"epochs": epochs, "steps_per_epoch": per_epoch, "lr": s[f"{label}_lr"],
                "schedule": s["finetune_schedule"] if label == "finetune" else "constant",
                "early_stopping": patience_for(epochs, s["early_stopping"])}
        if plan["lr"] == "auto":
            found = find_lr(net, self.data, s, label)
            plan["lr"], plan["lr_find"] = found.suggestion, {"rule": found.rule, "landmark": found.landmark,
                                                              "steps": len(found.lrs)}
        self.config["finetune"].setdefault("plan", {})[key or label] = plan
        rundir.write_json(os.path.join(self.run_dir, rundir.CONFIG), self.config)
        return plan

    def run(self, index, net, dirname=None, **overrides):
        """Phase `index` as a `zoo.train` run in `dirname` (default `PHASES[index]`); None if already done."""
        dirname = dirname or PHASES[index]
        path = os.path.join(self.run_dir, dirname)
        if _phase_done(path):
            return None
        again = os.path.isfile(os.path.join(path, rundir.CONFIG))
        if os.path.isdir(path) and not again:
            shutil.rmtree(path)  # killed before its first file: start the phase over
        label = ("head", "finetune")[index]
        what = label if dirname == PHASES[index] else f"{label}, {dirname}"
        print(f"zoo finetune: phase {index + 1} ({what}){', resumed' if again else ''}", flush=True)
        print(layers.trainable_summary(net, collapse=True), flush=True)
        if again:
            return loop.train(net, self.data, out=path, resume=True, **self.train_kw)
        plan = self.plan(index, net, key=None if dirname == PHASES[index] else dirname)
        print(f"zoo finetune: phase {index + 1}: {plan['epochs']} epochs x {plan['steps_per_epoch']} steps, "
              f"lr {plan['lr']:.2g} {plan['schedule']}, early stopping patience {plan['early_stopping']} "
              "(best dev weights kept)", flush=True)
        schedule = None if plan["schedule"] == "constant" else plan["schedule"]
        return loop.train(net, self.data, out=path, epochs=plan["epochs"], lr=plan["lr"], lr_schedule=schedule,
                          early_stopping=plan["early_stopping"], **self.train_kw, **{**self.common, **overrides})


def _multipliers(model, settings):
    """Phase 2's per-layer rates as `recipe.extra` (`optim.make_optimizer` wraps the optimizer with them)."""
    if settings["lr_decay"] is None:
        return {}
    groups = settings["lr_groups"]
    groups = int(groups) if str(groups).isdigit() else groups
    return {"extra": {"lr_multipliers": optimizers.layerwise_lr_multipliers(
        model, decay=settings["lr_decay"], groups=groups)}}


def _dev_loss(run_dir, dirname):
    loss = rundir.read_json(os.path.join(run_dir, dirname, rundir.METRICS)).get("val", {}).get("loss")
    return loss if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf


def phase_two(phases, model, compare):
    """Phase 2; with `compare`, again from the same start without augmentation. Returns the directory kept.

    "auto" augmentation is what the backbone was trained with, and that can be wrong for the new data (a
    horizontal flip on digits: `resnet20` on real digits lost 4.8 points at 10 per class with its CIFAR recipe's
    flip, while `lenet5`'s mild affine gained 1.7-2.7; BENCHMARKS.md, issue 19), so both runs are made and the
    lower dev loss (what early stopping watches) decides; a tie keeps the augmentation.
    """
    run_dir, settings = phases.run_dir, phases.settings
    start = os.path.join(run_dir, START)
    if compare and not os.path.isfile(start) and not _phase_done(os.path.join(run_dir, NOAUG)):
        model.save_weights(start)
    phases.run(1, model, **_multipliers(model, settings))
    if not compare:
        return PHASES[1]
    if not _phase_done(os.path.join(run_dir, NOAUG)):
        model.load_weights(start)
        phases.run(1, model, dirname=NOAUG, augment=(), augment_args={}, **_multipliers(model, settings))
    losses = {d: _dev_loss(run_dir, d) for d in (PHASES[1], NOAUG)}
    kept = min(losses, key=losses.get)
    phases.config["finetune"]["augment_choice"] = {"dev_loss": losses, "kept": kept}
    print(f"zoo finetune: dev loss with augmentation {', '.join(settings['augment'])} {losses[PHASES[1]]:.4g}, "
          f"without {losses[NOAUG]:.4g}: keeping {kept}", flush=True)
    if os.path.isfile(start):
        os.remove(start)
    return kept


def finetune(backbone, data=None, *, out=None, resume=False, verbose="auto", **options):
    """Fine-tunes a pretrained backbone on `data` in two phases; returns the final phase's `zoo.train` Run.

    Each phase's length is a budget of optimizer steps (`head_steps`, `finetune_steps`) turned into epochs of
    the training split (`phase_epochs`), unless `head_epochs` / `finetune_epochs` are given; both phases stop
    early on the dev loss and keep their best weights.

    Args:
        backbone: A zoo run directory, a `.keras` file, `"keras:<Application>"` or a zoo model name
            (see `transfer.load_pretrained`).
        data: A `pipelines.build` source (an image folder, .npz, `tfds:NAME`, `shapes/...`). Optional
            with `resume`.
        out: Run directory; must not exist or be empty unless `resume`.
        resume: Continue the interrupted fine-tuning run in `out` (its phase and epoch).
        verbose: As for `zoo.train`.
        **options: Any of `DEFAULTS`: `weights` ("auto": ImageNet for `keras:` names, none for zoo names;
            "imagenet", None or a file), `image_size` (backbone input size for `keras:`/zoo names; the
            data is resized inside the model), `preprocess` (override the backbone's input mapping),
            `feature_layer`, `dropout`, `head_init` ("imprint": class means, or "random"), `head_steps`
            ("auto": `runs_head`, `HEAD_STEPS`), `head_epochs` (overrides the step budget), `head_lr`
            (a rate or "auto": `lr_find`), `finetune_steps`, `finetune_min_epochs` (phase 2's fewest epochs
            within `MIN_EPOCHS_STEPS` steps), `finetune_epochs` (0: head only), `finetune_lr`,
            `finetune_schedule` ("constant" or "cosine" over phase 2's planned epochs),
            `unfreeze` (see `unfreeze_top`), `train_bn`, `lr_decay` (layer-wise decay of phase 2's rates,
            e.g. 0.5; None for one rate), `lr_groups` ("blocks" or a number of groups), `early_stopping`
            (both phases' patience; "auto": `patience_for`), `optimizer`, `batch_size`, `augment`
            ("auto": the backbone's training augmentation and strengths, `resolve_augment`; names; `()` for
            none), `augment_args` (strengths for named augmentations), `val_split`, `seed`, `precision` (float32,
            mixed_bfloat16, mixed_float16), `xla`, `strict`.

    Raises:
        ValueError: Bad backbone, source, option or run directory (one line each).
    """
    import pipelines

    settings, backbone, data, run_dir = _settings(backbone, data, out, resume, options)
    data_spec = pipelines.inspect(data, task="classification", normalization="scale",
                                  val_split=settings["val_split"], strict=settings["strict"],
                                  follow_symlinks=settings["follow_symlinks"])
    if data_spec.task != "classification":
        raise ValueError(f"zoo finetune trains classifiers; source {data!r} is a {data_spec.task} source.")
    model, src = build_model(backbone, data_spec, settings)
    auto = settings["augment"] == "auto"
    augment_from = resolve_augment(settings, backbone, src)
    check_augment(settings["augment"], settings["augment_args"])
    # "auto" augmentation is checked against none on the dev split (`phase_two`); no dev split, no check
    compare = auto and bool(settings["augment"]) and bool(data_spec.splits.get("val"))
    backbone_layers = [layer.name for layer in src.model.layers]
    if settings["finetune_epochs"] != 0:  # fail now, not after phase 1, on a bad --unfreeze
        unfreeze_top(model, backbone_layers, settings["unfreeze"])
        layers.freeze_backbone(model)
    config = {"finetune": {**settings, "augment": list(settings["augment"]), "augment_compare": compare,
                           "backbone": os.fspath(backbone),
                           "source": data if isinstance(data, str) else None, "source_kind": src.kind}}
    if resume:
        config = {"finetune": {**config["finetune"], **rundir.read_json(os.path.join(run_dir, rundir.CONFIG))["finetune"]}}
    else:
        rundir.write_json(os.path.join(run_dir, rundir.CONFIG), config)
        print(f"zoo finetune: {src.kind} backbone {os.fspath(backbone)} -> {model.name} "
              f"({data_spec.num_classes} classes, {data_spec.splits['train']} training images) in {run_dir}",
              flush=True)
        print(f"zoo finetune: augmentation {', '.join(settings['augment']) or 'none'} ({augment_from})"
              f"{'; phase 2 also runs without it, the dev loss decides' if compare else ''}", flush=True)
    phases = _Phases(run_dir, data, settings, config, int(data_spec.splits["train"]), verbose)
    if not any(os.path.isfile(os.path.join(run_dir, p, rundir.CONFIG)) for p in (*PHASES, NOAUG)):  # none began
        init_head(model, data, settings)
    run = phases.run(0, model) if runs_head(settings) else None
    kept = PHASES[1]
    if settings["finetune_epochs"] != 0:
        if run is None and runs_head(settings):  # phase 1 finished in an earlier process
            model, _ = loop.load_run(os.path.join(run_dir, PHASES[0]))
        unfreeze_top(model, backbone_layers, settings["unfreeze"], train_bn=settings["train_bn"])
        kept = phase_two(phases, model, config["finetune"].get("augment_compare", False))
        run = None  # the model kept is read back from the run directory
    final, rows = _assemble(run_dir, config, kept)
    metrics = rundir.read_json(os.path.join(run_dir, rundir.METRICS))
    summary = ", ".join(f"{s} accuracy {m['accuracy']:.4f}" for s, m in metrics.items() if "accuracy" in m)
    print(f"zoo finetune: {summary}; model {os.path.join(run_dir, rundir.MODEL)}; "
          f"curves {os.path.join(run_dir, 'curves.png')}", flush=True)
    return loop.Run(run_dir=run_dir, model=run.model if run is not None else loop.load_run(run_dir)[0],
                    config=final, history=rows, metrics=metrics)
