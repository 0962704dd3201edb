"""ONNX (opset 17) via tf2onnx, and ONNX Runtime static int8 (QDQ) quantization.

The file holds `graph.portable_function`: uint8 images at the served size `[N, H, W, C]` (any N),
normalised in the graph, the model, the task's portable outputs. int8: `quantize_static` in QDQ
format, per-channel weights, calibrated (MinMax) on the run's train split. Runs with
`onnxruntime.InferenceSession` (`runtimes.OnnxRuntime`).
"""

from __future__ import annotations

import os
import tempfile

NAME = "onnx"
OPSET = 17
QUANTIZE = ("int8",)
TOLERANCE = {None: 1e-4, "int8": None}  # None: scored on the test split


def file_name(quantize):
    return f"model_{quantize}.onnx" if quantize else "model.onnx"


def convert(path, float_model, spec, quantize=None, calibration=None):
    """Writes the ONNX file `path` for the float32 Keras model under `spec` (portable)."""
    import tf2onnx

    from zoo.export import graph

    fn = graph.portable_function(float_model, spec)
    if not quantize:
        tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=OPSET, output_path=path)
        return
    with tempfile.TemporaryDirectory(prefix="zoo-onnx-") as tmp:
        float_path = os.path.join(tmp, "model.onnx")
        tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=OPSET, output_path=float_path)
        _quantize_int8(float_path, path, fn.input_signature[0].name, calibration)


def _quantize_int8(src, dst, input_name, calibration):
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {input_name: x[None]}

    with tempfile.TemporaryDirectory(prefix="zoo-onnx-pre-") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        q.quant_pre_process(src, pre, skip_symbolic_shape=True)
        q.quantize_static(pre, dst, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)


def load(path):
    from zoo.export import runtimes

    return runtimes.OnnxRuntime(path)
