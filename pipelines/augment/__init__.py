"""Augmentation: flip, crop, affine, color, distort; box- and mask-aware; two backends.

`"tf"` (vectorised native ops per batch, `tf_ops`) and `"albumentations"` (its
catalogue per example, `albu`). `"auto"` picks, for the requested transforms,
the backend with the lower measured cost per image in `measured.json`
(written by `benchmarks/augment.py --write`); transforms only one backend has
(elastic and grid distortion: albumentations) decide by themselves.
"""

from __future__ import annotations

import json
import os

from pipelines.augment import albu, tf_ops  # noqa: F401
from pipelines.augment.policy import DISTORT_KINDS, NAMES, Policy, as_policy  # noqa: F401

BACKENDS = ("auto", "tf", "albumentations")
_MEASURED_PATH = os.path.join(os.path.dirname(__file__), "measured.json")


def measured() -> dict:
    """The benchmark's per-transform cost table: `{"us_per_image": {name: {backend: us}}}`."""
    with open(_MEASURED_PATH) as f:
        return json.load(f)


def choose_backend(policy: Policy, table: dict | None = None) -> str:
    """The faster measured backend for `policy`'s transforms."""
    if "distort" in policy and policy.distort_kind != "perspective":
        return "albumentations"
    costs = (table or measured())["us_per_image"]
    # Unmeasured transforms cost what "distort" does (the same projective warp on either backend).
    total = {b: sum(costs.get(n, costs["distort"])[b] for n in ("base",) + policy.names) for b in ("tf", "albumentations")}
    return min(total, key=total.get)


def resolve(augment, backend, task, is_image=True):
    """Validates `augment` and `backend`; returns `(policy or None, backend)`."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown augmentation backend {backend!r}; allowed: {', '.join(BACKENDS)}.")
    policy = as_policy(augment)
    if policy is None:
        return None, backend
    if not is_image:
        raise ValueError(f"augment={list(policy.names)} needs image inputs; this source has none.")
    if backend == "auto":
        backend = choose_backend(policy)
    if backend == "tf" and "distort" in policy and policy.distort_kind != "perspective":
        raise ValueError(f"distort_kind={policy.distort_kind!r} needs backend='albumentations'; "
                         "the tf backend distorts with 'perspective'.")
    return policy, backend
