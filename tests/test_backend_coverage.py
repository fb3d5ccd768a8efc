"""The op list edgec inspect uses without TVM must be the installed TVM's own."""

from __future__ import annotations

import pytest

from edgec.backend.tvm.coverage import IMPORTER_BUILTINS, OPS_FILE, tvm_onnx_ops


@pytest.mark.compile
def test_ops_file_matches_installed_tvm():
    from tvm.relax.frontend.onnx import onnx_frontend

    actual = set(onnx_frontend._get_convert_map()) | IMPORTER_BUILTINS
    assert tvm_onnx_ops() == actual, (
        f"{OPS_FILE} is stale: regenerate it from the installed TVM "
        f"(missing {sorted(actual - tvm_onnx_ops())}, extra {sorted(tvm_onnx_ops() - actual)})")


def test_known_gaps_are_listed():
    ops = tvm_onnx_ops()
    assert {"Conv", "MatMul", "If", "Constant"} <= ops
    assert not {"LSTM", "GRU", "RNN", "Loop", "QLinearConv"} & ops
