"""edgec: an edge and mobile inference compiler (ONNX in, verified TVM artifact out).

    import numpy as np
    import edgec

    art = edgec.compile("model.onnx", target="x86", output="model.edgec")
    outputs = edgec.load("model.edgec").run({"x": np.zeros((1, 3, 224, 224), np.float32)})
    assert edgec.verify("model.onnx", "model.edgec").ok

The API mirrors the command line (see the README):

- `compile` builds an artifact for a target and returns it as an `Artifact`;
- `load` opens an artifact; `Artifact.run` runs it, `Artifact.session` keeps
  it loaded and times it (`edgec.runtime.session.Session`);
- `verify` compares an artifact with onnxruntime
  (`edgec.verification.VerifyReport`);
- `inspect` describes a model without compiling it
  (`edgec.model_info.ModelInfo`); `offload_report` says how it splits between
  an accelerator target's NPU and its CPU (`edgec.accel`);
- `targets` and `resolve_target` read the target files into `Target` values;
- every error is an `EdgecError` (subclasses in `edgec.errors`), with a
  one-line `message` and the CLI's `exit_code`.

Importing edgec loads neither TVM nor the compiler: ``load`` and
``Artifact.run`` need only the TVM runtime, and ``compile``, ``verify`` and
``inspect`` import the compiler side when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .artifact import Artifact, TensorSpec
from .errors import EdgecError
from .quantize.options import Preprocess, QuantizeOptions
from .target_registry import Target, resolve_target

_COMPILER_API = ("compile", "verify", "inspect", "offload_report", "targets")


def load(path) -> Artifact:
    """Open the artifact at ``path`` (a ``.edgec`` file) and return it as an `Artifact`.

    Every member's sha256 is checked now, before anything is loaded; whether
    this machine can run it is checked on the first run.

    Raises:
        edgec.errors.UsageError: ``path`` does not exist or is a folder (exit code 2).
        edgec.errors.ArtifactError: not an artifact, truncated, tampered with or of
            an unsupported format version (exit code 7).
    """
    return Artifact(path)


def __getattr__(name: str):
    if name in _COMPILER_API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgec' has no attribute {name!r}")


__all__ = ["Artifact", "EdgecError", "Preprocess", "QuantizeOptions", "Target", "TensorSpec",
           "__version__", "compile", "inspect", "load", "offload_report", "resolve_target",
           "targets", "verify"]
