"""What the CLI prints when its output is not a terminal (a log file, a pipe,
CI): whole rows and whole numbers, not rich's 80-column cut with ellipses."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

from edgec.passes import PASSES


def _piped(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    res = subprocess.run([sys.executable, "-m", "edgec.cli", *args], capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_piped_tables_keep_whole_cells():
    text = _piped("passes")
    assert "…" not in text
    for p in PASSES.values():  # every description whole, on the pass's own row
        row = next(ln for ln in text.splitlines() if f" {p.name} " in ln)
        assert p.description in row, (p.name, row)


def test_piped_lines_are_not_wrapped_at_80_columns():
    """inspect's header row (file size and sha256: 95 columns) stays one line."""
    import hashlib

    model = REPO / "models" / "tiny_cnn.onnx"
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    text = _piped("inspect", str(model))
    assert "…" not in text
    assert any(digest in ln and "size" in ln for ln in text.splitlines()), text
