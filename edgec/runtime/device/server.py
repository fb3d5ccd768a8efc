"""``edgec device serve``: TVM's RPC server, with edgec's device functions, bound safely.

This is TVM's own server (``tvm.rpc.server``: the handshake, the tracker
registration, a fresh process and work folder per session, the session
timeout a client asks for); edgec only picks what it loads and where it
listens. It runs on the TVM runtime alone (``TVM_USE_RUNTIME_LIB=1``): a
board needs neither the compiler nor ONNX nor onnxruntime (README, "Devices").

With ``emulate``, each session's process is an aarch64 worker run under
qemu-user instead of this Python (emulated.py): the same protocol and
functions, with real aarch64 code behind them.

TVM's RPC server runs whatever code a client uploads: that is what it is
for. It therefore binds to 127.0.0.1 unless told otherwise, and says so
when it is not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

from ...devices import is_loopback
from ...errors import DeviceError, ToolchainError, UsageError

DEFAULT_PORT = 9090


def exposure_warning(host: str, port: int, *, what: str = "upload and run code on this "
                     "machine as this user") -> str | None:
    """The warning a non-loopback bind deserves, or None for a loopback one."""
    if is_loopback(host):
        return None
    return (f"serving on {host}:{port}: any peer that can reach this address can {what}; "
            "serve on 127.0.0.1 behind an ssh tunnel or adb forward, or on a network you "
            "trust")


@contextlib.contextmanager
def _runtime_env():
    """The environment a server runs in, undone if it fails to start: a server
    started from a process that goes on (the API, the tests) must not leave its
    runtime-only TVM to that process's later children.

    TVM_USE_RUNTIME_LIB=1 makes ``import tvm`` load the runtime library alone, what
    a board has. As for ``edgec run`` (runtime/native.py), kernels get every CPU the
    server may run on unless TVM_NUM_THREADS says otherwise: TVM's pool would start
    half. Session processes inherit both."""
    saved = {k: os.environ.get(k) for k in ("TVM_USE_RUNTIME_LIB", "TVM_NUM_THREADS")}
    os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
    os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    try:
        yield
    except BaseException:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        raise


def _load_runtime_only():
    """tvm's RPC server module (the compiler library stays unloaded under _runtime_env,
    unless this process imported tvm already)."""
    from tvm.rpc import server as tvm_server

    return tvm_server


def _emulated_serve_loop(command: list[str]) -> Callable:
    """A session's process for the emulated device: the forked child (cwd = the
    session's work folder, handshake done) becomes the aarch64 worker, which
    serves the same connected socket."""

    def serve_loop(sock, _load_library, _work_path):
        fd = sock.fileno()
        os.set_inheritable(fd, True)
        try:
            os.execv(command[0], [*command, str(fd)])
        except OSError as exc:  # the child exits; the server goes on with the next session
            sys.stderr.write(f"edgec device serve: cannot start {command[0]}: {exc}\n")
            os._exit(127)

    return serve_loop


def _session_runner(tvm_server, serve_loop: Callable) -> Callable:
    """TVM's per-session step (``_serving``), made to outlive a session that crashes.

    TVM's own raises when the session's process dies (a model that segfaults,
    a board out of memory), which ends its listening thread: one bad upload
    would take the device off the farm. This one logs it and serves on, and
    always removes the session's work folder."""
    import multiprocessing

    from tvm.support import utils

    log = tvm_server.logger

    def serving(sock, addr, opts, load_library):
        log.info("connected from %s", addr)
        work = utils.tempdir()
        old_cwd = os.getcwd()
        os.chdir(work.path)  # TVM's convention: uploads land in the session's folder
        try:
            proc = multiprocessing.Process(target=serve_loop, args=(sock, load_library, work))
            proc.start()
            proc.join(opts.get("timeout"))
            if proc.is_alive():
                log.warning("session from %s outlived its %ss timeout; ending it", addr,
                            opts["timeout"])
                tvm_server._ffi_api.ReturnException(
                    sock.fileno(), f"RPCSessionTimeoutError: the {opts['timeout']}s session "
                    "has expired")
                proc.kill()
                proc.join()
            elif proc.exitcode:
                how = (f"signal {-proc.exitcode}" if proc.exitcode < 0 else
                       f"exit code {proc.exitcode}")
                log.warning("session from %s ended abnormally (%s); serving on", addr, how)
            else:
                log.info("session from %s done", addr)
        finally:
            os.chdir(old_cwd)
            work.remove()
            sock.close()

    return serving


def serve(**kwargs) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM): `_serve`'s arguments."""
    with _runtime_env():
        _serve(**kwargs)


def serve_tracker(**kwargs) -> None:
    """TVM's RPC tracker until interrupted: `_serve_tracker`'s arguments."""
    with _runtime_env():
        _serve_tracker(**kwargs)


def _serve(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, tracker: tuple[str, int] | None
          = None, key: str | None = None, emulate: str | None = None,
          cpu: str | None = None, announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM). ``tracker`` needs ``key``; ``cpu`` is
    the emulated board's qemu CPU model."""
    if cpu is not None and emulate is None:
        raise UsageError("device serve --cpu: a CPU model is for an emulated board; give "
                         "--emulate arm too")
    if tracker is not None and not key:
        raise UsageError("device serve --tracker: give --key, the name clients ask the "
                         "tracker for (e.g. --key rpi4)")
    if key is not None and tracker is None:
        raise UsageError("device serve --key: a key is what a tracker hands out; give "
                         "--tracker HOST:PORT too (clients reach this server directly "
                         "as HOST:PORT without one)")
    command = None
    if emulate is not None:
        from .emulated import worker_command

        command = worker_command(emulate, cpu)  # builds the worker once: errors before binding
    tvm_server = _load_runtime_only()
    from . import functions

    if tracker is not None:
        _check_tracker(*tracker)
    functions.register()
    loop = tvm_server._serve_loop if command is None else _emulated_serve_loop(command)
    original = tvm_server._serving
    tvm_server._serving = _session_runner(tvm_server, loop)
    tvm_server.logger.setLevel("INFO")  # one line per session: who connected, when done
    try:
        state = tvm_server.PopenRPCServerState(host, port, port + 1, tracker_addr=tracker,
                                               key=key or "")
    except (OSError, ValueError) as exc:
        tvm_server._serving = original  # this process goes on (an API caller, a test)
        raise UsageError(f"device serve: cannot listen on {host}:{port} ({exc}); choose "
                         "another --port or stop what uses it") from None
    kind = (f"emulated {emulate} ({cpu or 'max'} CPU) under qemu-user" if emulate else
            "this machine's CPU")
    where = f"{host}:{state.port}"
    announce(f"edgec device server on {where} ({kind})"
             + (f", registered as '{key}' with the tracker at {tracker[0]}:{tracker[1]}"
                if tracker else "") + "; Ctrl-C stops it")
    _wait(state.thread)


def _check_tracker(host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise DeviceError(f"device serve --tracker {host}:{port}: no tracker answers "
                          f"({exc}); start one with 'edgec device tracker'") from None


def _wait(thread: threading.Thread) -> None:
    """Block until SIGINT/SIGTERM; TVM's listening thread never returns by itself, so
    the process ends here (a session in progress is ended with it)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while thread.is_alive() and not stop.wait(0.5):
        pass
    if not thread.is_alive() and not stop.is_set():
        raise ToolchainError("device serve: TVM's RPC server stopped by itself (rerun with "
                             "--debug for its log)")
    import multiprocessing

    for child in multiprocessing.active_children():  # sessions: TVM forks one each
        child.kill()
    os._exit(0)


def _serve_tracker(*, host: str = "127.0.0.1", port: int = 9190,
                   announce: Callable[[str], None] = print) -> None:
    """TVM's RPC tracker (the queue boards register with), until interrupted."""
    from tvm.rpc import tracker as tvm_tracker

    try:
        state = tvm_tracker.PopenTrackerServerState(host, port, port + 1, silent=True)
    except (OSError, ValueError) as exc:
        raise UsageError(f"device tracker: cannot listen on {host}:{port} ({exc}); choose "
                         "another --port or stop what uses it") from None
    announce(f"edgec device tracker on {host}:{state.port}; boards register with "
             f"'edgec device serve --tracker {host}:{state.port} --key KEY'; Ctrl-C stops it")
    _wait(state.thread)
