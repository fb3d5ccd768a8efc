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
KNOWN_FAILING: dict[str, str] = {}


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
