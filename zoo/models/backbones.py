"""Alias kept for code outside the zoo: the module split into `zoo.models.features` (feature taps,
`feature_extractor`, `preprocess_input(name)`) and `zoo.models.weights` (Keras' published ImageNet files).
Families declare their own tables at registration (`zoo.registry.ModelSpec`)."""

from zoo.models.features import FEATURE_LAYERS, feature_extractor, preprocess_input  # noqa: F401
from zoo.models.resnet import RESNET_HASHES, RESNET_URL  # noqa: F401
from zoo.models.weights import (  # noqa: F401
    OFFLINE_ENV,
    check_imagenet_args,
    imagenet_file,
    imagenet_weights_path,
    keras_cache_dir,
    load_weights,
    resolve_weights,
)
