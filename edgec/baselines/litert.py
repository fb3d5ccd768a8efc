"""Run a .tflite model in LiteRT: the reference for models edgec writes itself
(e.g. the int8 TFLite form of an Ethos-U partition, before Vela compiles it).

Only modules under edgec/baselines import LiteRT; everything else calls this.

``kernels`` picks LiteRT's kernels: "default" (what `edgec.baselines.tflite`
benchmarks: the optimised kernels with the XNNPACK delegate), "builtin" (the
optimised kernels alone) or "reference" (TFLite's reference kernels, which
TFLite Micro runs and Vela is designed to match). XNNPACK rescales int8 with
lower-precision multipliers, so its int8 results are off by one step more often.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tflite import TfliteUnavailable, _interpreter

KERNELS = ("default", "builtin", "reference")


def _open(path: Path, threads: int, kernels: str):
    if kernels == "default":
        return _interpreter(path, threads)
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, not {kernels!r}")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise TfliteUnavailable(f"LiteRT (ai-edge-litert) is needed for {kernels} "
                                "kernels") from None
    resolver = (OpResolverType.BUILTIN_REF if kernels == "reference"
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it = Interpreter(model_path=str(path), num_threads=threads,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def run_tflite(path: Path, inputs: list[np.ndarray], *, threads: int = 1,
               kernels: str = "default") -> list[np.ndarray]:
    """The model's outputs for ``inputs``, both in the model's order (set and read by
    index, in the TFLite layout and dtype the model declares)."""
    it = _open(Path(path), threads, kernels)
    details = it.get_input_details()
    if len(details) != len(inputs):
        raise ValueError(f"{path}: the model has {len(details)} inputs, {len(inputs)} given")
    for d, value in zip(details, inputs, strict=True):
        value = np.asarray(value)
        if tuple(value.shape) != tuple(d["shape"]):
            raise ValueError(f"{path}: input {d['name']} wants shape {list(d['shape'])}, "
                             f"got {list(value.shape)}")
        it.set_tensor(d["index"], np.ascontiguousarray(value, dtype=d["dtype"]))
    it.invoke()
    return [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]


class TfliteRunner:
    """One .tflite model opened once and run many times (`run_tflite` opens it per call)."""

    def __init__(self, path: Path, *, threads: int = 1, kernels: str = "default"):
        self.path = Path(path)
        self._it = _open(self.path, threads, kernels)
        self._inputs = self._it.get_input_details()
        self._outputs = self._it.get_output_details()

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The outputs for ``inputs``, as `run_tflite`."""
        if len(self._inputs) != len(inputs):
            raise ValueError(f"{self.path}: the model has {len(self._inputs)} inputs, "
                             f"{len(inputs)} given")
        for d, value in zip(self._inputs, inputs, strict=True):
            value = np.asarray(value)
            if tuple(value.shape) != tuple(d["shape"]):
                raise ValueError(f"{self.path}: input {d['name']} wants shape "
                                 f"{list(d['shape'])}, got {list(value.shape)}")
            self._it.set_tensor(d["index"], np.ascontiguousarray(value, dtype=d["dtype"]))
        self._it.invoke()
        return [np.array(self._it.get_tensor(d["index"])) for d in self._outputs]
