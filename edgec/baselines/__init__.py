"""Other engines run on the same inputs and threads as edgec: onnxruntime and TFLite.

Only modules here import onnxruntime's session API for timing, LiteRT, or
drive TensorFlow/onnx2tf (in their own virtualenv, see tflite.py).
"""

from .timing import EngineRun, time_calls

__all__ = ["EngineRun", "time_calls"]
