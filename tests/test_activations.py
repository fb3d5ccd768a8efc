"""The epilogue's activations (edgec/backend/tvm/kernels/epilogue.py) against
float64 references, over a range that includes where exp overflows and
erf saturates: the kernels compute exp and erf with polynomials of their own
(libm's, one call per element, were 10-50x slower)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tvm
from tvm import te
from tvm.s_tir import Schedule

from edgec.backend.tvm.kernels import epilogue

pytestmark = pytest.mark.compile

X = np.concatenate([np.linspace(-12, 12, 4801), [-1e4, -100, -88.8, -87.5, -1e-30, 0, 1e-30,
                                                  1e-6, 87.5, 88.8, 100, 1e4]])


def _erf(x):
    return np.vectorize(math.erf)(x)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # no overflow in float64


REFERENCES = {
    "sigmoid": _sigmoid,
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
}


def _run(act: str, x: np.ndarray) -> np.ndarray:
    n = x.size
    xt = te.placeholder((n,), "float32", name="x")
    y = te.compute((n,), lambda i: epilogue.activate(xt[i], (act,)), name="y")
    sch = Schedule(te.create_prim_func([xt, y]))
    (i,) = sch.get_loops(sch.get_sblock("y"))
    sch.vectorize(sch.split(i, [None, 8])[1])  # as the kernels run them
    f = tvm.compile(sch.mod, target="llvm")
    dev = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros(n, np.float32), dev)
    f.mod["main"](tvm.runtime.tensor(x.astype(np.float32), dev), out)
    return out.numpy()


@pytest.mark.parametrize("act", list(REFERENCES))
def test_activation_matches_float64(act):
    x = np.resize(X, (X.size + 7) // 8 * 8)
    got = _run(act, x).astype(np.float64)
    want = REFERENCES[act](x.astype(np.float32).astype(np.float64))
    assert np.isfinite(got).all()
    # a few float32 ulps of the output, or absolute where it is below 1; GELU's
    # erf is absolutely accurate (1e-7 near +-1), which x then scales (measured
    # worst: 7.8e-7 at x = -5.6, where GELU(x) = -6e-8)
    tol = 1e-6 if act == "gelu" else 4e-7
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
    worst = np.argmax(err)
    assert err[worst] <= tol, (x[worst], got[worst], want[worst])


def test_exp_matches_float64():
    x = np.linspace(-87, 88, 20001)
    xt = te.placeholder((x.size,), "float32", name="x")
    y = te.compute((x.size,), lambda i: epilogue.fast_exp(xt[i]), name="y")
    f = tvm.compile(te.create_prim_func([xt, y]), target="llvm")
    out = tvm.runtime.tensor(np.zeros(x.size, np.float32), tvm.cpu())
    f(tvm.runtime.tensor(x.astype(np.float32), tvm.cpu()), out)
    want = np.exp(x.astype(np.float32).astype(np.float64))
    assert (np.abs(out.numpy() / want - 1) < 3e-7).all()
