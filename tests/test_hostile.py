"""The hostile-input corpus (benchmarks/hostile), CI-sized: make_corpus.all_cases(ci=True),
no 10^6-node models and none of NOT_IN_CI (variants `make hostile` runs).

Every case must end in its expected outcome: exit 0 where the input is valid, else
one ``edgec: error:`` line with an allowed exit code; never a crash, hang, internal
error, traceback or stray file. KNOWN_FAILING lists the cases that fail on main
today; each is a strict xfail, so a fix that makes one pass fails this test until
its entry is removed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HOSTILE = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile"
sys.path.insert(0, str(HOSTILE))

import make_corpus  # noqa: E402
import run_hostile  # noqa: E402

#: per command; the slowest valid case (a 10^5-node compile) must fit in it
TIMEOUT = float(os.environ.get("EDGEC_HOSTILE_TIMEOUT", "60"))
MEM = 4 << 30

# Failing on main today (run_hostile.py --trace names where); each a strict xfail.
KNOWN_FAILING: dict[str, str] = {
    "dims-constantofshape-2^36-O2":
        "TVM's constant folding materialises ConstantOfShape's 256 GiB: std::bad_alloc, exit 6 "
        "(backend/tvm/build.py _build)",
    "dims-huge-input-2^40":
        "compile writes the artifact, then opens it (compiler.compile_plan: Artifact(output)) "
        "and the manifest schema refuses its 4 TiB input (over MAX_TENSOR_BYTES): exit 7, "
        "the artifact left behind",
    "name-100k-chars":
        "compile writes the artifact, then opens it (compiler.compile_plan: Artifact(output)) "
        "and the manifest schema refuses the 100 000-character input name (over "
        "MAX_NAME_CHARS): exit 7, the artifact left behind",
    "fold-if-constant-branches-O0":
        "TVM's importer fails on an If whose branches hold Constant ('cannot handle ShapeExpr "
        "inputs', exit 6) and TVM's 'BlockBuilder destroyed' warning is a second stderr line "
        "(backend/tvm/importer.py import_onnx)",
    "idx-embedding-int64-wrap":
        "int64 ids for an int32 input are cast with wrap-around (2^32+5 -> 5) before the "
        "bounds check: exit 0",
    "idx-gather-uint64":
        "uint64 id 2^64-1 is cast to int64 -1 (wrap-around) before the bounds check, a valid "
        "index: exit 0",
    "in-npy-header-huge":
        "np.load allocates the 4 TiB the .npy header declares before any check "
        "(specs.load_array_file): MemoryError, exit 70",
    "in-npz-header-huge":
        "np.load allocates the 32 GiB an .npz member's header declares before any check "
        "(specs.load_array_file): MemoryError, exit 70",
    "out-profile-trace-onto-artifact":
        "profile --trace is checked without the artifact as an input (cli._check_outputs): "
        "the artifact is overwritten, exit 0",
    "out-run-onto-input-data":
        "run -o is checked against the artifact only, not the --input files (cli.run_cmd): "
        "the .npy is overwritten, exit 0",
    "out-trailing-slash":
        "click.Path(path_type=Path) drops the trailing '/' before check_output sees it: a file "
        "named out/new is written, exit 0",
    "out-verify-json-onto-model":
        "verify --json is checked without the model as an input (cli._check_outputs): the "
        "model is overwritten, exit 0",
    "pb-bitflip-weights":
        "verification.compare_output's np.abs(g - f) on inf - inf prints a numpy RuntimeWarning on "
        "stderr",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Build the CI-sized corpus and run every case once (both CPUs), shared by the
    tests below."""
    corpus = tmp_path_factory.mktemp("hostile-corpus")
    make_corpus.write_corpus(corpus, ci=True)
    res = run_hostile.run_all(corpus, timeout=TIMEOUT, mem=MEM,
                              scratch=tmp_path_factory.mktemp("hostile-scratch"))
    return {r["name"]: r for r in res}


def _params():
    for case in make_corpus.all_cases(ci=True):
        marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[case.name])]
                 if case.name in KNOWN_FAILING else [])
        yield pytest.param(case.name, marks=marks, id=case.name)


def test_known_failing_names_exist():
    """A renamed or removed case must not leave a stale KNOWN_FAILING entry behind."""
    names = {c.name for c in make_corpus.all_cases(ci=True)}
    assert sorted(set(KNOWN_FAILING) - names) == []


@pytest.mark.compile
@pytest.mark.parametrize("name", list(_params()))
def test_case_ends_as_expected(results, name):
    r = results[name]
    if r["class"] == "skipped":
        pytest.skip(r["problems"][0])
    detail = (f"{r['class']}: {' '.join(r['command'])!r} exit {r['exit']} (allowed "
              f"{r['expect']['exit']}); {'; '.join(r['problems'])}; stderr: "
              f"{r['stderr_first']}")
    assert r["class"] in ("ok", "clear_error"), detail
