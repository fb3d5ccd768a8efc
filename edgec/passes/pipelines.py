"""Named pipelines (ordered pass lists) and the runner that reports what each pass did.

``-O0`` .. ``-O3`` select the pipelines ``O0`` .. ``O3``; ``--pipeline`` takes
a pipeline name or a comma-separated list of pass names. The runner records
node counts before and after every pass (the compile report and the manifest
show them) and hands each intermediate model to an observer (--save-temps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import onnx_ir as ir

from ..errors import CompileError, EdgecError, UsageError, first_line
from .registry import PASSES, count_nodes

PIPELINES: dict[str, tuple[str, ...]] = {}
PIPELINE_DOCS: dict[str, str] = {}


def define_pipeline(name: str, doc: str, passes: tuple[str, ...]) -> None:
    if name in PIPELINES:
        raise ValueError(f"pipeline {name!r} is defined twice")
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        raise ValueError(f"pipeline {name!r} names unknown passes {unknown}")
    PIPELINES[name] = passes
    PIPELINE_DOCS[name] = doc


# lower-qlinear runs before anything else looks at the graph: it needs only
# constants (canonicalize makes initializers listed as inputs constant), and
# shape inference then types the QDQ nodes it wrote.
_FRONT = ("canonicalize", "lower-qlinear", "shape-inference")
define_pipeline("O0", "only what import needs: canonicalise, rewrite QLinear/ConvInteger ops "
                      "into QDQ form, infer shapes, unroll RNNs",
                (*_FRONT, "lower-rnn"))
define_pipeline("O1", "O0 plus constant/shape folding (If on constants) and dead-node removal",
                (*_FRONT, "fold-constants", "remove-dead", "shape-inference", "lower-rnn",
                 "fold-constants", "remove-dead", "shape-inference"))
_O2 = (*_FRONT, "fold-constants", "remove-dead", "shape-inference", "lower-rnn", "simplify",
       "fuse-batchnorm", "fuse-pad", "relu-through-concat", "fold-constants",
       "eliminate-identity", "cse", "remove-dead", "shape-inference")
define_pipeline("O2", "default: O1 plus algebraic simplification, BatchNorm and Pad fused "
                      "into Conv, Relu moved ahead of Concat, common subexpressions merged",
                _O2)
define_pipeline("O3", "O2 with unlimited folding: generated weights become constants "
                      "(bigger artifact)",
                tuple("fold-constants-all" if p == "fold-constants" else p for p in _O2))
DEFAULT_PIPELINE = "O2"
# What other engines get from edgec (bench's TFLite conversion): shapes bound,
# every constant materialised (onnx2tf mishandles weights computed by
# ConstantOfShape) and recurrent ops unrolled (onnx2tf fails on silero's LSTM);
# no fusions made for TVM's sake.
define_pipeline("static", "bind, fold everything, unroll RNNs: the static-shape model handed "
                          "to other engines",
                (*_FRONT, "fold-constants-all", "remove-dead", "shape-inference", "lower-rnn",
                 "remove-dead", "shape-inference"))


def resolve_pipeline(spec: str) -> tuple[str, tuple[str, ...]]:
    """A pipeline name or 'pass1,pass2' -> (label, pass names)."""
    if spec in PIPELINES:
        return spec, PIPELINES[spec]
    names = tuple(p.strip() for p in spec.split(",") if p.strip())
    unknown = [p for p in names if p not in PASSES]
    if not names or unknown:
        raise UsageError(f"--pipeline '{spec}': unknown pipeline or pass "
                         f"{', '.join(unknown) or spec!r}; pipelines: {', '.join(PIPELINES)}; "
                         "run 'edgec passes' for pass names")
    return "custom", names


@dataclass(frozen=True)
class PassReport:
    name: str
    nodes_before: int
    nodes_after: int
    modified: bool
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


Observer = Callable[[int, str, ir.Model], None]


def run_pipeline(model: ir.Model, passes: tuple[str, ...], *,
                 observer: Observer | None = None) -> list[PassReport]:
    """Run ``passes`` in order on ``model`` (in place)."""
    reports = []
    for i, name in enumerate(passes):
        before = count_nodes(model)
        t0 = time.perf_counter()
        try:
            result = PASSES[name].factory()(model)
        except EdgecError:
            raise
        except Exception as exc:  # a library bug must still read as one line
            raise CompileError(f"pass '{name}' failed: {first_line(exc)}; rerun with --debug and "
                               "--save-temps DIR and report it") from exc
        model = result.model
        reports.append(PassReport(name, before, count_nodes(model), bool(result.modified),
                                  round(time.perf_counter() - t0, 4)))
        if observer is not None:
            observer(i, name, model)
    return reports
