"""edgec tune: MetaSchedule over edgec's kernels, a JSON database per target,
and compiles that pick the fastest record. Real tuning (LocalRunner on this
machine, RPC runner through a tracker on 127.0.0.1), compared with
onnxruntime where a tuned kernel runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, save
from onnx import TensorProto, helper
from test_bad_input import assert_one_line_error

from edgec.artifact import Artifact
from edgec.errors import (
    EXIT_BAD_ARTIFACT,
    EXIT_DEVICE,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
)

pytestmark = pytest.mark.compile

MLP = REPO / "models" / "mlp.onnx"
RECORDS = "database_tuning_record.json"
META = "edgec-tuning.json"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args) -> tuple[int, str]:
    """The CLI in-process (one tune shared by the module: no capsys fixture)."""
    from edgec.cli import main

    return main([str(a) for a in args]), ""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """mlp.onnx tuned with 16 candidates into a fresh database: (db, report)."""
    folder = tmp_path_factory.mktemp("tune")
    db, report = folder / "db", folder / "report.json"
    code, _ = run_cli("tune", MLP, "--trials", 16, "--db", db, "--json", report)
    assert code == 0
    return db, json.loads(report.read_text())


def db_copy(db: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "db"
    shutil.copytree(db, dst)
    return dst


def record_lines(db: Path) -> list[list]:
    return [json.loads(x) for x in (db / RECORDS).read_text().splitlines() if x.strip()]


def searched(rows: list[list]) -> list[int]:
    """Indices of measured candidates: not a template's record (a workload's
    first record is its template's; each round measures the template again)."""
    template = {}
    for r in rows:
        template.setdefault(r[0], r[1][0])
    return [i for i, r in enumerate(rows)
            if r[1][0] != template[r[0]] and r[1][1] and max(r[1][1]) < 1e9]


def test_tune_measures_templates_then_searches(tuned):
    from edgec.backend.tvm.tuning_db import check_files

    db, report = tuned
    tasks = report["tasks"]
    assert [t["kernel"] for t in tasks] == ["edgec_matmul_bias_relu", "edgec_matmul_bias_sigmoid"]
    assert report["trials"] == 16 and sum(t["trials"] for t in tasks) == 16
    for t in tasks:
        assert 0 < t["best_ms"] <= t["template_ms"], t
    assert check_files(db) == len(tasks)  # one workload per kernel, every line well-formed
    rows = record_lines(db)
    # the templates' records come first, one per workload, then the searched ones
    assert [r[0] for r in rows[:len(tasks)]] == list(range(len(tasks)))
    # every candidate counted was measured; the ones that ran are on record
    assert 1 <= len(searched(rows)) <= sum(t["trials"] for t in tasks) == 16
    meta = json.loads((db / META).read_text())
    assert meta["format"] == 1 and meta["target"] == report["target"]


def test_compile_takes_the_fastest_record(tuned, cli, tmp_path):
    """Whatever the search found, compile applies the best record per workload:
    a kernel gets a searched schedule exactly when one beat its template."""
    db, report = tuned
    out = tmp_path / "m.edgec"
    res = cli("verify", MLP, "--tuning-db", db, "-o", out)
    assert res.code == 0, res.err
    faster = sorted(t["kernel"] for t in report["tasks"] if t["best_ms"] < t["template_ms"])
    assert Artifact(out).manifest["tuning"] == {"db": str(db), "tuned_kernels": faster}


def test_searched_schedule_runs_and_matches_onnxruntime(tuned, cli, tmp_path):
    """Make one searched record the fastest on record: compile must use it, and
    the kernel MetaSchedule wrote must still match onnxruntime. A candidate
    whose trace differs from the template's but lowers to the same kernel
    counts as the template (compile reports it so), so the newest candidates
    are tried until one is a different kernel."""
    db = db_copy(tuned[0], tmp_path)
    rows = record_lines(db)
    assert searched(rows), "the search measured no candidate"
    used = None
    for attempt, pick in enumerate(reversed(searched(rows)[-6:])):
        trial = [list(r) for r in rows]
        trial[pick] = [rows[pick][0], [*rows[pick][1][:1], [1e-9], *rows[pick][1][2:]]]
        (db / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in trial))
        kernel = tuned[1]["tasks"][rows[pick][0]]["kernel"]
        out = tmp_path / f"m{attempt}.edgec"
        res = cli("verify", MLP, "--tuning-db", db, "-o", out)
        assert res.code == 0, res.err
        assert "match onnxruntime" in res.out
        if kernel in Artifact(out).manifest["tuning"]["tuned_kernels"]:
            used = kernel
            break
    assert used is not None, "no searched candidate was a kernel of its own"
    res = cli("compile", MLP, "--no-tuning-db", "-o", tmp_path / "plain.edgec")
    assert res.code == 0, res.err
    assert Artifact(tmp_path / "plain.edgec").manifest["tuning"] is None


def test_tune_resumes_from_the_database(tuned, tmp_path):
    from edgec.backend.tvm.tuning_db import check_files

    """A second run keeps the first run's records and counts its trials on top."""
    db = db_copy(tuned[0], tmp_path)
    before = len(record_lines(db))
    code, _ = run_cli("tune", MLP, "--trials", 8, "--db", db, "--json", tmp_path / "r.json")
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["trials"] == 8
    rows = record_lines(db)
    assert before < len(rows) <= before + 8 + 1  # the candidates and the template again
    assert check_files(db) == 2  # the same two workloads
    # the tasks count the candidates on record from the first run plus this run's
    total = sum(t["trials"] for t in report["tasks"])
    assert len(searched(rows)) <= total <= len(searched(record_lines(tuned[0]))) + 8


# ---- bad input: one line, a documented code, nothing half-written ----

def test_corrupt_record_line_is_named(tuned, cli, tmp_path):
    db = db_copy(tuned[0], tmp_path)
    with (db / RECORDS).open("a") as f:
        f.write('[0, [["half a trace"\n')
    n = len((db / RECORDS).read_text().splitlines())
    res = cli("compile", MLP, "--tuning-db", db, "-o", tmp_path / "m.edgec")
    assert_one_line_error(res, EXIT_BAD_ARTIFACT, f"{db / RECORDS}:{n}", "--no-tuning-db")
    assert not (tmp_path / "m.edgec").exists()


def test_database_of_another_target_is_refused(tuned, cli, tmp_path):
    db = db_copy(tuned[0], tmp_path)
    meta = json.loads((db / META).read_text())
    meta["tvm_target"]["mcpu"] = "skylake"
    (db / META).write_text(json.dumps(meta))
    res = cli("compile", MLP, "--tuning-db", db, "-o", tmp_path / "m.edgec")
    assert_one_line_error(res, EXIT_USAGE, str(db), "measured for target")


def test_tuning_db_options(cli, tmp_path):
    res = cli("compile", MLP, "--tuning-db", tmp_path / "none", "-o", tmp_path / "m.edgec")
    assert_one_line_error(res, EXIT_USAGE, "--tuning-db", "no such folder")
    res = cli("compile", MLP, "--tuning-db", tmp_path, "--no-tuning-db",
              "-o", tmp_path / "m.edgec")
    assert_one_line_error(res, EXIT_USAGE, "--no-tuning-db")
    assert not (tmp_path / "m.edgec").exists()


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--budget", "soon"], EXIT_USAGE, "--budget soon"),
    (["--trials", "4", "--device", "board"], EXIT_USAGE, "KEY@TRACKER_HOST:PORT"),
    (["--trials", "4", "--device", "127.0.0.1:9"], EXIT_USAGE, "through a tracker"),
    (["--trials", "4", "--devices", "2"], EXIT_USAGE, "give --device"),
    (["--trials", "4", "-t", "arm"], EXIT_UNSUPPORTED, "cannot be measured on this machine"),
    (["--trials", "4", "-t", "cuda"], EXIT_UNSUPPORTED, "CPU targets"),
    (["--trials", "4", "--device", f"board@127.0.0.1:{_closed_port()}"], EXIT_DEVICE,
     "no tracker answers"),
])
def test_tune_bad_options(cli, tmp_path, args, code, needle):
    res = cli("tune", MLP, "--db", tmp_path / "db", *args)
    assert_one_line_error(res, code, needle)
    assert not (tmp_path / "db").exists()


def test_tune_needs_an_end():
    from edgec.errors import UsageError
    from edgec.tuning import tune

    with pytest.raises(UsageError, match="--trials N or --budget"):
        tune(MLP)


def test_tune_model_without_kernels(cli, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"], name="add")], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])])
    model = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                   ir_version=8), tmp_path / "add.onnx")
    res = cli("tune", model, "--trials", "4", "--db", tmp_path / "db")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "add.onnx", "no edgec kernels")
    assert not (tmp_path / "db").exists()


# ---- slow tier: Ctrl-C, and measuring through a TVM RPC tracker ----

def _edgec(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgec", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_and_keeps_records(tmp_path):
    from edgec.backend.tvm.tuning_db import check_files

    db = tmp_path / "db"
    proc = _edgec("tune", MLP, "--trials", 500, "--db", db)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (db / RECORDS).exists() and len(record_lines(db)) > 3:  # templates + a batch
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "stopping after the batch" in err and "run the same command to resume" in err
    assert "Traceback" not in err
    assert check_files(db) == 2
    assert 3 < len(record_lines(db)) < 2 + 500


def _wait_for(check, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (OSError, RuntimeError):
            pass
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_tune_measures_through_an_rpc_tracker(tmp_path):
    """The pluggable runner: candidates measured by a TVM RPC server registered
    with a tracker, both on 127.0.0.1 (the way a board is reached)."""
    from tvm import rpc

    port = _closed_port()
    env = dict(os.environ, TVM_NUM_THREADS="2")
    tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host",
                                "127.0.0.1", "--port", str(port), "--port-end",
                                str(port + 1)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    server = None
    try:
        assert _wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close()
                         is None), "the tracker did not start"
        sport = _closed_port()
        server = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host",
                                   "127.0.0.1", "--port", str(sport), "--port-end",
                                   str(sport + 1), "--tracker",
                                   f"127.0.0.1:{port}", "--key", "edgec-test"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                  start_new_session=True)
        assert _wait_for(lambda: "edgec-test" in rpc.connect_tracker(
            "127.0.0.1", port).summary()["queue_info"]), "the server did not register"
        proc = _edgec("tune", MLP, "--trials", 8, "--device", f"edgec-test@127.0.0.1:{port}",
                      "--db", tmp_path / "db", "--json", tmp_path / "r.json")
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["trials"] == 8
        assert all(t["template_ms"] > 0 for t in report["tasks"])
    finally:
        for p in (server, tracker):  # with the workers they forked (own process groups)
            if p is not None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
