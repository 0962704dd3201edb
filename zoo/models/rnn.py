"""Recurrent sequence classifiers: simple RNN, LSTM and GRU cells, optionally bidirectional."""

from __future__ import annotations

import keras

from zoo import contract
from zoo.recipes import Recipe
from zoo.registry import register_model

CELLS = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}

# "scale": 8-bit images read row by row go to [0, 1] (raw 0-255 saturates the gates); float sequences pass
# through unchanged (their scale is 1).
RNN_RECIPE = Recipe(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, early_stopping=5)


@register_model(
    task="sequence",
    input_shape=(28, 28),
    reference="Hochreiter & Schmidhuber 1997 (LSTM); Cho et al. 2014 (GRU); Schuster & Paliwal 1997 (bidirectional)",
    description="Sequence classifier over (timesteps, features) with simple / LSTM / GRU cells, optionally bidirectional.",
    recipe=RNN_RECIPE,
    test_overrides={"input_shape": (6, 4), "classes": 3, "units": 8, "num_layers": 2, "bidirectional": True},
)
def rnn(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="rnn",
    cell="lstm",
    units=64,
    num_layers=1,
    bidirectional=False,
    dropout=0.0,
):
    """A stacked recurrent classifier.

    Args:
        include_top: Whether to include the classifier; without it the model
            returns the last hidden state (or the pooled sequence of states).
        weights: None or a path to a local weights file.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: `(timesteps, features)`; timesteps may be None. Defaults to
            `(28, 28)` (an MNIST image read row by row).
        pooling: None (last hidden state), "avg" or "max" over time.
        classes: Number of classes. Defaults to 10.
        classifier_activation: Defaults to `"softmax"`.
        name: Model name.
        cell: "simple", "lstm" or "gru".
        units: Hidden units per layer.
        num_layers: Stacked recurrent layers.
        bidirectional: Wrap each layer in `Bidirectional`.
        dropout: Dropout on the inputs of each recurrent layer.
    """
    contract.check_common(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    contract.check_choice("cell", cell, CELLS)
    contract.check_int("units", units, min=1)
    contract.check_int("num_layers", num_layers, min=1)
    contract.check_number("dropout", dropout, min=0.0, below=1.0)
    shape = contract.check_input_shape(input_shape, default=(28, 28), rank=2)

    inputs = contract.make_input(shape, input_tensor)
    x = inputs
    for i in range(1, num_layers + 1):
        last = i == num_layers
        layer = CELLS[cell](
            units, return_sequences=not last or pooling is not None, dropout=dropout, name=f"{cell}_{i}"
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
        x = layer(x)
    x = contract.pool(x, pooling)
    if include_top:
        x = contract.classifier(x, classes, classifier_activation)
    model = keras.Model(inputs, x, name=name)
    return contract.load_weights(model, weights)
