"""Shrink a failing fuzz graph to a small reproducer and save it as a regression test.

    python benchmarks/fuzz/minimise.py FAILURE.onnx [--level O2] [--name short-name]
        [--dest tests/data/fuzz] [--timeout 120]

``FAILURE.onnx`` is a graph run_fuzz.py kept (``DIR/failures/<graph>-<level>.onnx``,
with a ``.json`` sidecar giving the level and how it failed). The minimiser
greedily applies, while the failure persists (same level, same status and, for
crashes, the same error signature), and until nothing more applies:

1. keep one graph output only, or cut the graph at an intermediate tensor
   (it becomes the only output: everything after it goes);
2. delete a node by rewiring its readers to one of its inputs of the same shape;
3. turn a node's input into a new graph input (everything feeding only it goes);
4. shrink each graph input's dims (halve, minus one), when the graph stays valid.

Every candidate is checked with ``graphgen.check`` (valid, shapes agree with
onnxruntime) and run in a worker process (run_fuzz.Worker), so a crashing
candidate does not stop the search. The result goes to
``DEST/<short-name>.onnx`` with a sidecar ``DEST/<short-name>.json``: seed,
index, level, status, what differs, node counts before and after, the input
seed, and ``xfail``: the reason the regression test expects it to fail until
the bug is fixed (edit it when diagnosing; remove it when fixed).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

import onnx
from onnx import helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import graphgen  # noqa: E402
import run_fuzz  # noqa: E402

DEST = REPO / "tests" / "data" / "fuzz"


def signature(status: str, detail: str) -> str:
    """What must stay the same for a candidate to count as the same failure."""
    if status == "mismatch":
        return "mismatch"
    if status == "timeout":
        return "timeout"
    text = re.sub(r"'[^']*'", "''", detail)
    text = re.sub(r"\d+", "N", text)
    text = re.sub(r"\bv_\w+", "v", text)
    # the error class / check that failed, not the values in it
    m = re.search(r"(Check failed[^:]*|[A-Z]\w+Error|worker died \([^)]*\)|run: \w+)", text)
    return f"{status}:{m.group(1) if m else text[:60]}"


def _outputs_from_ort(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """The model with its outputs' declared shapes set from an onnxruntime run, or None
    when it does not run."""
    try:
        model = graphgen.prune(model)
        if not model.graph.node or not model.graph.input:
            return None
        if {o.name for o in model.graph.output} & {i.name for i in model.graph.input}:
            return None  # a graph input passed straight out: not what is being tested
        del model.graph.value_info[:]
        ref = graphgen.reference(model, graphgen.make_feeds(model))
    except Exception:
        return None
    outs = [helper.make_tensor_value_info(o.name, onnx.TensorProto.FLOAT, list(ref[o.name].shape))
            for o in model.graph.output]
    del model.graph.output[:]
    model.graph.output.extend(outs)
    try:
        graphgen.check(model)
    except Exception:
        return None
    return model


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    out = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.elem_type == onnx.TensorProto.FLOAT and t.HasField("shape"):
            out[vi.name] = [d.dim_value for d in t.shape.dim]
    return out


def candidates(model: onnx.ModelProto):
    """Smaller variants of ``model``, biggest cuts first."""
    g = model.graph
    shapes = _shapes(model)
    inits = {t.name for t in g.initializer}
    # 1. one output only; cut at an intermediate
    if len(g.output) > 1:
        for o in g.output:
            m = copy.deepcopy(model)
            keep = [x for x in m.graph.output if x.name == o.name]
            del m.graph.output[:]
            m.graph.output.extend(keep)
            yield "keep output " + o.name, m
        for o in g.output:
            m = copy.deepcopy(model)
            keep = [x for x in m.graph.output if x.name != o.name]
            del m.graph.output[:]
            m.graph.output.extend(keep)
            yield "drop output " + o.name, m
    for node in g.node:
        for t in node.output:
            if t in shapes and t not in {o.name for o in g.output}:
                m = copy.deepcopy(model)
                del m.graph.output[:]
                m.graph.output.extend([helper.make_tensor_value_info(
                    t, onnx.TensorProto.FLOAT, shapes[t])])
                yield f"cut at {t}", m
    # 2. bypass a node
    for i, node in enumerate(g.node):
        out = node.output[0]
        for src in node.input:
            if not src or src in inits or shapes.get(src) != shapes.get(out) or out not in shapes:
                continue
            m = copy.deepcopy(model)
            del m.graph.node[i]
            for n in m.graph.node:
                for k, name in enumerate(n.input):
                    if name == out:
                        n.input[k] = src
            for o in m.graph.output:
                if o.name == out:
                    o.name = src
            if any(o.name in {x.name for x in m.graph.input} for o in m.graph.output):
                continue
            yield f"bypass {node.name}", m
    # 3. a node's input becomes a graph input
    for node in g.node:
        for src in node.input:
            if not src or src in inits or src in {x.name for x in g.input} or src not in shapes:
                continue
            m = copy.deepcopy(model)
            m.graph.input.append(helper.make_tensor_value_info(src, onnx.TensorProto.FLOAT,
                                                               shapes[src]))
            producer = [k for k, n in enumerate(m.graph.node) if src in n.output]
            for k in reversed(producer):
                del m.graph.node[k]
            yield f"input {src}", m
    # 4. shrink input dims
    for vi in g.input:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for axis, d in enumerate(dims):
            for nd in sorted({d // 2, d - 1} - {0, d}):
                m = copy.deepcopy(model)
                x = next(x for x in m.graph.input if x.name == vi.name)
                x.type.tensor_type.shape.dim[axis].dim_value = nd
                yield f"{vi.name} dim {axis} {d}->{nd}", m


def size(model: onnx.ModelProto) -> tuple[int, int, int]:
    """What the minimiser shrinks: nodes, input elements, outputs."""
    elems = 0
    for vi in model.graph.input:
        n = 1
        for d in vi.type.tensor_type.shape.dim:
            n *= d.dim_value
        elems += n
    return len(model.graph.node), elems, len(model.graph.output)


class Oracle:
    """Runs candidates at ``level`` in a worker and says whether they fail the same way."""

    def __init__(self, level: str, want: str, timeout: float, work: Path):
        self.level, self.want, self.timeout, self.work = level, want, timeout, work
        self.worker = run_fuzz.Worker(0, work, run_fuzz.worker_env())
        self.runs = 0

    def __call__(self, model: onnx.ModelProto) -> run_fuzz.Outcome | None:
        path = self.work / f"cand{self.runs}.onnx"
        self.runs += 1
        onnx.save(model, str(path))
        o = self.worker.run({"graph": "cand", "path": str(path), "level": self.level},
                            self.timeout)
        path.unlink(missing_ok=True)
        return o if signature(o.status, o.detail) == self.want else None

    def close(self) -> None:
        self.worker.close()


def minimise(model: onnx.ModelProto, level: str, status: str, detail: str, *,
             timeout: float = 120.0, log=print) -> tuple[onnx.ModelProto, run_fuzz.Outcome]:
    """The smallest variant found that fails as (status, detail) did."""
    want = signature(status, detail)
    with tempfile.TemporaryDirectory(prefix="edgec-minimise-") as tmp:
        oracle = Oracle(level, want, timeout, Path(tmp))
        try:
            first = oracle(model)
            if first is None:
                raise SystemExit(f"the model does not fail as recorded ({want}) at {level}")
            best, best_outcome = model, first
            progress = True
            while progress:
                progress = False
                for what, cand in candidates(best):
                    cand = _outputs_from_ort(cand)
                    if cand is None or size(cand) >= size(best):
                        continue
                    o = oracle(cand)
                    if o is not None:
                        log(f"  {what}: {size(best)} -> {size(cand)} "
                            "(nodes, input elements, outputs)")
                        best, best_outcome, progress = cand, o, True
                        break
            log(f"  {oracle.runs} runs")
        finally:
            oracle.close()
    return best, best_outcome


def short_name(model: onnx.ModelProto, level: str, status: str) -> str:
    ops = "-".join(dict.fromkeys(n.op_type.lower() for n in model.graph.node))[:40]
    h = hashlib.sha256(model.SerializeToString()).hexdigest()[:6]
    return f"{status}-{level.lower()}-{ops}-{h}"


def minimise_failure(path: Path, *, level: str | None = None, name: str | None = None,
                     dest: Path = DEST, timeout: float = 120.0) -> Path:
    """Minimise a run_fuzz failure (``path`` and its ``.json`` sidecar) into ``dest``."""
    meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(
        ".json").exists() else {}
    level = level or meta["level"]
    model = onnx.load(str(path))
    status, detail = meta.get("status"), meta.get("detail", "")
    if status is None:  # no sidecar: run once to see how it fails
        with tempfile.TemporaryDirectory() as tmp:
            w = run_fuzz.Worker(0, Path(tmp), run_fuzz.worker_env())
            o = w.run({"graph": "x", "path": str(path), "level": level}, timeout)
            w.close()
        status, detail = o.status, o.detail
    before = size(model)
    small, outcome = minimise(model, level, status, detail, timeout=timeout)
    name = name or short_name(small, level, status)
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(small, str(dest / f"{name}.onnx"))
    sidecar = {
        "seed": meta.get("seed"), "index": meta.get("index"), "level": level,
        "status": outcome.status, "detail": outcome.detail, "original_detail": detail,
        "nodes_before": before[0], "nodes": size(small)[0],
        "ops": [n.op_type for n in small.graph.node], "input_seed": run_fuzz.INPUT_SEED,
        "xfail": f"unfixed edgec bug found by the fuzzer: {status} at {level} "
                 "(diagnosis pending)",
    }
    (dest / f"{name}.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return dest / f"{name}.onnx"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--level", help="O0..O3 or int8 (default: the sidecar's)")
    ap.add_argument("--name", help="short name of the reproducer (default: from its ops)")
    ap.add_argument("--dest", type=Path, default=DEST)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    out = minimise_failure(args.model, level=args.level, name=args.name, dest=args.dest,
                           timeout=args.timeout)
    print(out)
    print(out.with_suffix(".json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
