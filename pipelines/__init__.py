"""One tf.data input pipeline for every model in the zoo.

    >>> import pipelines
    >>> spec = pipelines.inspect("shapes/detection")
    >>> train = pipelines.build("shapes/detection", split="train", augment=("flip", "crop"), seed=0)

Importing `pipelines` registers the built-in TFDS dataset `shapes`
(`tfds.load("shapes/detection")` works afterwards).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pipelines import (
    shapes,  # noqa: E402,F401  (registers the TFDS builder)
    sources,  # noqa: E402,F401  (registers the readers)
)
from pipelines.augment import Policy  # noqa: E402,F401
from pipelines.core import build, inspect  # noqa: E402,F401
from pipelines.preview import preview  # noqa: E402,F401
from pipelines.spec import DataSpec  # noqa: E402,F401
