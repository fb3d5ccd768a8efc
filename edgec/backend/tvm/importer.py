"""ONNX -> Relax through TVM's importer, with the checks its own errors lack.

TVM's importer stops at the first op it has no converter for with an error
that names neither the node nor what to do; edgec checks every node first.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import re
import traceback
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import CompileError, UnsupportedError, first_line
from .coverage import DEFAULT_DOMAINS, LOWERED_BY_EDGEC, LOWERED_CONTRIB_BY_EDGEC, tvm_onnx_ops
from .fp16_compute import compute_float16_in_float32
from .stable_forms import stable_softplus_mish


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def _label(node: onnx.NodeProto) -> str:
    """The node's name, or (unnamed) with what it produces, so a user can find it."""
    if node.name:
        return node.name
    outs = [o for o in node.output if o]
    return f"(unnamed, output '{outs[0]}')" if outs else "(unnamed)"


def _op_key(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


def _more(bad: list[onnx.NodeProto]) -> str:
    if len(bad) <= 1:
        return ""
    kinds = sorted({_op_key(n) for n in bad})
    return f" and {len(bad) - 1} more node(s) ({', '.join(kinds)})"


_QUANT_WORDS = ("Quant", "QLinear", "Integer", "QGemm", "QAttention", "QOrdered")


def _domain_refusal(node: onnx.NodeProto, more: str) -> str:
    """Why a node outside the default domains cannot be compiled, and what to do."""
    what = f"node '{_label(node)}' ({node.op_type}, domain {node.domain or 'ai.onnx'})"
    lowered = LOWERED_CONTRIB_BY_EDGEC.get((node.domain, node.op_type))
    if lowered is not None:
        return (f"{what} is an onnxruntime contrib op TVM cannot import{more}; edgec's "
                f"'{lowered}' pass lowers it: use a pipeline that includes it (every -O "
                "level does)")
    if node.domain == "com.microsoft":
        if any(w in node.op_type for w in _QUANT_WORDS):
            hint = ("re-export the model with onnxruntime.quantization.quantize_static(..., "
                    "quant_format=QuantFormat.QDQ), which writes only standard ops, and save "
                    "it without onnxruntime's extended graph optimisations")
        else:
            hint = ("save the model without onnxruntime's extended graph optimisations, which "
                    "write contrib ops (graph_optimization_level ORT_ENABLE_BASIC keeps "
                    "standard ops), or re-export it")
        return f"{what} is an onnxruntime contrib op edgec does not implement{more}; {hint}"
    return (f"{what} is in a domain edgec does not implement{more}; only standard ONNX "
            "(ai.onnx) ops compile: replace it in the exporter")


def check_importable(model: onnx.ModelProto, source: str | Path) -> None:
    """Raise UnsupportedError naming the first node (and the count) TVM cannot import.

    TVM's importer picks a converter by op type alone, so a node of another
    domain (onnxruntime's ``com.microsoft`` contrib ops, custom ops) would be
    converted as the standard op of that name, or fail with a message about
    TVM; every such node is refused here, before any of them is looked up.
    """
    nodes = list(_nodes(model.graph))
    foreign = [n for n in nodes if n.domain not in DEFAULT_DOMAINS]
    if foreign:
        raise UnsupportedError(f"{source}: {_domain_refusal(foreign[0], _more(foreign))}")
    known = tvm_onnx_ops()
    bad = [n for n in nodes if n.op_type not in known]
    if not bad:
        return
    node = bad[0]
    lowered = LOWERED_BY_EDGEC.get(node.op_type)
    if lowered == "lower-rnn":
        hint = (f"edgec's '{lowered}' pass lowers it when its shapes are static: bind them "
                "with --input-shape / --input-const")
    elif lowered is not None:
        hint = f"edgec's '{lowered}' pass lowers it: use a pipeline that includes it (every " \
               "-O level does)"
    else:
        hint = "replace it in the exporter or open an issue with the model"
    raise UnsupportedError(f"{source}: node '{_label(node)}' ({node.op_type}) "
                           f"cannot be imported by TVM{_more(bad)}; {hint}")


#: Constant's value attributes other than ``value`` -> how to make them a tensor
_CONSTANT_FORMS = {
    "value_float": lambda a: numpy_helper.from_array(np.array(a.f, np.float32)),
    "value_floats": lambda a: numpy_helper.from_array(np.array(list(a.floats), np.float32)),
    "value_int": lambda a: numpy_helper.from_array(np.array(a.i, np.int64)),
    "value_ints": lambda a: numpy_helper.from_array(np.array(list(a.ints), np.int64)),
}


def _constants_as_tensors(graph: onnx.GraphProto) -> None:
    """Every Constant node's value as the ``value`` tensor TVM's importer reads: it reads
    no other form ("no value in Constant"), and onnxscript's folder, run by edgec's
    fold-constants pass, writes shapes as ``value_ints`` (a third of the node tests
    edgec refused were that)."""
    for node in _nodes(graph):
        if node.op_type != "Constant" or node.domain not in DEFAULT_DOMAINS:
            continue
        for attr in list(node.attribute):
            make = _CONSTANT_FORMS.get(attr.name)
            if make is not None:
                tensor = make(attr)
                node.attribute.remove(attr)
                node.attribute.append(onnx.helper.make_attribute("value", tensor))


@functools.cache
def _converter_source(op_type: str) -> str | None:
    """The source of TVM's converter for ``op_type``, with what it builds on in the
    same module: its bases, and the module's functions and converters it calls
    (shared readers of pads, auto_pad or a scatter's reduction; LpPool runs
    AveragePool's), two levels deep. None when TVM has no converter for it."""
    import inspect

    from tvm.relax.frontend.onnx import onnx_frontend

    cls = onnx_frontend._get_convert_map().get(op_type)
    if cls is None:
        return None
    module = vars(onnx_frontend)

    def source(obj) -> str:
        parts = obj.__mro__ if inspect.isclass(obj) else (obj,)
        return "".join(inspect.getsource(k) for k in parts
                       if getattr(k, "__module__", None) == onnx_frontend.__name__)

    seen, text, todo = {cls}, source(cls), [source(cls)]
    for _ in range(2):
        found = [obj for name, obj in module.items()
                 if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj not in seen
                 and getattr(obj, "__module__", None) == onnx_frontend.__name__
                 and any(re.search(rf"\b{re.escape(name)}[(.]", t) for t in todo)]
        seen.update(found)
        todo = [source(obj) for obj in found]
        text += "".join(todo)
    return text


def _is_default(attr: onnx.AttributeProto, schema_attr) -> bool:
    """Whether ``attr`` holds the value its schema gives it when it is left out."""
    default = schema_attr.default_value
    if default is None or default.type == onnx.AttributeProto.UNDEFINED:
        return False
    return onnx.helper.get_attribute_value(attr) == onnx.helper.get_attribute_value(default)


def check_attributes(model: onnx.ModelProto, source: str | Path) -> None:
    """Refuse a node that sets an attribute TVM's converter for its op never reads
    (its name does not appear in the converter): it would be ignored and the op
    computed as if it were left out. In the node tests that gave wrong values for
    SpaceToDepth's ``mode`` and IsInf's ``detect_negative``/``detect_positive``
    (and Resize's ``antialias`` is not read either). An attribute left at its
    default changes nothing and passes."""
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 0)
    for node in _nodes(model.graph):
        if node.domain not in DEFAULT_DOMAINS or not node.attribute:
            continue
        src = _converter_source(node.op_type)
        if src is None:
            continue
        for attr in node.attribute:
            if f'"{attr.name}"' in src or f"'{attr.name}'" in src:
                continue
            try:
                known = onnx.defs.get_schema(node.op_type, opset).attributes.get(attr.name)
            except onnx.defs.SchemaError:
                known = None
            if known is not None and _is_default(attr, known):
                continue
            raise UnsupportedError(
                f"{source}: node '{_label(node)}' ({node.op_type}) sets attribute "
                f"'{attr.name}', which TVM's importer ignores (it would compute "
                f"{node.op_type} without it); leave it at its default or replace the node in "
                "the exporter")


def import_onnx(model: onnx.ModelProto, source: str | Path, *, float16_in_float32: bool = False):
    """Relax IRModule for a static-shape model, weights embedded as constants;
    ``float16_in_float32``: compute a float16 model in float32 (fp16_compute.py)."""
    from tvm.relax.frontend.onnx import from_onnx

    check_importable(model, source)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    if float16_in_float32:
        compute_float16_in_float32(model)
    _constants_as_tensors(model.graph)
    check_attributes(model, source)
    stable_softplus_mish(model)
    shapes = {}
    for vi in model.graph.input:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    dtypes = {vi.name: onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name
              for vi in model.graph.input}
    chatter = io.StringIO()
    current: dict = {}
    try:
        # TVM's importer prints and warns (e.g. "X in initializer but not in graph
        # input", true of every modern export); keep the user's terminal clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), \
                _watching(current):
            warnings.simplefilter("ignore")
            return from_onnx(model, shape_dict=shapes, dtype_dict=dtypes,
                             keep_params_in_input=False)
    except Exception as exc:  # TVM raises many types; the user needs one line
        # free the importer's half-built BlockBuilder now, while native logging is
        # captured, not at exit ("Warning: BlockBuilder destroyed with remaining blocks!")
        traceback.clear_frames(exc.__traceback__)
        gc.collect()
        if current.get("failed"):
            # a valid node TVM's converter cannot handle (an input it needs constant,
            # an attribute it lacks): unsupported, named, not an edgec bug
            name, op = current["name"], current["op"]
            why = first_line(exc)
            if isinstance(exc, KeyError):  # a dict lookup: an attribute it needs
                why = f"it needs {why}"
            raise UnsupportedError(
                f"{source}: node '{name or '(unnamed)'}' ({op}): TVM's ONNX importer cannot "
                f"convert it ({why}); bind the inputs it needs as constants "
                "(--input-const) if that is what it lacks, else replace it in the exporter"
            ) from exc
        shape_input = re.match(r"Node (.*) cannot handle ShapeExpr inputs", str(exc))
        if shape_input:  # a shape computation TVM keeps symbolic, fed to an op that
            name = shape_input.group(1)  # takes tensors only (an If on Shape(x), at -O0)
            raise UnsupportedError(
                f"{source}: node '{name or '(unnamed)'}' takes a shape computed from another "
                "tensor's shape, which TVM's importer cannot pass to it; compile with -O1 or "
                "higher (edgec folds shape computations) or bind the inputs as constants"
            ) from exc
        where = re.search(r"Error converting operator (\w+)", chatter.getvalue())
        op = f" on a {where.group(1)} node" if where else ""
        raise CompileError(f"{source}: TVM's ONNX importer failed{op}: {first_line(exc)}; rerun "
                           "with --save-temps DIR and report the saved model") from exc


@contextlib.contextmanager
def _watching(current: dict):
    """While active, TVM's importer notes in ``current`` the node it converts and
    whether its converter raised (chained on whatever importer class is in place:
    the provenance tracker installs one too)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    base = onnx_frontend.ONNXGraphImporter

    class Watching(base):
        def _convert_operator(self, op_name, inputs, attrs, opset):
            current.update(op=op_name, name=(attrs.get("tvm_custom") or {}).get("name") or "",
                           failed=False)
            try:
                return super()._convert_operator(op_name, inputs, attrs, opset)
            except Exception:
                current["failed"] = True
                raise

    onnx_frontend.ONNXGraphImporter = Watching
    try:
        yield
    finally:
        onnx_frontend.ONNXGraphImporter = base
