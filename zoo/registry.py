"""Name-keyed model registry: `list_models`, `create_model`, `model_info`.

Each model family registers its builders with `@register_model(...)`; importing
`zoo` imports every family, so the registry is complete after `import zoo`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model (plain data, no graph code)."""

    name: str
    builder: Callable[..., Any]
    task: str
    input_shape: tuple
    reference: str
    description: str
    family: str
    recipe: Any = None
    # Small overrides the registry-wide tests use to keep each model cheap to run.
    test_overrides: dict = dataclasses.field(default_factory=dict)
    # Shape of one output sample at `test_overrides` (None: not checked).
    output_shape: Any = None


_REGISTRY: dict[str, ModelSpec] = {}
_PARAMS_CACHE: dict[str, int] = {}


def register_model(
    *,
    task: str,
    input_shape: tuple,
    reference: str,
    description: str,
    recipe: Any = None,
    test_overrides: dict | None = None,
    output_shape: Any = None,
    name: str | None = None,
):
    """Decorator that registers a builder under its function name.

    Args:
        task: A task registered in `zoo.tasks` (checked by the registry-wide tests).
        input_shape: Default input shape (without the batch axis).
        reference: The paper (or source) the architecture follows.
        description: One line for `zoo list` and the README table.
        recipe: A `zoo.recipes.Recipe` with the model's training defaults.
        test_overrides: Keyword overrides that make the model cheap for tests.
        output_shape: Callable `(overrides) -> shape` of one output sample, or None.
        name: Registry name. Defaults to the builder's `__name__`.
    """
    if not isinstance(task, str) or not task:
        raise ValueError(f"task must be a task name. Received: {task!r}")

    def decorate(fn):
        model_name = name or fn.__name__
        if model_name in _REGISTRY:
            raise ValueError(f"Model {model_name!r} is already registered.")
        _REGISTRY[model_name] = ModelSpec(
            name=model_name,
            builder=fn,
            task=task,
            input_shape=tuple(input_shape),
            reference=reference,
            description=description,
            family=fn.__module__.rsplit(".", 1)[-1],
            recipe=recipe,
            test_overrides=dict(test_overrides or {}),
            output_shape=output_shape,
        )
        return fn

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching an fnmatch `pattern`, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of `name`; ValueError naming the closest names if unknown."""
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} Available models: {', '.join(list_models())}."
        )
    return _REGISTRY[name]


def create_model(name: str, **overrides):
    """Builds the registered model `name`, passing `overrides` to its builder."""
    return get_spec(name).builder(**overrides)


def count_params(name: str) -> int:
    """Parameter count of `name` at its defaults (built once, then cached)."""
    if name not in _PARAMS_CACHE:
        import keras

        model = create_model(name)
        _PARAMS_CACHE[name] = int(model.count_params())
        del model
        keras.backend.clear_session()
    return _PARAMS_CACHE[name]


def model_info(name: str, *, params: bool = True) -> dict:
    """What the registry knows about `name`.

    Returns:
        A dict with `name`, `task`, `family`, `input_shape`, `params` (count at
        the defaults; omitted when `params=False`), `reference`, `description`
        and `recipe` (a dict, or None).
    """
    spec = get_spec(name)
    info = {
        "name": spec.name,
        "task": spec.task,
        "family": spec.family,
        "input_shape": spec.input_shape,
        "reference": spec.reference,
        "description": spec.description,
        "recipe": spec.recipe.to_dict() if spec.recipe is not None else None,
    }
    if params:
        info["params"] = count_params(name)
    return info


def markdown_table() -> str:
    """The README's model table, generated from the registry."""
    rows = [
        "| model | task | default input | params | reference |",
        "|---|---|---|---:|---|",
    ]
    for name in list_models():
        spec = get_spec(name)
        shape = "x".join(str(d) for d in spec.input_shape)
        rows.append(f"| `{name}` | {spec.task} | {shape} | {count_params(name):,} | {spec.reference} |")
    return "\n".join(rows)
