"""edgec: an edge and mobile inference compiler (ONNX in, verified TVM artifact out).

    import edgec
    art = edgec.compile("model.onnx", target="x86", output="model.edgec")
    outputs = edgec.load("model.edgec").run({"x": x})

Importing edgec loads neither TVM nor the compiler: ``load`` and
``Artifact.run`` need only the TVM runtime, and ``compile``, ``verify`` and
``inspect`` import the compiler side when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .artifact import Artifact, TensorSpec
from .errors import EdgecError
from .target_registry import Target, resolve_target

_COMPILER_API = ("compile", "verify", "inspect", "targets")


def load(path) -> Artifact:
    """Open an artifact (hashes checked now, host compatibility on first run)."""
    return Artifact(path)


def __getattr__(name: str):
    if name in _COMPILER_API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgec' has no attribute {name!r}")


__all__ = ["Artifact", "EdgecError", "Target", "TensorSpec", "__version__", "compile",
           "inspect", "load", "resolve_target", "targets", "verify"]
