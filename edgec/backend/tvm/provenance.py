"""Which ONNX nodes each compiled TVM kernel came from, recorded at compile time.

The runtime has only the compiled library, whose kernels TVM names
(``fused_conv2d_add_relu1``), so ``edgec profile`` can say where a kernel
came from only if the compiler wrote it into the manifest. TVM's ONNX
importer keeps no node names; ``Tracker`` follows them through one build:

1. ``importing``: TVM's importer, subclassed, notes per ONNX node the
   Relax expression its converter returned (the conversion is TVM's own);
2. ``tag``: walking the imported ``main`` node by node, every binding
   reachable from a node's result and not claimed by an earlier node is
   that node's (what its converter emitted, and the result Relax binds
   later); those vars are renamed ``onnx<i>_<Op>``, because names survive
   Relax's passes where object identity does not (and relax-*.py of
   ``--save-temps`` become readable);
3. ``pass_context``: a PassInstrument keeps the module right before
   ``FuseOps`` and reads the one right after it: each call of a fused
   function (attr ``Primitive``) is matched, binding by binding, with the
   tagged bindings it replaced (see ``kernels_after_fusion``); a
   ``call_tir`` left in ``main`` gets the node of the binding it still is.
   ``FuseTIR`` keeps the fused function's name for the TIR kernel, which is
   the symbol the Relax VM calls;
4. ``kernels``: the table for every kernel the final module calls.

Node names are those of the graph TVM imported: the model after edgec's own
passes (the last ``NN-*.onnx`` of ``--save-temps``); a node a rewrite made
(BatchNorm folded into a Conv) keeps the name of the node it replaced and
``rewritten_by`` names the rule. Bindings TVM's passes create themselves
carry no tag; a kernel made only of those lists no nodes.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import tvm
from tvm import relax

from ...errors import first_line

_TAG = re.compile(r"^onnx(\d+)_")
_RULE_KEY = "pkg.onnxscript.rewriter.rule_name"  # set by onnxscript's rewriter
_CALL_TIR = {"relax.call_tir", "relax.call_tir_inplace", "relax.call_tir_with_grad"}


def _importer_recording(converted: list):
    """A subclass of TVM's ONNX importer that appends (node name, op, result) per node."""
    from tvm.relax.frontend.onnx import onnx_frontend

    class RecordingImporter(onnx_frontend.ONNXGraphImporter):
        def _convert_operator(self, op_name, inputs, attrs, opset):
            sym = super()._convert_operator(op_name, inputs, attrs, opset)
            name = (attrs.get("tvm_custom") or {}).get("name") or ""
            converted.append((str(name), op_name, sym))
            return sym

    return RecordingImporter


def _children(expr) -> list:
    if isinstance(expr, relax.Call):
        return list(expr.args)
    if isinstance(expr, relax.Tuple):
        return list(expr.fields)
    if isinstance(expr, relax.TupleGetItem):
        return [expr.tuple_value]
    return []


def _bindings(func: relax.Function) -> list:
    body = func.body
    return [b for block in body.blocks for b in block.bindings] \
        if isinstance(body, relax.SeqExpr) else []


def _h(obj) -> int:
    """Identity of an IR node. Python wrappers are recreated on every access and
    ``==`` on a primitive-typed expression builds an expression, so maps key
    on the node's handle (stable while the module holding it is alive)."""
    return obj.__chandle__()


def _assign(mod: tvm.IRModule, converted: list) -> dict[int, int]:
    """Binding var (handle) -> index of the ONNX node (in ``converted``) it belongs to.

    Node by node in import order, everything reachable from what the
    converter returned, through bindings not yet claimed by an earlier node,
    is the node's: the ops its converter emitted and the one it returned
    (bound later, when the next node uses it).
    """
    bindings = _bindings(mod["main"])
    value_of = {_h(b.var): b.value for b in bindings}
    var_of = {_h(b.value): _h(b.var) for b in bindings}
    owner: dict[int, int] = {}
    for index, (_name, _op, sym) in enumerate(converted):
        stack, seen = [sym], set()
        while stack:
            expr = stack.pop()
            if isinstance(expr, list | tuple):
                stack.extend(expr)
                continue
            if not isinstance(expr, relax.Expr) or _h(expr) in seen:
                continue
            seen.add(_h(expr))
            if isinstance(expr, relax.Var):
                if _h(expr) not in owner and _h(expr) in value_of:
                    owner[_h(expr)] = index
                    stack.append(value_of[_h(expr)])
                continue
            if var_of.get(_h(expr)) is not None and var_of[_h(expr)] not in owner:
                owner[var_of[_h(expr)]] = index
            stack.extend(_children(expr))
    # What the importer binds after a converter returns (TupleGetItem of a
    # multi-output node) belongs to the node it reads.
    for b in bindings:
        if _h(b.var) not in owner:
            src = b.value.tuple_value if isinstance(b.value, relax.TupleGetItem) else b.value
            if isinstance(src, relax.Var) and _h(src) in owner:
                owner[_h(b.var)] = owner[_h(src)]
    return owner


@relax.expr_functor.mutator
class _Renamer(relax.PyExprMutator):
    """Rebinds each tagged var under the name ``onnx<i>_<Op>``; nothing else changes."""

    def __init__(self, names: dict, mod: tvm.IRModule | None = None):
        super().__init__(mod)
        self.names = names

    def _rename(self, var):
        name = self.names.get(_h(var))
        if name is None:
            return var
        new = (relax.DataflowVar if isinstance(var, relax.DataflowVar) else relax.Var)(
            name, var.ty)
        self.set_var_remap(var, new)
        return new

    def visit_var_def_(self, var):
        return self._rename(var)

    def visit_dataflow_var_def_(self, var):
        return self._rename(var)


def _node_of(var) -> int | None:
    m = _TAG.match(var.name)
    return int(m.group(1)) if m else None


def _node_of_name(name: str) -> int | None:
    m = _TAG.match(name)
    return int(m.group(1)) if m else None


def _merge(table: dict[str, list[int]], kernel: str, nodes) -> None:
    have = table.setdefault(kernel, [])
    for n in nodes:
        if n is not None and n not in have:
            have.append(n)


def _tir_call(value):
    """(kernel name, args) of a ``call_tir``-like value, else None."""
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) \
            and value.op.name in _CALL_TIR and isinstance(value.args[0], tvm.ir.GlobalVar):
        args = value.args[1]
        return value.args[0].name_hint, list(args.fields) if isinstance(args, relax.Tuple) \
            else [args]
    return None


def _key(value, lookup, *, loose: bool = False):
    """What a binding computes: op or kernel, and its arguments as references.

    ``lookup`` maps a var to ("v", handle of the pre-fusion var with the same
    value), ("c", handle of a constant) or None. Constants are compared by
    identity, or all alike when ``loose`` (in case a pass copied them).
    """
    def ref(r):
        return "const" if loose and r is not None and r[0] == "c" else r

    def arg(a):
        if isinstance(a, relax.Tuple):
            return tuple(arg(f) for f in a.fields)
        if isinstance(a, tvm.ir.GlobalVar):
            return a.name_hint
        if isinstance(a, relax.Var):
            return ref(lookup(a))
        return ref(("c", _h(a)))

    if isinstance(value, relax.Call):
        op = value.op
        name = op.name if isinstance(op, tvm.ir.Op) else \
            op.name_hint if isinstance(op, tvm.ir.GlobalVar) else None
        return None if name is None else (name, tuple(arg(a) for a in value.args))
    if isinstance(value, relax.TupleGetItem):
        return ("TupleGetItem", arg(value.tuple_value), value.index)
    return None


class _Before:
    """The Relax functions right before FuseOps: what each var computes, its node."""

    def __init__(self, mod: tvm.IRModule) -> None:
        self.mod = mod  # keeps the handles below alive
        self.node: dict[int, int | None] = {}  # var handle -> ONNX node index
        self.exact: dict = {}
        self.loose: dict = {}
        for func in mod.functions.values():
            if isinstance(func, relax.Function):
                self.node.update((_h(p), None) for p in func.params)
                for b in _bindings(func):
                    self.node[_h(b.var)] = _node_of(b.var)
                    key = _key(b.value, lambda v: ("v", _h(v)))
                    if key is not None:
                        self.exact.setdefault(key, _h(b.var))
                        loose = _key(b.value, lambda v: ("v", _h(v)), loose=True)
                        self.loose.setdefault(loose, []).append(_h(b.var))

    def match(self, value, lookup) -> int | None:
        """The pre-fusion var computing what ``value`` computes, if there is one."""
        key = _key(value, lookup)
        if key is None:
            return None
        if key in self.exact:
            return self.exact[key]
        found = self.loose.get(_key(value, lookup, loose=True), [])
        return found[0] if len(found) == 1 else None


def kernels_after_fusion(mod: tvm.IRModule, before: _Before) -> dict[str, list[int]]:
    """Kernel name -> node indices, from the modules right before and after ``FuseOps``.

    FuseOps binds each group's result to a fresh var and reuses one fused
    function for identical groups (every time step of an unrolled LSTM), so
    the tags inside a fused function name one call site only. Each call site
    is therefore replayed: the fused function's bindings, with its params
    bound to the call's arguments, are matched with the pre-fusion bindings
    that compute the same thing, whose tags give that call site's nodes.
    """
    table: dict[str, list[int]] = {}
    fused_funcs = {gv.name_hint: f for gv, f in mod.functions.items()
                   if isinstance(f, relax.Function) and f.attrs is not None
                   and "Primitive" in f.attrs}
    for func in mod.functions.values():
        if not isinstance(func, relax.Function) or \
                (func.attrs is not None and "Primitive" in func.attrs):
            continue
        same: dict[int, int | None] = {}  # var after fusion -> var before with the same value
        tuples: dict[int, list] = {}

        def lookup(v, same=same):
            pre = same.get(_h(v), _h(v) if _h(v) in before.node else None)
            return ("v", pre) if pre is not None else None

        for b in _bindings(func):
            value = b.value
            if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar) \
                    and value.op.name_hint in fused_funcs:
                fused = fused_funcs[value.op.name_hint]
                env = {_h(p): lookup(a) if isinstance(a, relax.Var) else ("c", _h(a))
                       for p, a in zip(fused.params, value.args, strict=False)}
                nodes, packed = [], {}  # packed: tuple var inside -> its fields' matches
                for ib in _bindings(fused):
                    if isinstance(ib.value, relax.Tuple):  # a multi-output group's result
                        packed[_h(ib.var)] = [(env.get(_h(f)) or (None, None))[1]
                                              for f in ib.value.fields]
                        continue
                    match = before.match(ib.value, lambda v, env=env: env.get(_h(v)))
                    env[_h(ib.var)] = ("v", match) if match is not None else None
                    nodes.append(before.node.get(match) if match is not None else None)
                _merge(table, value.op.name_hint, nodes)
                out = fused.body.body
                if isinstance(out, relax.Tuple):
                    tuples[_h(b.var)] = [(env.get(_h(f)) or (None, None))[1] for f in out.fields]
                elif _h(out) in packed:
                    tuples[_h(b.var)] = packed[_h(out)]
                same[_h(b.var)] = (env.get(_h(out)) or (None, None))[1] \
                    if isinstance(out, relax.Var) else None
                continue
            if isinstance(value, relax.TupleGetItem) and _h(value.tuple_value) in tuples:
                same[_h(b.var)] = tuples[_h(value.tuple_value)][value.index]
                continue
            # A binding FuseOps left alone keeps its var; others are found by value.
            match = _h(b.var) if _h(b.var) in before.node else before.match(value, lookup)
            same[_h(b.var)] = match
            call = _tir_call(value)
            if call is not None:
                _merge(table, call[0], [before.node.get(match) if match is not None else None])
    return table


@tvm.instrument.pass_instrument
class FusionRecorder:
    """PassInstrument: reads the kernel table around FuseOps."""

    def __init__(self) -> None:
        self.kernels: dict[str, list[int]] = {}
        self.error: str | None = None
        self._before: _Before | None = None

    def run_before_pass(self, mod, info):
        if info.name == "FuseOps":
            self._guard(lambda: setattr(self, "_before", _Before(mod)))

    def run_after_pass(self, mod, info):
        if info.name == "FuseOps" and self._before is not None:
            self._guard(lambda: setattr(self, "kernels", kernels_after_fusion(mod, self._before)))

    def _guard(self, work) -> None:
        try:
            work()
        except Exception as exc:  # provenance must never break a build
            self.error = f"{type(exc).__name__}: {first_line(exc)}"


def _called_kernels(mod: tvm.IRModule) -> set[str]:
    """TIR functions the final Relax functions call (what the VM will run)."""
    prims = {gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    called: set[str] = set()
    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            for b in _bindings(func):
                call = b.value
                if isinstance(call, relax.Call):
                    if isinstance(call.op, tvm.ir.GlobalVar):
                        called.add(call.op.name_hint)
                    elif _tir_call(call) is not None:
                        called.add(_tir_call(call)[0])
    return called & prims


class Tracker:
    """Follows ONNX nodes through one build: import, tag, pipeline, kernel table.

    Provenance is a diagnostic: if following the nodes fails, the build goes
    on and ``error`` says why (``EDGEC_DEBUG=1`` raises instead).
    """

    def __init__(self, model) -> None:
        self.converted: list[tuple[str, str, object]] = []
        self.rules = {n.name: p.value for n in model.graph.node for p in n.metadata_props
                      if p.key == _RULE_KEY and n.name}
        self.fusion = FusionRecorder()
        self.error: str | None = None
        self.dispatched: dict[str, list[int]] = {}  # edgec kernel -> nodes it replaced

    def note_kernels(self, notes: dict[str, list[str]]) -> None:
        """Nodes of the bindings edgec's own kernels replaced (dispatch.py)."""
        for kernel, var_names in notes.items():
            _merge(self.dispatched, kernel, [_node_of_name(n) for n in var_names])

    @contextlib.contextmanager
    def importing(self) -> Iterator[None]:
        """While active, ``from_onnx`` uses an importer that reports each node it converts."""
        from tvm.relax.frontend.onnx import onnx_frontend

        base = onnx_frontend.ONNXGraphImporter
        onnx_frontend.ONNXGraphImporter = _importer_recording(self.converted)
        try:
            yield
        finally:
            onnx_frontend.ONNXGraphImporter = base

    def tag(self, mod: tvm.IRModule) -> tvm.IRModule:
        """``mod`` with every node's bindings renamed ``onnx<i>_<Op>`` (or unchanged on error)."""
        try:
            owner = _assign(mod, self.converted)
            names = {var: f"onnx{i}_{re.sub(r'[^A-Za-z0-9]', '', self.converted[i][1])}"
                     for var, i in owner.items()}  # var handle -> new name
            tagged = mod.copy() if hasattr(mod, "copy") else mod
            tagged["main"] = _Renamer(names, mod).visit_expr(mod["main"])
            return tagged
        except Exception as exc:
            self._failed(exc)
            return mod

    def pass_context(self) -> tvm.transform.PassContext:
        """A PassContext whose instrument reads the fused functions around FuseOps."""
        return tvm.transform.PassContext(instruments=[self.fusion])

    def kernels(self, final: tvm.IRModule) -> dict[str, dict[str, list[str]]]:
        """The manifest's ``kernels``: {kernel: {"onnx_nodes": [...], "ops": [...]}}.

        Every TIR function the final module calls is listed; one whose nodes
        could not be followed has empty lists.
        """
        try:
            if self.fusion.error:
                raise RuntimeError(self.fusion.error)
            table = {}
            for name in sorted(_called_kernels(final)):
                idx = list(self.fusion.kernels.get(name, []))
                _merge({name: idx}, name, self.dispatched.get(name, []))
                idx.sort()
                nodes = [self.converted[i][0] or f"({self.converted[i][1]} #{i})" for i in idx]
                entry = {"onnx_nodes": nodes, "ops": [self.converted[i][1] for i in idx]}
                rewritten = {n: self.rules[n] for n in nodes if n in self.rules}
                if rewritten:
                    entry["rewritten_by"] = rewritten
                table[name] = entry
            return table
        except Exception as exc:
            self._failed(exc)
            return {}

    def _failed(self, exc: Exception) -> None:
        if os.environ.get("EDGEC_DEBUG"):
            raise exc
        self.error = self.error or f"{type(exc).__name__}: {first_line(exc)}"
