"""Model families. Importing this package registers every builder.

Adding a family is one file here plus its name in the import below; the family declares its feature taps,
published weight files and preprocessing at registration (`zoo.models.features` and `zoo.models.weights`
read them from the registry).
"""

from zoo.models import (  # noqa: F401
    dense,
    features,
    lenet,
    linear,
    mobilenet,
    resnet,
    rnn,
    siamese,
    unet,
    weights,
    yolo,
)
