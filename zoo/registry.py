"""Name-keyed model registry: `list_models`, `create_model`, `model_info`.

Each model family registers its builders with `@register_model(...)`; importing
`zoo` imports every family, so the registry is complete after `import zoo`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable

from zoo import contract

PREPROCESSING = ("caffe", "tf", "torch")  # keras.applications.imagenet_utils.preprocess_input modes


@dataclasses.dataclass(frozen=True)
class WeightFiles:
    """Published weight files of one model (plain data; `zoo.models.weights` fetches and loads them).

    Attributes:
        url: Folder URL holding the files.
        pattern: File name, with `{top}` and, for models published at several widths and sizes,
            `{alpha}` and `{rows}`.
        top: What `{top}` stands for: (file with the classifier, file without).
        md5: Hashes (with, without), or None where the publisher gives none.
        alphas: `{width multiplier: its text in the file name}`; empty for one width.
        rows: Input sizes published (other sizes use the 224 file).
    """

    url: str
    pattern: str
    top: tuple = ("", "_notop")
    md5: tuple | None = None
    alphas: dict = dataclasses.field(default_factory=dict)
    rows: tuple = (224,)

    def file(self, *, include_top, alpha=1.0, rows=224):
        """`(file name, url, md5 or None)` of the file for `include_top`, width `alpha`, size `rows`."""
        index = 0 if include_top else 1
        name = self.pattern.format(top=self.top[index], alpha=self.alphas.get(alpha, alpha), rows=rows)
        return name, self.url + name, self.md5[index] if self.md5 else None


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
    # `{"C1": layer name, ...}`: the layer ending each resolution level (`C{k}` at stride 2**k);
    # empty for models that are not backbones.
    feature_layers: dict = dataclasses.field(default_factory=dict)
    # `{"imagenet": WeightFiles}`: published weight files a builder's `weights=` resolves.
    pretrained: dict = dataclasses.field(default_factory=dict)
    # The `preprocess_input` mode its published weights expect ("caffe", "tf", "torch"), or None.
    preprocessing: str | None = None


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
    feature_layers: dict | None = None,
    pretrained: dict | None = None,
    preprocessing: str | None = None,
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
        feature_layers: `{"C{k}": layer name}` of a backbone (`zoo.models.features` taps them).
        pretrained: `{"imagenet": WeightFiles}` of the published weights its builder accepts.
        preprocessing: The `preprocess_input` mode ("caffe", "tf", "torch") its published weights expect.
        name: Registry name. Defaults to the builder's `__name__`.
    """
    if not isinstance(task, str) or not task:
        raise ValueError(f"`task` must be a task name. Received: task={task!r}")
    if preprocessing is not None:
        contract.check_choice("preprocessing", preprocessing, PREPROCESSING)

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
            feature_layers=dict(feature_layers or {}),
            pretrained=dict(pretrained or {}),
            preprocessing=preprocessing,
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
