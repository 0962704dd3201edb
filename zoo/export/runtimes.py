"""Run a LiteRT or ONNX export with its own runtime and numpy only (no TensorFlow, no project).

    >>> model = load("saved_models/lenet5/3/model_int8.tflite")
    >>> model(images_uint8)            # [N, H, W, C] at the served size -> {"probabilities": ..., "classes": ...}

Also a standalone file: copy it next to an export and `import runtimes`.
"""

from __future__ import annotations

import os

import numpy as np


class LiteRT:
    """A `.tflite` file in `ai_edge_litert`: `model(batch) -> {output name: numpy}`.

    Inputs are quantized with the file's own scale and zero point when their dtype differs
    (an int8 file's uint8 input has scale 1, zero point 0: pixels go in unchanged); quantized
    outputs come back dequantized to float32.
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = os.fspath(path)
        self.interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        self.input_name, self.input = next(iter(self.runner.get_input_details().items()))
        self.outputs = self.runner.get_output_details()

    def __call__(self, batch):
        x = np.asarray(batch)
        scale, zero = self.input["quantization"]
        if scale and x.dtype != self.input["dtype"]:
            x = np.round(x / scale + zero)
        out = {}
        for i in range(len(x)):  # one example a call (the file's batch is 1 unless resized)
            for name, value in self.runner(**{self.input_name: x[i:i + 1].astype(self.input["dtype"])}).items():
                out.setdefault(name, []).append(_dequantize(value, self.outputs[name]))
        return {k: np.concatenate(v) for k, v in out.items()}

    def describe(self):
        """{"inputs": {name: {dtype, shape, quantization}}, "outputs": {...}}."""
        def one(d):
            shape = d.get("shape_signature", d["shape"])
            return {"dtype": np.dtype(d["dtype"]).name, "shape": [None if v < 0 else int(v) for v in shape],
                    "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]}

        return {"inputs": {self.input_name: one(self.input)}, "outputs": {k: one(v) for k, v in self.outputs.items()}}


def _dequantize(value, detail):
    scale, zero = detail["quantization"]
    if scale and value.dtype in (np.uint8, np.int8):
        return ((value.astype(np.float32) - zero) * scale).astype(np.float32)
    return value


class OnnxRuntime:
    """A `.onnx` file in ONNX Runtime (CPU): `model(batch) -> {output name: numpy}`."""

    def __init__(self, path, num_threads=None):
        import onnxruntime as ort

        self.path = os.fspath(path)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch):
        return dict(zip(self.names, self.session.run(self.names, {self.input.name: np.asarray(batch)})))

    def describe(self):
        def one(d):
            return {"dtype": d.type, "shape": [v if isinstance(v, int) else None for v in d.shape]}

        return {"inputs": {self.input.name: one(self.input)},
                "outputs": {o.name: one(o) for o in self.session.get_outputs()}}


RUNTIMES = {".tflite": LiteRT, ".onnx": OnnxRuntime}


def load(path, num_threads=None):
    """The runtime for a `.tflite` or `.onnx` file."""
    ext = os.path.splitext(os.fspath(path))[1]
    if ext not in RUNTIMES:
        raise ValueError(f"{os.fspath(path)!r} is not a .tflite or .onnx file.")
    return RUNTIMES[ext](path, num_threads=num_threads)
