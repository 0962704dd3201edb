"""Recipe -> optimizer, learning-rate schedule and weight decay."""

from __future__ import annotations

import keras

from callbacks import schedules
from zoo.training import layerwise

WEIGHT_SUFFIXES = ("kernel", "embeddings")


def learning_rate(recipe, steps_per_epoch: int, epochs: int | None = None):
    """The recipe's schedule (or constant rate) for `steps_per_epoch` optimizer steps per epoch."""
    args = dict(recipe.schedule_args)
    if recipe.lr_schedule == "exponential":
        # Recipes may write `decay_rate` / `decay_epochs`: lr * decay_rate ** (epoch / decay_epochs).
        if "decay_rate" in args:
            args["base"] = args.pop("decay_rate")
        if "decay_epochs" in args:
            args["base"] = args.get("base", 0.95) ** (1.0 / float(args.pop("decay_epochs")))
    return schedules.get(recipe.lr_schedule, lr=recipe.lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                         total_steps=recipe.extra.get("total_steps"), **args)


def make_optimizer(recipe, steps_per_epoch: int, epochs: int | None = None):
    """A Keras optimizer for the recipe ("momentum" is SGD with `recipe.momentum`).

    With `recipe.extra["lr_multipliers"]` (layer name -> factor, from
    `zoo.transfer.layerwise_lr_multipliers`), each layer's updates are scaled by its factor.
    """
    optimizer = _base_optimizer(recipe, learning_rate(recipe, steps_per_epoch, epochs))
    multipliers = recipe.extra.get("lr_multipliers")
    if multipliers:
        optimizer = layerwise.discriminative_optimizer(optimizer, multipliers)
    return optimizer


def _base_optimizer(recipe, lr):
    name = recipe.optimizer
    if name == "sgd":
        return keras.optimizers.SGD(lr)
    if name == "momentum":
        return keras.optimizers.SGD(lr, momentum=recipe.momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=recipe.momentum)
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}; allowed: sgd, momentum, rmsprop, adam, adamw.")


def add_weight_decay(model, recipe) -> int:
    """Adds an L2 penalty `weight_decay / 2 * ||w||^2` on kernels (gradient `weight_decay * w`).

    Not for adamw (decoupled decay in the optimizer). Kernels that already carry a
    regularizer keep it. Returns how many variables got the penalty.
    """
    if not recipe.weight_decay or recipe.optimizer == "adamw":
        return 0
    penalty = keras.regularizers.L2(recipe.weight_decay / 2.0)
    count = 0
    for variable in model.trainable_variables:
        if variable.path.endswith(WEIGHT_SUFFIXES) and getattr(variable, "regularizer", None) is None:
            variable.regularizer = penalty
            count += 1
    return count
