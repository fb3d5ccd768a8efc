"""ONNX conformance (benchmarks/conformance): edgec on the onnx backend node tests.

Fast: the comparison rules (the backend runner's tolerances), the exclusion
checks, crash and timeout isolation, the case floor and exclusions.toml's
form. ``compile``: every 4th case (deterministic) through edgec (as given and
with inputs bound as constants) and onnxruntime, and, with the cross tools, a
sample emulated for aarch64; every
edgec failure must be listed in exclusions.toml and no listed case may pass.
The full suite runs with EDGEC_CONFORMANCE_FULL=1 (or `python
benchmarks/conformance/run_conformance.py --check`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "conformance" / "run_conformance.py"
#: The CI sample: every EVERY-th case (471 of 1884: about a minute on 2 cores).
EVERY = 4


def _load():
    spec = importlib.util.spec_from_file_location("run_conformance", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


rc = _load()


# ------------------------------------------------------------------ comparison


def test_nan_meets_nan_but_not_a_number():
    want = np.array([1.0, np.nan, np.inf], np.float32)
    assert rc.compare([want], [want.copy()]).ok
    v = rc.compare([want], [np.array([1.0, 2.0, np.inf], np.float32)])
    assert not v.ok and v.max_abs == np.inf


def test_float_tolerance_is_the_runners():
    want = np.array([1000.0, 1e-9], np.float32)
    assert rc.compare([want], [np.array([1000.9, 1e-9 + 5e-8], np.float32)]).ok
    v = rc.compare([want], [np.array([1001.5, 1e-9], np.float32)])
    assert not v.ok and "1 of 2 elements differ" in v.detail and v.max_abs == pytest.approx(1.5)


def test_integers_and_bools_must_match_exactly():
    # 1001 is within rtol 1e-3 of 1000, but an integer output must be exact.
    assert not rc.compare([np.array([1000], np.int64)], [np.array([1001], np.int64)]).ok
    assert rc.compare([np.array([1000], np.int64)], [np.array([1000], np.int64)]).ok
    assert not rc.compare([np.array([True])], [np.array([False])]).ok
    int4 = np.array([1, -2], ml_dtypes.int4)
    assert rc.compare([int4], [int4.copy()]).ok


def test_shape_and_dtype_must_match():
    want = np.zeros((2, 3), np.float32)
    v = rc.compare([want], [np.zeros((3, 2), np.float32)])
    assert not v.ok and "shape [3, 2], want [2, 3]" in v.detail
    v = rc.compare([want], [np.zeros((2, 3), np.float64)])
    assert not v.ok and "dtype float64, want float32" in v.detail
    assert not rc.compare([want], []).ok  # an output missing


def test_strings_sequences_and_optionals():
    words = np.array(["a", "bc"], object)
    assert rc.compare([words], [np.array([b"a", b"bc"], object)]).ok
    assert not rc.compare([words], [np.array(["a", "b"], object)]).ok
    seq = [np.ones(2, np.float32), np.zeros(1, np.float32)]
    assert rc.compare([seq], [[s.copy() for s in seq]]).ok
    assert not rc.compare([seq], [seq[:1]]).ok
    assert rc.compare([None], [None]).ok
    assert not rc.compare([None], [np.ones(1)]).ok


def test_bfloat16_gets_two_ulps():
    want = np.array([1.0], ml_dtypes.bfloat16)
    assert rc.compare([want], [np.array([1.0078125], ml_dtypes.bfloat16)]).ok


# ------------------------------------------------------------------ exclusions


def _run(outcomes, *, cases=None, full=False):
    names = cases or sorted({o.case for o in outcomes})
    return rc.Run([rc.Case(n, Path(n), "Op") for n in names], outcomes, full)


def test_check_wants_every_failure_listed_and_no_listed_pass():
    listed = {"case": {"test_b": {"status": "wrong", "reason": "r"},
                       "test_c": {"status": "refused", "reason": "r"},
                       "test_d": {"status": "refused", "reason": "r"}}, "arm": {}}
    run = _run([rc.Outcome("test_a", rc.EDGEC, "wrong", "x", max_abs=0.5),
                rc.Outcome("test_b", rc.EDGEC, "wrong", "x"),
                rc.Outcome("test_c", rc.EDGEC, "pass"),
                rc.Outcome("test_d", rc.EDGEC, "runfail", "y"),
                rc.Outcome("test_a", rc.ORT, "wrong", "onnxruntime's failures are only reported")])
    problems = rc.check(run, listed)
    assert len(problems) == 3, problems
    assert "test_a: edgec wrong (max abs err 0.5) and not in exclusions.toml" in problems[0]
    assert "test_c: passes now; remove [case.test_c]" in problems[1]
    assert "test_d: listed as refused, now runfail" in problems[2]


def test_check_floor_and_stale_names_in_full_runs_only():
    listed = {"case": {"test_gone": {"status": "refused", "reason": "r"}}, "arm": {}}
    run = _run([rc.Outcome("test_a", rc.EDGEC, "pass")], full=True)
    problems = rc.check(run, listed, floor=2)
    assert any("fewer than the floor of 2" in p for p in problems)
    assert any("test_gone: listed in exclusions.toml but no such case" in p for p in problems)
    run.full = False
    assert rc.check(run, listed, floor=2) == []


def test_arm_outcomes_may_repeat_the_host_entry():
    listed = {"case": {"test_a": {"status": "refused", "reason": "r"}},
              "arm": {"test_b": {"status": "runfail", "reason": "r"}}}
    run = _run([rc.Outcome("test_a", rc.EDGEC_ARM, "refused"),
                rc.Outcome("test_b", rc.EDGEC_ARM, "runfail"),
                rc.Outcome("test_c", rc.EDGEC_ARM, "wrong")])
    problems = rc.check(run, listed)
    assert len(problems) == 1 and problems[0].startswith("test_c (emulated aarch64)")


# ------------------------------------------------------- cases and the list


@pytest.fixture(scope="module")
def cases():
    """Every node case; the first call generates them from onnx's case definitions (~10 s)."""
    return rc.discover()


def test_cases_found_above_floor(cases):
    assert len(cases) >= rc.FLOOR
    assert len({c.name for c in cases}) == len(cases)
    abs_case = next(c for c in cases if c.name == "test_abs")
    assert abs_case.op == "Abs"
    assert next(c for c in cases if c.name == "test_softmax_axis_0_expanded").op == \
        "Softmax (expanded)"


def test_exclusions_name_real_cases_with_a_status_and_one_line_reason(cases):
    names = {c.name for c in cases}
    listed = rc.load_exclusions()
    assert listed["case"], "exclusions.toml lists nothing: is it the right file?"
    for section, table in listed.items():
        for name, entry in table.items():
            assert name in names, f"[{section}.{name}]: no such case"
            assert entry.get("status") in rc.FAILURES, f"[{section}.{name}]: bad status"
            reason = entry.get("reason", "")
            assert reason.strip() and "\n" not in reason, f"[{section}.{name}]: bad reason"


def test_a_crash_or_hang_costs_one_case(cases, tmp_path):
    """A worker that dies or hangs is replaced; the cases after it still run."""
    abs_case = next(c for c in cases if c.name == "test_abs")
    tasks = [(abs_case, "selftest:crash"), (abs_case, rc.ORT), (abs_case, "selftest:hang"),
             (abs_case, rc.ORT)]
    outcomes = rc.run_tasks(tasks, jobs=1, timeout=10, log_dir=tmp_path, progress=False)
    assert [o.status for o in outcomes] == ["crash", "pass", "timeout", "pass"]
    assert "SIGSEGV" in outcomes[0].message


# ------------------------------------------------------------------ conformance


def _assert_as_listed(run):
    listed = rc.load_exclusions()
    sections = {engine: section for section, engine in rc.SECTIONS.items()}
    wrong = [f"{o.case} ({o.engine}): {o.message}" for o in run.outcomes
             if o.engine != rc.ORT and o.status == "wrong"
             and o.case not in listed["case"] and o.case not in listed[sections[o.engine]]]
    assert not wrong, ("edgec computes wrong values, not listed in exclusions.toml (list "
                       "them with the reason, then make edgec refuse the op):\n"
                       + "\n".join(wrong))
    problems = rc.check(run, listed)
    assert not problems, "\n".join(problems)


@pytest.mark.compile
def test_conformance_sample(cases):
    """Every EVERY-th case, on 2 workers, as given and with its inputs after the first bound
    as constants: what fails is listed, what is listed fails."""
    sample = rc.select_cases(cases, every=EVERY)
    run = rc.run_conformance(sample, jobs=2, bound=True, progress=False)
    assert len(run.by_engine(rc.EDGEC)) == len(sample)
    assert len(run.by_engine(rc.EDGEC_BOUND)) == sum(c.inputs > 1 for c in sample)
    _assert_as_listed(run)


@pytest.mark.compile
@pytest.mark.cross
@pytest.mark.skipif(bool(rc.missing_arm_tools()),
                    reason="needs qemu-user and the aarch64 cross toolchain (make setup)")
def test_conformance_emulated_sample(cases):
    """A sample of the cases edgec compiles, built for aarch64 and run under qemu-user."""
    sample = rc.select_cases(cases, every=33)
    run = rc.run_conformance(sample, jobs=2, emulate_sample=24, progress=False)
    assert len(run.by_engine(rc.EDGEC_ARM)) >= 10
    _assert_as_listed(run)


@pytest.mark.compile
@pytest.mark.skipif(not os.environ.get("EDGEC_CONFORMANCE_FULL"),
                    reason="the full suite: EDGEC_CONFORMANCE_FULL=1 (about 6 minutes on 2 cores)")
def test_conformance_full(cases):
    run = rc.run_conformance(cases, jobs=2, bound=True, full=True, progress=False)
    assert len(run.cases) >= rc.FLOOR
    _assert_as_listed(run)
