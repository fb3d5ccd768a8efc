"""Quantisation: options, calibration data, and onnxruntime-calibrated QDQ graphs.

No TVM here: this side decides ranges and writes a standard QDQ ONNX graph;
the TVM backend (backend/tvm/quantized.py) turns it into integer kernels.
"""

from .calibration import Calibration, load_calibration
from .options import METHODS, MODES, Preprocess, QuantizeOptions
from .static import QuantSummary, quantize_int8

__all__ = ["METHODS", "MODES", "Calibration", "Preprocess", "QuantSummary", "QuantizeOptions",
           "load_calibration", "quantize_int8"]
