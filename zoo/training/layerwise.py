"""Per-layer learning rates: Keras' optimizers with a learning-rate multiplier per variable.

Registered as `zoo>Layerwise<Name>` so a `.keras` file holding one loads after `import zoo`. Which
layers get which factor is transfer learning's choice (`zoo.transfer.layerwise_lr_multipliers`);
applying the factors is the optimizer's, so it lives beside `optim.make_optimizer`.
"""

from __future__ import annotations

import fnmatch

import keras


def _check_multipliers(multipliers):
    out = {}
    for key, value in dict(multipliers or {}).items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(
                "`lr_multipliers` must map variable paths, layer names or globs (str) to rates >= 0. "
                f"Received: {key!r}: {value!r}"
            )
        out[key] = float(value)
    return out


class _LayerwiseLR:
    """Mixin: scales each variable's learning rate (and decoupled weight decay) by a multiplier.

    `lr_multipliers` maps keys to factors; a variable takes the first key that equals its path
    (`layer/kernel`) or its layer's name, or that matches either as a glob. Others keep factor 1.
    """

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = _check_multipliers(lr_multipliers)

    def multiplier(self, path: str) -> float:
        layer = path.rsplit("/", 1)[0]
        for key, value in self.lr_multipliers.items():
            if key in (path, layer) or fnmatch.fnmatchcase(path, key) or fnmatch.fnmatchcase(layer, key):
                return value
        return 1.0

    def build(self, var_list):
        if not self.built:
            self._var_multipliers = [self.multiplier(v.path) for v in var_list]
        super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        m = self._var_multipliers[self._get_variable_index(variable)]
        if m != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, m)
        return super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        groups = {}
        for v in variables:
            groups.setdefault(self._var_multipliers[self._get_variable_index(v)], []).append(v)
        base = self.weight_decay
        try:  # The base class reads `self.weight_decay` while tracing: one call per multiplier.
            for m, group in groups.items():
                if m:
                    self.weight_decay = base * m
                    super()._apply_weight_decay(group)
        finally:
            self.weight_decay = base

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}


def _layerwise_class(base):
    cls = type(f"Layerwise{base.__name__}", (_LayerwiseLR, base), {"__module__": __name__})
    cls.__doc__ = f"`keras.optimizers.{base.__name__}` with per-layer learning-rate multipliers (`lr_multipliers`)."
    return keras.saving.register_keras_serializable(package="zoo")(cls)


_OPTIMIZER_NAMES = ("SGD", "RMSprop", "Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "Lamb")
LAYERWISE_OPTIMIZERS = {
    getattr(keras.optimizers, n): _layerwise_class(getattr(keras.optimizers, n))
    for n in _OPTIMIZER_NAMES if hasattr(keras.optimizers, n)
}
globals().update({cls.__name__: cls for cls in LAYERWISE_OPTIMIZERS.values()})


def discriminative_optimizer(optimizer, lr_multipliers):
    """`optimizer` with per-layer learning rates: usable in `compile`/`fit`, saved and loaded with the model.

    Each variable's update uses `learning_rate * multiplier` (learning-rate schedules and callbacks that set
    `optimizer.learning_rate` keep working: they set the base rate), and decoupled weight decay
    (AdamW, `weight_decay=`) is scaled the same way. The result is a registered `zoo>Layerwise<Name>`
    class, so a `.keras` file holding it loads after `import zoo`.

    Args:
        optimizer: A Keras optimizer instance or name ("adam", "sgd", ...).
        lr_multipliers: `{variable path | layer name | glob: factor}`, e.g. from `layerwise_lr_multipliers`.

    Raises:
        ValueError: The optimizer class is not one of Keras' built-in optimizers.
    """
    optimizer = keras.optimizers.get(optimizer)
    if isinstance(optimizer, _LayerwiseLR):
        config = optimizer.get_config()
        base = next(b for b, c in LAYERWISE_OPTIMIZERS.items() if isinstance(optimizer, c))
    else:
        base = type(optimizer)
        if base not in LAYERWISE_OPTIMIZERS:
            raise ValueError(
                f"No layer-wise version of optimizer {base.__name__!r}; allowed: "
                f"{', '.join(b.__name__ for b in LAYERWISE_OPTIMIZERS)}."
            )
        config = optimizer.get_config()
    config["lr_multipliers"] = lr_multipliers
    return LAYERWISE_OPTIMIZERS[base].from_config(config)
