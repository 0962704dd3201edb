"""LiteRT (TFLite) flatbuffers: float32, float16, dynamic-range and full-integer int8.

The file holds `graph.portable_function`: uint8 images at the served size `[1, H, W, C]`,
normalised in the graph, the model, the task's portable outputs. int8 is full-integer
(`TFLITE_BUILTINS_INT8`, calibrated on the run's train split) with uint8 input (scale 1, zero
point 0: the pixels themselves) and uint8 float outputs (dequantize with the output's
`quantization`). The graph is frozen to constants and converted with `from_saved_model`
(`from_concrete_functions` with a trackable silently wrote a NaN model; int8 calibration cannot
read variables). Runs with `ai_edge_litert.interpreter.Interpreter` (`runtimes.LiteRT`).
"""

from __future__ import annotations

import tempfile

import numpy as np

NAME = "tflite"
QUANTIZE = ("float16", "dynamic", "int8")
TOLERANCE = {None: 1e-4, "float16": 1e-2, "dynamic": 5e-2, "int8": None}  # None: scored on the test split


def file_name(quantize):
    return f"model_{quantize or 'float32'}.tflite"


def convert(path, float_model, spec, quantize=None, calibration=None):
    """Writes the LiteRT file `path` for the float32 Keras model under `spec` (portable)."""
    import tensorflow as tf

    from zoo.export import graph

    int8 = quantize == "int8"
    model = graph.l2_normalize_layers(float_model)  # LiteRT's L2_NORMALIZATION op: int8 embeddings run
    fn = graph.portable_function(model, spec, float_input=int8 and spec.input_kind != "features", batch=1)
    with tempfile.TemporaryDirectory(prefix="zoo-tflite-") as tmp:
        _save_frozen(fn, tmp)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if int8:
            converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_output_type = tf.uint8
            if spec.input_kind != "features":
                converter.inference_input_type = tf.uint8
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)


def _save_frozen(fn, path):
    """`fn` with its variables folded into constants, saved as a SavedModel with its output names."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = fn.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    def serve(x):
        return tf.nest.pack_sequence_as(structure, tf.nest.flatten(frozen(x)))

    root = tf.Module()
    root.serve = tf.function(serve, input_signature=fn.input_signature, autograph=False)
    tf.saved_model.save(root, path, signatures={"serving_default": root.serve.get_concrete_function()})


def load(path):
    from zoo.export import runtimes

    return runtimes.LiteRT(path)
