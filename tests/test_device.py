"""Devices over TVM RPC, all on 127.0.0.1: a tracker, two native boards of one key,
one direct server, and an emulated aarch64 board (qemu-user) of another key.

Every result is checked against a local run or onnxruntime; every failure a
user can meet (wrong key, busy farm, dead server, silent server, tampered or
foreign artifact) must be one line naming the device, with exit code 8 (or
the artifact's own code), within its timeout.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import assert_one_line_error

from edgec.errors import (
    EXIT_BAD_ARTIFACT,
    EXIT_DEVICE,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
    DeviceError,
)

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "models" / "tiny_cnn.onnx"
pytestmark = pytest.mark.compile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (OSError, RuntimeError, DeviceError):
            pass
        time.sleep(0.3)
    return False


def _listening(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


class Proc:
    """A background edgec process in its own process group, its stderr in a file."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None,
                 python: list[str] | None = None):
        self.log = log
        with open(log, "w") as fh:  # the child keeps its own copy of the descriptor
            self.p = subprocess.Popen([*(python or [sys.executable, "-m", "edgec"]), *args],
                                      stdout=fh, stderr=subprocess.STDOUT,
                                      env=env or os.environ.copy(), start_new_session=True)

    def text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=30)


def _keys(tracker: int) -> dict:
    from edgec.devices import DeviceAddress
    from edgec.runtime.device.tracker import list_devices

    return {k["key"]: k for k in list_devices(DeviceAddress("127.0.0.1", tracker))["keys"]}


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """Tracker + 2 native boards ('host-cpu') + 1 emulated aarch64 ('arm-emu') + 1 direct."""
    tmp = tmp_path_factory.mktemp("farm")
    env = dict(os.environ, TVM_NUM_THREADS="1")
    tracker = _free_port()
    procs = [Proc(["device", "tracker", "--port", str(tracker)], tmp / "tracker.log", env)]
    try:
        assert _wait_for(lambda: _listening(tracker), 60), procs[0].text()
        ports = {}
        for name, key, extra in (("board1", "host-cpu", []), ("board2", "host-cpu", []),
                                 ("arm", "arm-emu", ["--emulate", "arm"]),
                                 ("direct", None, [])):
            ports[name] = _free_port()
            reg = ["--tracker", f"127.0.0.1:{tracker}", "--key", key] if key else []
            procs.append(Proc(["device", "serve", "--port", str(ports[name]), *reg, *extra],
                              tmp / f"{name}.log", env))
        assert _wait_for(lambda: _listening(ports["direct"]), 60), procs[-1].text()
        # the emulated board builds its aarch64 worker on first use (cached after)
        assert _wait_for(lambda: _keys(tracker)["host-cpu"]["free"] == 2
                         and _keys(tracker)["arm-emu"]["free"] == 1, 600), \
            "\n".join(p.text() for p in procs)
        yield {"tracker": tracker, "ports": ports, "procs": procs, "tmp": tmp}
    finally:
        for p in procs:
            p.kill()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    from edgec import compile as edgec_compile

    tmp = tmp_path_factory.mktemp("device-art")
    host = edgec_compile(CNN, output=tmp / "cnn.edgec")
    arm = edgec_compile(CNN, target="arm", output=tmp / "cnn-arm.edgec")
    return {"host": host.path, "arm": arm.path}


def _feeds(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    import edgec
    from edgec.tensors import random_inputs

    return random_inputs(edgec.load(path).inputs, seed=seed)


def _save_feeds(path: Path, tmp: Path) -> Path:
    f = tmp / "in.npz"
    np.savez(f, **_feeds(path))
    return f


def test_run_on_a_direct_server_equals_a_local_run(cli, farm, artifacts, tmp_path):
    import edgec

    port = farm["ports"]["direct"]
    res = cli("run", artifacts["host"], "--input", _save_feeds(artifacts["host"], tmp_path),
              "--device", f"127.0.0.1:{port}", "-o", tmp_path / "out.npz")
    assert res.code == 0, res.err
    assert f"ran on 127.0.0.1:{port} (x86_64" in res.out
    assert "(device clock)" in res.out and "latency: median" in res.out
    local = edgec.load(artifacts["host"]).run(_feeds(artifacts["host"]))
    with np.load(tmp_path / "out.npz") as got:
        for name, value in local.items():
            np.testing.assert_array_equal(got[name], value)  # same code, same CPU
    res = cli("device", "info", f"127.0.0.1:{port}", "--json")
    info = json.loads(res.out)
    assert info["threads"] == 1  # the farm's TVM_NUM_THREADS, honoured by the server
    assert info["arch"] == "x86_64" and info["server"] == "edgec-python"
    assert info["targets"] and all(t.startswith("x86/") for t in info["targets"])


def test_run_verify_and_profile_through_the_tracker(cli, farm, artifacts, tmp_path):
    spec = f"host-cpu@127.0.0.1:{farm['tracker']}"
    res = cli("verify", artifacts["host"], "--model", CNN, "--device", spec,
              "--json", tmp_path / "v.json")
    assert res.code == 0, res.err
    assert "verified" in res.out and "edgec ran on host-cpu at 127.0.0.1:" in res.out
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["device"]["arch"] == "x86_64"
    assert report["device"]["emulated"] is False
    assert all(o["max_abs_err"] <= 1e-4 for o in report["outputs"])

    res = cli("profile", artifacts["host"], "--device", spec, "--repeat", "3",
              "--json", tmp_path / "p.json")
    assert res.code == 0, res.err
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["device"]["name"].startswith("host-cpu at 127.0.0.1:")
    kernels = [k for k in prof["kernels"] if k["kind"] == "kernel"]
    assert kernels and prof["provenance"] == "manifest"
    assert any("/conv1/Conv" in (k["onnx_nodes"] or []) for k in kernels)
    assert prof["latency"]["runs"] == 3 and prof["latency"]["median_ms"] > 0


def test_device_list_shows_keys_free_and_busy(cli, farm):
    from edgec.runtime.device.client import connect

    # a board registers again a moment after its last session (the previous test's)
    assert _wait_for(lambda: _keys(farm["tracker"])["host-cpu"]["free"] == 2, 30)
    res = cli("device", "list", "--tracker", f"127.0.0.1:{farm['tracker']}", "--json")
    assert res.code == 0, res.err
    keys = {k["key"]: k for k in json.loads(res.out)["keys"]}
    assert keys["host-cpu"]["total"] == 2 and keys["host-cpu"]["free"] == 2
    assert keys["arm-emu"]["total"] == 1
    # hold the only arm board: the table says busy, and a request is refused, not queued
    dev = connect(f"arm-emu@127.0.0.1:{farm['tracker']}", timeout=60)
    try:
        assert _wait_for(lambda: _keys(farm["tracker"])["arm-emu"]["busy"] == 1, 30)
        res = cli("device", "list", "--tracker", f"127.0.0.1:{farm['tracker']}")
        assert res.code == 0
        row = next(ln for ln in res.out.splitlines() if "arm-emu" in ln)
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells[:5] == ["arm-emu", "1", "0", "1", "0"], res.out  # total free busy waiting
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no free device with key 'arm-emu' within 3 s"):
            connect(f"arm-emu@127.0.0.1:{farm['tracker']}", timeout=3)
        assert time.monotonic() - t0 < 15
    finally:
        dev.close()
    res = cli("device", "list", "--tracker", f"127.0.0.1:{_free_port()}")
    assert_one_line_error(res, EXIT_DEVICE, "the tracker at 127.0.0.1:")


def test_a_wrong_key_names_the_key_and_the_known_ones(cli, farm, artifacts, tmp_path):
    res = cli("run", artifacts["host"], "--random", "-o", tmp_path / "o.npz",
              "--device", f"rpi9@127.0.0.1:{farm['tracker']}")
    assert_one_line_error(res, EXIT_DEVICE, "no device with key 'rpi9'", "arm-emu",
                          "host-cpu", f"127.0.0.1:{farm['tracker']}")
    assert not (tmp_path / "o.npz").exists()


def test_a_tampered_artifact_is_refused_before_upload(cli, farm, artifacts, tmp_path):
    import tarfile

    bad = tmp_path / "bad.edgec"
    with tarfile.open(artifacts["host"]) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name.endswith(".so"):
                data = data[:-8] + b"tampered"
            m.size = len(data)
            import io
            dst.addfile(m, io.BytesIO(data))
    log = farm["procs"][-1].log  # the direct server's
    before = log.read_text().count("connected from")
    res = cli("run", bad, "--random", "--device", f"127.0.0.1:{farm['ports']['direct']}",
              "-o", tmp_path / "o.npz")
    assert_one_line_error(res, EXIT_BAD_ARTIFACT, "bad.edgec")
    time.sleep(0.5)
    assert log.read_text().count("connected from") == before  # never reached the device


def test_an_artifact_for_another_architecture_is_refused_naming_the_device(cli, farm,
                                                                           artifacts,
                                                                           tmp_path):
    port = farm["ports"]["direct"]
    res = cli("run", artifacts["arm"], "--random", "--device", f"127.0.0.1:{port}",
              "-o", tmp_path / "o.npz")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "built for aarch64",
                          f"127.0.0.1:{port} is x86_64")


def test_nothing_listening_and_a_silent_server_fail_within_the_timeout(cli, tmp_path,
                                                                      artifacts):
    res = cli("run", artifacts["host"], "--random", "--device", f"127.0.0.1:{_free_port()}",
              "-o", tmp_path / "o.npz")
    assert_one_line_error(res, EXIT_DEVICE, "nothing answers")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts (the kernel does), never speaks
    try:
        t0 = time.monotonic()
        res = cli("run", artifacts["host"], "--random", "--timeout", "2", "--device",
                  f"127.0.0.1:{silent.getsockname()[1]}", "-o", tmp_path / "o.npz")
        assert time.monotonic() - t0 < 30
        assert_one_line_error(res, EXIT_DEVICE, "no answer within 2 s", "connecting")
    finally:
        silent.close()
    res = cli("run", artifacts["host"], "--random", "--device", "127.0.0.1", "-o",
              tmp_path / "o.npz")
    assert_one_line_error(res, EXIT_USAGE, "--device 127.0.0.1", "HOST:PORT")


def test_a_server_killed_mid_session_is_a_device_error(tmp_path, artifacts):
    from edgec.runtime.device.client import RemoteSession, connect

    port = _free_port()
    server = Proc(["device", "serve", "--port", str(port)], tmp_path / "s.log")
    try:
        assert _wait_for(lambda: _listening(port), 60), server.text()
        dev = connect(f"127.0.0.1:{port}", timeout=20)
        session = RemoteSession(artifacts["host"], dev)
        feeds = _feeds(artifacts["host"])
        first = session.run(feeds)
        os.killpg(server.p.pid, signal.SIGKILL)  # the board loses power
        server.p.wait(timeout=30)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=f"127.0.0.1:{port}: failed while"):
            session.run(feeds)
        assert time.monotonic() - t0 < 25
        assert first
    finally:
        server.kill()


def test_a_crashing_session_does_not_take_the_server_down(tmp_path, artifacts):
    """A session whose process dies (here: killed) is logged; the next one is served."""
    from edgec.runtime.device.client import RemoteSession, connect

    port = _free_port()
    server = Proc(["device", "serve", "--port", str(port)], tmp_path / "s.log")
    try:
        assert _wait_for(lambda: _listening(port), 60), server.text()
        dev = connect(f"127.0.0.1:{port}", timeout=20)
        import psutil

        children = psutil.Process(server.p.pid).children()
        assert len(children) == 1
        children[0].kill()
        with pytest.raises(DeviceError):
            RemoteSession(artifacts["host"], dev)
        assert _wait_for(lambda: "ended abnormally (signal 9)" in server.text(), 30), \
            server.text()
        dev = connect(f"127.0.0.1:{port}", timeout=20)
        assert RemoteSession(artifacts["host"], dev).run(_feeds(artifacts["host"]))
    finally:
        server.kill()


def test_the_emulated_arm_board_runs_real_aarch64_code(cli, farm, artifacts, tmp_path):
    spec = f"arm-emu@127.0.0.1:{farm['tracker']}"
    res = cli("verify", artifacts["arm"], "--model", CNN, "--device", spec, "--repeat", "3",
              "--json", tmp_path / "v.json")
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["device"]["arch"] == "aarch64" and report["device"]["emulated"] is True
    assert report["ok"]
    assert "EMULATED under qemu-user" in res.out and "not any board's latency" in res.out
    res = cli("profile", artifacts["arm"], "--device", spec, "--repeat", "2")
    assert res.code == 0, res.err
    assert "(aarch64, emulated)" in res.out and "EMULATED" in res.out
    # an ONNX model is compiled for the target that best fits the board's CPU
    res = cli("verify", CNN, "--device", spec, "--repeat", "0")
    assert res.code == 0, res.err
    assert "on arm/cortex-a76-dotprod on arm-emu at 127.0.0.1:" in res.out
    # the x86 artifact is refused by the emulated board before upload
    res = cli("run", artifacts["host"], "--random", "--device", spec, "-o", tmp_path / "o.npz")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "built for x86_64", "is aarch64")


def test_an_emulated_cortex_a72_refuses_code_that_needs_dot_product(cli, tmp_path, artifacts):
    """The CPU features a board reports decide, before upload: a Raspberry Pi 4 class
    core (qemu -cpu cortex-a72) runs the plain ARM build, not the dot-product one."""
    from edgec import compile as edgec_compile

    dotprod = edgec_compile(CNN, target="arm-dotprod", output=tmp_path / "dp.edgec").path
    port = _free_port()
    server = Proc(["device", "serve", "--port", str(port), "--emulate", "arm", "--cpu",
                   "cortex-a72"], tmp_path / "s.log")
    try:
        assert _wait_for(lambda: _listening(port), 300), server.text()
        res = cli("device", "info", f"127.0.0.1:{port}", "--json")
        assert res.code == 0, res.err
        info = json.loads(res.out)
        assert "asimd" in info["features"] and "asimddp" not in info["features"]
        assert "arm/raspberry-pi-4" in info["targets"]
        assert "arm/cortex-a76-dotprod" not in info["targets"]
        res = cli("run", dotprod, "--random", "--device", f"127.0.0.1:{port}",
                  "-o", tmp_path / "o.npz")
        assert_one_line_error(res, EXIT_UNSUPPORTED, "arm/cortex-a76-dotprod", "asimddp",
                              f"127.0.0.1:{port}")
        assert "load_module" not in server.text()
        res = cli("run", artifacts["arm"], "--input", _save_feeds(artifacts["arm"], tmp_path),
                  "--device", f"127.0.0.1:{port}", "-o", tmp_path / "o.npz")
        assert res.code == 0, res.err
        assert "EMULATED" in res.out
        import edgec

        local = edgec.load(artifacts["host"]).run(_feeds(artifacts["host"]))
        with np.load(tmp_path / "o.npz") as got:
            np.testing.assert_allclose(got["probs"], local["probs"], rtol=1e-4, atol=1e-5)
        # a model given to run is compiled for the file that fits the board's CPU
        res = cli("run", CNN, "--input", _save_feeds(artifacts["arm"], tmp_path), "--device",
                  f"127.0.0.1:{port}", "-o", tmp_path / "m.npz", "--repeat", "0")
        assert res.code == 0, res.err
        assert "for arm/raspberry-pi-4 (default options" in res.err
        with np.load(tmp_path / "m.npz") as got:
            np.testing.assert_allclose(got["probs"], local["probs"], rtol=1e-4, atol=1e-5)
    finally:
        server.kill()
    res = cli("run", artifacts["arm"], "-t", "arm", "--random", "-o", tmp_path / "x.npz")
    assert_one_line_error(res, EXIT_USAGE, "-t is for a model compiled now")
    res = cli("device", "serve", "--cpu", "cortex-a72", "--port", str(_free_port()))
    assert_one_line_error(res, EXIT_USAGE, "--emulate arm")


def test_bench_on_a_device(cli, farm, tmp_path):
    res = cli("bench", CNN, "--device", f"127.0.0.1:{farm['ports']['direct']}",
              "--repeat", "20", "--budget", "1", "--json", tmp_path / "b.json")
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "b.json").read_text())
    rows = {e["engine"]: e for e in report["engines"]}
    assert rows["edgec"]["device"].startswith("127.0.0.1:") and rows["edgec"]["within_tolerance"]
    assert rows["onnxruntime"]["device"] == "here"
    assert rows["edgec"]["stats"]["runs"] == 20
    assert report["target"] == "x86/zen4-avx512" or report["target"].startswith("x86/")
    # LiteRT is installed here, so the device (this machine) has it too
    assert rows["tflite"]["status"] == "ok", rows["tflite"]["reason"]
    assert rows["tflite"]["within_tolerance"]


@pytest.mark.slow
def test_tune_on_two_boards_of_one_key(farm, tmp_path):
    from edgec.backend.tvm.tuning_db import check_files  # noqa: F401  (the db is real)

    before = [p.text().count("connected from") for p in farm["procs"][1:3]]
    proc = subprocess.run([sys.executable, "-m", "edgec", "tune", str(ROOT / "models" /
                           "mlp.onnx"), "--trials", "8", "--device",
                           f"host-cpu@127.0.0.1:{farm['tracker']}", "--devices", "2",
                           "--db", str(tmp_path / "db"), "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["trials"] == 8
    assert all(t["template_ms"] > 0 for t in report["tasks"])
    after = [p.text().count("connected from") for p in farm["procs"][1:3]]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_serving_a_non_loopback_address_warns(cli):
    from edgec.runtime.device.server import exposure_warning

    assert exposure_warning("127.0.0.1", 9090) is None
    assert exposure_warning("::1", 9090) is None
    warning = exposure_warning("192.0.2.7", 9090)
    assert "any peer" in warning and "run code" in warning
    # TEST-NET-1 is not this machine's: the bind fails after the warning, nothing listens
    before = {k: os.environ.get(k) for k in ("TVM_USE_RUNTIME_LIB", "TVM_NUM_THREADS")}
    res = cli("device", "serve", "--host", "192.0.2.7", "--port", str(_free_port()))
    assert res.code == EXIT_USAGE
    # a server that did not start leaves this process's environment as it was (its
    # runtime-only TVM once broke every later compile in the test run)
    assert {k: os.environ.get(k) for k in before} == before
    lines = res.err.strip().splitlines()
    assert lines[0].startswith("edgec: warning: serving on 192.0.2.7") and len(lines) == 2
    assert lines[1].startswith("edgec: error: device serve: cannot listen on 192.0.2.7")


#: what README "Devices" installs on a board: apache-tvm (with what it requires), click, rich
BOARD_DISTRIBUTIONS = ("apache-tvm", "apache-tvm-ffi", "ml_dtypes", "numpy",
                       "typing_extensions", "click", "rich", "markdown-it-py", "mdurl",
                       "pygments")


def _board_site(folder: Path) -> Path:
    """A site folder holding only the board's distributions (and edgec), linked from here."""
    folder.mkdir()
    for name in BOARD_DISTRIBUTIONS:
        for f in importlib.metadata.distribution(name).files or ():
            top = f.parts[0]
            if top.endswith(".dist-info") or top in ("..", "bin") or "__pycache__" in top:
                continue
            src = Path(f.locate()).parents[len(f.parts) - 1] / top
            if src.exists() and not (folder / top).exists():
                (folder / top).symlink_to(src)
    (folder / "edgec").symlink_to(ROOT / "edgec")
    return folder


def test_a_board_needs_only_the_runtime(tmp_path, artifacts, cli):
    """'edgec device serve' on the smallest install: no onnx, onnxruntime, TensorFlow,
    and TVM's compiler library never loaded."""
    site = _board_site(tmp_path / "site")
    port = _free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(site),
           "TVM_NUM_THREADS": "1"}
    server = Proc(["device", "serve", "--port", str(port)], tmp_path / "s.log", env,
                  python=[sys.executable, "-S", "-s", "-m", "edgec"])
    try:
        assert _wait_for(lambda: _listening(port), 60), server.text()
        res = cli("run", artifacts["host"], "--random", "--device", f"127.0.0.1:{port}",
                  "-o", tmp_path / "o.npz")
        assert res.code == 0, res.err + server.text()
        maps = Path(f"/proc/{server.p.pid}/maps").read_text()
        assert "libtvm_runtime.so" in maps and "libtvm_compiler" not in maps
        for child in _children(server.p.pid):
            assert "libtvm_compiler" not in Path(f"/proc/{child}/maps").read_text()
        for absent in ("onnx", "onnxruntime", "tensorflow", "psutil"):
            assert not (site / absent).exists()
    finally:
        server.kill()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def test_calls_from_another_thread_still_end(farm, artifacts):
    """Off the main thread there is no alarm: the server's session timeout is the limit,
    and normal calls simply work (through the API: Artifact.remote)."""
    import edgec

    got = {}

    def work():
        remote = edgec.load(artifacts["host"]).remote(f"127.0.0.1:{farm['ports']['direct']}",
                                                      timeout=30)
        got["out"] = remote.run(_feeds(artifacts["host"]))
        got["info"] = remote.device.info

    t = threading.Thread(target=work)
    t.start()
    t.join(120)
    assert not t.is_alive() and got["out"]
    local = edgec.load(artifacts["host"]).run(_feeds(artifacts["host"]))
    np.testing.assert_array_equal(got["out"]["probs"], local["probs"])
    assert got["info"]["server"] == "edgec-python"


def test_deadlines_nest():
    """An inner deadline (the tracker check inside a connect) must not disarm the
    outer one: that once let a request for a busy key wait forever."""
    from edgec.runtime.device.client import _Deadline, deadline

    t0 = time.monotonic()
    with pytest.raises(_Deadline), deadline(1.0):
        with deadline(5.0):
            pass
        time.sleep(5)
    assert 0.9 < time.monotonic() - t0 < 3
    t0 = time.monotonic()
    with pytest.raises(_Deadline), deadline(1.0), deadline(5.0):
        time.sleep(5)
    assert time.monotonic() - t0 < 3
