"""edgec: an edge and mobile inference compiler (ONNX in, verified TVM artifact out).

    import edgec
    art = edgec.compile("model.onnx", target="x86", output="model.edgec")
    outputs = edgec.load("model.edgec").run({"x": x})

Importing edgec does not import TVM; compiling and running do.
"""

__version__ = "0.1.0"

from .api import compile, inspect, load, resolve_target, targets, verify
from .artifact import Artifact, TensorSpec
from .errors import EdgecError
from .targets import Target

__all__ = ["Artifact", "EdgecError", "Target", "TensorSpec", "__version__", "compile",
           "inspect", "load", "resolve_target", "targets", "verify"]
