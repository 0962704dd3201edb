"""Learning-rate decay from the curriculum, as Keras `LearningRateSchedule`s.

Every schedule is a function of the optimizer step. The epoch-based ones take
`steps_per_epoch` and decay once per finished epoch (`epoch = step // steps_per_epoch`,
counted from 0, so the first epoch runs at the initial rate):

    inverse_time   lr0 / (1 + decay_rate * epoch)
    exponential    lr0 * base ** epoch                       (base 0.95)
    inverse_sqrt   k / sqrt(epoch + 1)                       (the curriculum's k / sqrt(epoch_num))
    step           lr0 * factor ** (epoch // every)          (discrete staircase)
    piecewise      values[i] between boundaries, in epochs or in steps
    cosine         linear warmup to lr0, then cosine decay to alpha * lr0

Five are Keras' own schedules with epochs converted to steps (inverse_time, exponential and step subclass
`InverseTimeDecay` / `ExponentialDecay` with `staircase=True`; piecewise and cosine wrap
`PiecewiseConstantDecay` / `CosineDecay(warmup_target=...)`); inverse_sqrt has no Keras equivalent. Each keeps
its registered name (`zoo>InverseTimeDecay`, ...) and its config keys, so `.keras` files saved before load.

`get(name, lr=..., steps_per_epoch=..., **args)` builds one from a recipe.
"""

from __future__ import annotations

import difflib

import keras
from keras import ops

_register = keras.saving.register_keras_serializable(package="zoo")


def _check_positive(**kw):
    for name, value in kw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")


class _EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base: converts the step into a (whole) epoch number."""

    def __init__(self, steps_per_epoch=1):
        _check_positive(steps_per_epoch=steps_per_epoch)
        self.steps_per_epoch = int(steps_per_epoch)

    def epoch(self, step):
        return ops.floor(ops.cast(step, "float32") / float(self.steps_per_epoch))

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch}


# The next four are Keras' schedules with epochs converted to steps. They keep their registered names and
# their own config keys (arguments in epochs), so `.keras` files saved before still load.
@_register
class InverseTimeDecay(keras.optimizers.schedules.InverseTimeDecay):
    """`lr0 / (1 + decay_rate * epoch)`: Keras' staircase `InverseTimeDecay` with `decay_steps=steps_per_epoch`.

    Args:
        initial_learning_rate: `lr0`.
        decay_rate: Defaults to `1.0`.
        steps_per_epoch: Optimizer steps per epoch. Defaults to `1`.
    """

    def __init__(self, initial_learning_rate, decay_rate=1.0, steps_per_epoch=1):
        _check_positive(initial_learning_rate=initial_learning_rate, steps_per_epoch=steps_per_epoch)
        if decay_rate < 0:
            raise ValueError(f"`decay_rate` must be >= 0. Received: decay_rate={decay_rate!r}")
        self.steps_per_epoch = int(steps_per_epoch)
        super().__init__(float(initial_learning_rate), self.steps_per_epoch, float(decay_rate), staircase=True)

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "initial_learning_rate": self.initial_learning_rate,
                "decay_rate": self.decay_rate}


@_register
class ExponentialDecay(keras.optimizers.schedules.ExponentialDecay):
    """`lr0 * base ** epoch`: Keras' staircase `ExponentialDecay` with `decay_steps=steps_per_epoch`.

    Args:
        initial_learning_rate: `lr0`.
        base: Decay per epoch. Defaults to `0.95`.
        steps_per_epoch: Optimizer steps per epoch. Defaults to `1`.
    """

    def __init__(self, initial_learning_rate, base=0.95, steps_per_epoch=1):
        _check_positive(initial_learning_rate=initial_learning_rate, base=base, steps_per_epoch=steps_per_epoch)
        self.base, self.steps_per_epoch = float(base), int(steps_per_epoch)
        super().__init__(float(initial_learning_rate), self.steps_per_epoch, self.base, staircase=True)

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "initial_learning_rate": self.initial_learning_rate,
                "base": self.base}


@_register
class InverseSqrtDecay(_EpochSchedule):
    """`k / sqrt(epoch + 1)`: the curriculum's `k / sqrt(epoch_num)` with epochs counted from 1.

    Args:
        k: The rate of the first epoch.
        steps_per_epoch: Optimizer steps per epoch. Defaults to `1`.
    """

    def __init__(self, k, steps_per_epoch=1):
        super().__init__(steps_per_epoch)
        _check_positive(k=k)
        self.k = float(k)

    def __call__(self, step):
        return self.k / ops.sqrt(self.epoch(step) + 1.0)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@_register
class StepDecay(keras.optimizers.schedules.ExponentialDecay):
    """Staircase: `lr0 * factor ** (epoch // every)`: Keras' staircase `ExponentialDecay` every `every` epochs.

    Args:
        initial_learning_rate: `lr0`.
        factor: Multiplier applied every `every` epochs. Defaults to `0.1`.
        every: Epochs between drops. Defaults to `10`.
        steps_per_epoch: Optimizer steps per epoch. Defaults to `1`.
    """

    def __init__(self, initial_learning_rate, factor=0.1, every=10, steps_per_epoch=1):
        _check_positive(
            initial_learning_rate=initial_learning_rate, factor=factor, every=every, steps_per_epoch=steps_per_epoch
        )
        self.factor, self.every, self.steps_per_epoch = float(factor), int(every), int(steps_per_epoch)
        super().__init__(float(initial_learning_rate), self.every * self.steps_per_epoch, self.factor, staircase=True)

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "initial_learning_rate": self.initial_learning_rate,
                "factor": self.factor, "every": self.every}


# Wrapped rather than subclassed: Keras' attributes (`boundaries` in steps; `initial_learning_rate` as the
# start of the warmup) would change the meaning of these classes' own.
@_register
class PiecewiseConstantDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`values[i]` while `boundaries[i-1] <= t < boundaries[i]`, `t` in epochs or in steps.

    Keras' `PiecewiseConstantDecay` at step boundaries `b * steps_per_epoch - 1` (it switches after a
    boundary; this switches at it).

    Args:
        boundaries: Increasing epoch (or step) numbers where the rate changes.
        values: One more value than `boundaries`.
        unit: "epoch" (the default) or "step" (e.g. the ResNet CIFAR recipe:
            0.1, divided by 10 at 32k and 48k iterations).
        steps_per_epoch: Optimizer steps per epoch (unit "epoch"). Defaults to `1`.
    """

    def __init__(self, boundaries, values, unit="epoch", steps_per_epoch=1):
        _check_positive(steps_per_epoch=steps_per_epoch)
        boundaries, values = [int(b) for b in boundaries], [float(v) for v in values]
        if unit not in ("epoch", "step"):
            raise ValueError(f"`unit` must be 'epoch' or 'step'. Received: unit={unit!r}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"`values` needs one more entry than `boundaries`. Received: boundaries={boundaries}, values={values}"
            )
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"`boundaries` must be increasing. Received: boundaries={boundaries}")
        self.boundaries, self.values, self.unit = boundaries, values, unit
        self.steps_per_epoch = int(steps_per_epoch)
        per = self.steps_per_epoch if unit == "epoch" else 1
        self._keras = keras.optimizers.schedules.PiecewiseConstantDecay([b * per - 1 for b in boundaries], values)

    def __call__(self, step):
        if not self.boundaries:
            return ops.convert_to_tensor(self.values[0], "float32")
        return self._keras(step)

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "boundaries": self.boundaries, "values": self.values,
                "unit": self.unit}


@_register
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `lr0` over `warmup_steps`, then cosine decay to `alpha * lr0`.

    Keras' `CosineDecay(0, decay_steps, alpha, warmup_target=lr0, warmup_steps=warmup_steps)`.

    Args:
        initial_learning_rate: `lr0`, the peak rate.
        decay_steps: Steps of the cosine phase (after warmup).
        warmup_steps: Steps of the linear warmup. Defaults to `0`.
        alpha: Final rate as a fraction of `lr0`. Defaults to `0.0`.
    """

    def __init__(self, initial_learning_rate, decay_steps, warmup_steps=0, alpha=0.0):
        _check_positive(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps)
        if warmup_steps < 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(
                f"Need warmup_steps >= 0 and 0 <= alpha <= 1. Received: warmup_steps={warmup_steps!r}, alpha={alpha!r}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.warmup_steps, self.alpha = int(decay_steps), int(warmup_steps), float(alpha)
        self._keras = keras.optimizers.schedules.CosineDecay(
            0.0, self.decay_steps, self.alpha, warmup_target=self.initial_learning_rate, warmup_steps=self.warmup_steps
        )

    def __call__(self, step):
        return self._keras(step)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "warmup_steps": self.warmup_steps, "alpha": self.alpha}


SCHEDULES = {
    "inverse_time": InverseTimeDecay,
    "exponential": ExponentialDecay,
    "inverse_sqrt": InverseSqrtDecay,
    "step": StepDecay,
    "piecewise": PiecewiseConstantDecay,
    "cosine": WarmupCosineDecay,
}
# "plateau" is not a schedule: it is the ReduceLROnPlateau callback on a constant rate.
NAMES = tuple(SCHEDULES) + ("plateau",)


def fraction_boundaries(fractions, total_steps):
    """Step boundaries at `fractions` (increasing, in (0, 1)) of a run of `total_steps` steps.

    A recipe written this way keeps its shape at any run length: the CIFAR ResNet's drops at 32k and 48k
    of 64k steps are `[0.5, 0.75]`, and a 500-step run on a small dataset drops at steps 250 and 375.
    Boundaries are at least one step apart.
    """
    fractions = [float(f) for f in fractions]
    if any(not 0.0 < f < 1.0 for f in fractions) or any(b <= a for a, b in zip(fractions, fractions[1:])):
        raise ValueError(f"`boundaries_fraction` must be increasing values in (0, 1). Received: {fractions}")
    steps = []
    for f in fractions:
        steps.append(max(int(round(f * total_steps)), steps[-1] + 1 if steps else 1))
    return steps


def _run_steps(steps_per_epoch, epochs, total_steps):
    if epochs is None and total_steps is None:
        raise ValueError("piecewise `boundaries_fraction` needs the number of epochs or `total_steps`")
    run = int(epochs * steps_per_epoch) if epochs is not None else int(total_steps)
    return min(run, int(total_steps)) if total_steps else run


def check_name(name):
    """Returns `name` if it is a known schedule (or None); ValueError naming the closest otherwise."""
    if name is None or name in NAMES:
        return name
    close = difflib.get_close_matches(str(name), NAMES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown lr_schedule {name!r}.{hint} Allowed: none, {', '.join(NAMES)}.")


def get(name, *, lr, steps_per_epoch, epochs=None, total_steps=None, **args):
    """Builds the schedule `name` for a recipe.

    Args:
        name: A key of `SCHEDULES`, "plateau" or None (both give the constant `lr`).
        lr: The recipe's initial learning rate (`k` for inverse_sqrt, the peak for cosine).
        steps_per_epoch: Optimizer steps per epoch.
        epochs: Total epochs; cosine decays over them unless `decay_steps` is given.
        total_steps: The run's optimizer steps, if fewer than `epochs * steps_per_epoch`.
        **args: The recipe's `schedule_args`. `piecewise` takes `boundaries_epochs`,
            `boundaries_steps` or `boundaries_fraction` (of the run's steps), plus `values`;
            `cosine` takes `warmup_epochs` or `warmup_steps`.

    Returns:
        A `LearningRateSchedule`, or the float `lr`.
    """
    name = check_name(name)
    if name in (None, "plateau"):
        return float(lr)
    args = dict(args)
    try:
        if name == "piecewise":
            if "boundaries_fraction" in args:
                total = _run_steps(steps_per_epoch, epochs, total_steps)
                args["boundaries_steps"] = fraction_boundaries(args.pop("boundaries_fraction"), total)
            if "boundaries_steps" in args:
                return PiecewiseConstantDecay(args.pop("boundaries_steps"), unit="step", **args)
            boundaries = args.pop("boundaries_epochs", args.pop("boundaries", None))
            args.setdefault("values", None)
            return PiecewiseConstantDecay(boundaries, steps_per_epoch=steps_per_epoch, **args)
        if name == "cosine":
            if "warmup_epochs" in args:
                args["warmup_steps"] = int(round(args.pop("warmup_epochs") * steps_per_epoch))
            warmup = args.get("warmup_steps", 0)
            if "decay_steps" not in args:
                if epochs is None:
                    raise ValueError("cosine needs `decay_steps` or the number of epochs")
                args["decay_steps"] = max(int(epochs * steps_per_epoch) - warmup, 1)
            return WarmupCosineDecay(lr, **args)
        if name == "inverse_sqrt":
            return InverseSqrtDecay(args.pop("k", lr), steps_per_epoch=steps_per_epoch, **args)
        return SCHEDULES[name](lr, steps_per_epoch=steps_per_epoch, **args)
    except TypeError as exc:
        raise ValueError(f"Bad schedule_args for lr_schedule {name!r}: {exc}. Received: {args}") from None
