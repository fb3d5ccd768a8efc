"""tune(): search faster schedules for a model's edgec kernels (opt-in).

The model goes through the same loading, binding and passes as compile(), so
the kernels tuned are the ones compile() will build; the records land in the
target's tuning database, which later compiles use automatically.
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from .compiler import Progress, load_bound, optimise, plan_compile
from .errors import UsageError
from .frontend import DEFAULT_MAX_MODEL_BYTES
from .passes import DEFAULT_PIPELINE
from .target_registry import Target


def parse_budget(text: str) -> float:
    """'90s', '20m', '1.5h' or plain seconds -> seconds."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--budget {text}: give a time such as 90s, 20m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def tune(model: str | Path, target: str | Target = "host", *,
         input_shapes: dict[str, tuple[int, ...]] | None = None,
         input_consts: dict[str, object] | None = None, pipeline: str = DEFAULT_PIPELINE,
         max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES, db: str | Path | None = None,
         trials: int | None = None, budget_s: float | None = None,
         device: str | None = None, devices: int = 1,
         progress: Progress | None = None, status=None):
    """Tune ``model``'s edgec kernels for ``target`` until ``trials`` candidates
    or ``budget_s`` seconds are spent (whichever first); returns the report.

    ``device`` (``KEY@TRACKER_HOST:PORT``) measures on boards of that key instead of
    this machine, ``devices`` of them in parallel."""
    from .devices import parse_device

    address = parse_device(device) if device is not None else None
    if devices < 1:
        raise UsageError(f"--devices {devices}: give 1 or more")
    if trials is None and budget_s is None:
        raise UsageError("give --trials N or --budget TIME (or both): tuning has no natural end")
    if trials is not None and trials < 1:
        raise UsageError(f"--trials {trials}: give at least 1")
    plan = plan_compile(model, target=target, input_shapes=input_shapes,
                        input_consts=input_consts, pipeline=pipeline,
                        max_model_bytes=max_model_bytes)
    say = progress or (lambda _msg: None)
    say(f"loading {plan.model.name}")
    _, bound = load_bound(plan)
    say(f"running {len(plan.passes)} edgec passes ({plan.pipeline})")
    optimise(plan, bound)
    proto = ir.serde.serialize_model(bound)

    from .backend.tvm import tuner  # the only way into TVM

    say("extracting kernels")
    return tuner.tune_model(proto, plan.target, source=str(plan.model),
                            db_dir=Path(db) if db is not None else None, max_trials=trials,
                            budget_s=budget_s, device=address, devices=devices,
                            progress=status)
