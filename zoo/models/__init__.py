"""Model families. Importing this package registers every builder.

Adding a family is one file here plus one import line below.
"""

from zoo.models import dense, lenet, linear, rnn  # noqa: F401
from zoo.models import backbones, mobilenet, resnet  # noqa: F401
from zoo.models import siamese  # noqa: F401
from zoo.models import unet  # noqa: F401
from zoo.models import yolo  # noqa: F401
