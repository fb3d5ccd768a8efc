"""edgec's graph passes on the ONNX-level IR (onnx-ir), and the pipelines that order them."""

# Importing the modules registers their passes.
from . import cleanup, fold, fusion, lower_qlinear, lower_rnn, shapes  # noqa: F401
from .pipelines import (
    DEFAULT_PIPELINE,
    PIPELINE_DOCS,
    PIPELINES,
    PassReport,
    resolve_pipeline,
    run_pipeline,
)
from .registry import PASSES, count_nodes

__all__ = [
    "DEFAULT_PIPELINE",
    "PASSES",
    "PIPELINES",
    "PIPELINE_DOCS",
    "PassReport",
    "count_nodes",
    "resolve_pipeline",
    "run_pipeline",
]
