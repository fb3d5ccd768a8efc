"""Which ONNX ops TVM's importer converts, answered without importing TVM.

``onnx_ops.txt`` is the key list of the installed TVM's converter map plus
the ops its importer handles itself (``IMPORTER_BUILTINS``);
tests/test_backend_coverage.py regenerates it from TVM and fails if it drifts,
so ``edgec inspect`` stays fast and right.
"""

from __future__ import annotations

import functools
from pathlib import Path

#: What edgec's own passes do about ops TVM lacks.
LOWERED_BY_EDGEC = {"LSTM": "lower-rnn", "GRU": "lower-rnn", "RNN": "lower-rnn"}
OPS_FILE = Path(__file__).with_name("onnx_ops.txt")
#: Ops TVM's ONNX importer handles outside its converter map.
IMPORTER_BUILTINS = frozenset({"If", "Constant"})


@functools.cache
def tvm_onnx_ops() -> frozenset[str]:
    return frozenset(OPS_FILE.read_text().split())


def unsupported(op_types) -> list[str]:
    """The op types in ``op_types`` that neither TVM nor an edgec pass handles."""
    known = tvm_onnx_ops()
    return sorted({op for op in op_types if op not in known and op not in LOWERED_BY_EDGEC})
