"""Quantisation: options, calibration data, and onnxruntime-calibrated QDQ graphs.

No TVM here: this side decides ranges and writes a standard QDQ ONNX graph;
the TVM backend (backend/tvm/quantized.py) turns it into integer kernels.
Only the options load with ``import edgec``; the rest (onnx, onnxruntime)
loads on first use, so running an artifact never imports them.
"""

from .options import METHODS, MODES, Preprocess, QuantizeOptions

_LAZY = {"Calibration": "calibration", "load_calibration": "calibration",
         "QuantSummary": "static", "quantize_int8": "static"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'edgec.quantize' has no attribute {name!r}")


__all__ = ["METHODS", "MODES", "Calibration", "Preprocess", "QuantSummary", "QuantizeOptions",
           "load_calibration", "quantize_int8"]
