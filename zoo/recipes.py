"""Training recipes as data: the defaults `zoo train` uses for each model."""

from __future__ import annotations

import dataclasses
from typing import Any

from zoo import contract

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Training defaults for one model; every field can be overridden.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Global batch size.
        optimizer: One of `OPTIMIZERS` ("momentum" is SGD with `momentum`).
        lr: Initial learning rate.
        momentum: Momentum for "momentum"/"rmsprop".
        weight_decay: L2 weight decay (decoupled for adamw, added to the loss
            as an L2 penalty on kernels otherwise).
        lr_schedule: Name of a schedule in `callbacks.schedules` or None.
        schedule_args: Keyword arguments of the schedule.
        augment: Augmentations applied to the training split (`pipelines.augment.NAMES` or "pad_crop").
        augment_args: Their strengths by name, e.g. `{"rotate": 10, "scale": (0.9, 1.1), "shift": 0.07}`
            (fields of `pipelines.augment.Policy`, and "pad_pixels" for "pad_crop"); unset ones keep defaults.
        early_stopping: Patience in epochs on the dev metric, or None.
        monitor: The metric early stopping and the plateau schedule watch on the dev split (on the
            training split when there is no dev split): "loss" or a metric the model logs ("accuracy", ...).
        val_split: Fraction held out as dev set when the source has none.
        train_dev: Fraction of the training split held out as a train-dev set (same distribution as
            training, never trained on; `zoo analyze` separates variance from data mismatch with it).
        normalization: "scale" (to [0, 1]), "standardize" (per-channel mean/std
            of the training split) or "none".
        label_smoothing: For classification cross-entropy.
        precise_bn: Training examples over which BatchNormalization statistics are recomputed after
            training (`zoo.training.precise_bn`); 0 keeps Keras' moving averages. 2,048: on real digits and
            on `shapes`, 512-2,048 examples gave the full training split's test accuracy within 0.6 points,
            at a quarter of pycls' 8,192 forward passes (BENCHMARKS.md, issue 24).
        precise_bn_when: "stale" runs the pass only where the moving averages may be off
            (`zoo.training.precise_bn.staleness`: few steps for the momentum, a rate that had not decayed, or
            early stopping's restored weights); "always" runs it after every run.
        extra: Task-specific fields (loss weights, thresholds, ...).
        published: Published results this recipe reproduces (for the record).
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str | None = None
    schedule_args: dict = dataclasses.field(default_factory=dict)
    augment: tuple = ()
    augment_args: dict = dataclasses.field(default_factory=dict)
    early_stopping: int | None = None
    monitor: str = "loss"
    val_split: float = 0.1
    train_dev: float = 0.0
    normalization: str = "scale"
    label_smoothing: float = 0.0
    precise_bn: int = 2048
    precise_bn_when: str = "stale"
    extra: dict = dataclasses.field(default_factory=dict)
    published: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        contract.check_choice("optimizer", self.optimizer, OPTIMIZERS)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        return d

    def override(self, **changes: Any) -> "Recipe":
        """A copy with `changes` applied; unknown fields raise ValueError."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key in changes:
            contract.check_choice("recipe field", key, sorted(fields))
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        d = dict(d)
        if "augment" in d:
            d["augment"] = tuple(d["augment"])
        return cls().override(**d)
