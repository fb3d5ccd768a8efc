"""Which ONNX ops TVM's importer converts, answered without importing TVM.

``onnx_ops.txt`` is the key list of the installed TVM's converter map plus
the ops its importer handles itself (``IMPORTER_BUILTINS``);
tests/test_backend_coverage.py regenerates it from TVM and fails if it drifts,
so ``edgec inspect`` stays fast and right.
"""

from __future__ import annotations

import functools
from pathlib import Path

#: What edgec's own passes do about default-domain ops TVM lacks.
LOWERED_BY_EDGEC = {"LSTM": "lower-rnn", "GRU": "lower-rnn", "RNN": "lower-rnn",
                    "QLinearConv": "lower-qlinear", "QLinearMatMul": "lower-qlinear",
                    "ConvInteger": "lower-qlinear"}
#: Ops outside the default domain an edgec pass rewrites into standard ones
#: (onnxruntime's QOperator format writes these next to QLinearConv).
#: TVM's importer keys converters by op type alone, so every other node of a
#: non-standard domain is refused before import (importer.check_importable).
LOWERED_CONTRIB_BY_EDGEC = {
    ("com.microsoft", op): "lower-qlinear"
    for op in ("QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu",
               "QLinearConcat", "QLinearGlobalAveragePool", "QLinearAveragePool")}
#: Domains whose ops TVM's importer converts (by op type).
DEFAULT_DOMAINS = ("", "ai.onnx")
OPS_FILE = Path(__file__).with_name("onnx_ops.txt")
#: Ops TVM's ONNX importer handles outside its converter map.
IMPORTER_BUILTINS = frozenset({"If", "Constant"})


@functools.cache
def tvm_onnx_ops() -> frozenset[str]:
    return frozenset(OPS_FILE.read_text().split())


def unsupported(op_types) -> list[str]:
    """The default-domain op types in ``op_types`` that neither TVM nor an edgec pass handles."""
    known = tvm_onnx_ops()
    return sorted({op for op in op_types if op not in known and op not in LOWERED_BY_EDGEC})
