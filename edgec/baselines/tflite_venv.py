"""The TFLite converter's own virtualenv (onnx2tf + TensorFlow), built when first needed.

onnx2tf 1.29 (the last release for Python 3.11) pins numpy 1.26, onnx 1.19,
onnxruntime 1.23 and TensorFlow 2.19, which cannot share edgec's environment,
and the venv takes 2.6 GB, so neither ``pip install edgec`` nor ``make demo``
builds it: the first bench with a TFLite row does (saying so first), or
``make setup`` (``python -m edgec.baselines.tflite_venv``). It lives in edgec's
cache folder, the same place for a checkout and an installed wheel.
``EDGEC_TFLITE_PYTHON`` names another Python that has onnx2tf instead.

A build goes into a sibling temp folder that is renamed into place only after
pip succeeded, so a failed or interrupted build never looks like a working
venv. edgec runs it only as ``python -m``/``-c``, which a renamed venv supports
(its console scripts would still name the temp folder in their shebangs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..cache import cache_dir

ONNX2TF_VERSION = "1.29.24"
REQUIREMENT = f"onnx2tf=={ONNX2TF_VERSION}"
#: Measured for this pin on Python 3.11, x86-64 (du -sh of the venv; pip's download).
SIZE = "about 0.8 GB to download, 2.6 GB on disk"
PYTHON_ENV = "EDGEC_TFLITE_PYTHON"
NO_DOWNLOAD_ENV = "EDGEC_NO_DOWNLOAD"
_PARTIAL = ".partial-"

Progress = Callable[[str], None]


class ConverterUnavailable(Exception):
    """No converter Python, and why (one line, shown as the bench's TFLite row)."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def venv_dir() -> Path:
    """Where edgec keeps the converter venv: one per onnx2tf pin and Python minor version."""
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return cache_dir("venvs", create=False) / f"onnx2tf-{ONNX2TF_VERSION}-{py}"


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def converter_python() -> Path | None:
    """$EDGEC_TFLITE_PYTHON, else the completed venv's Python, else None (not built)."""
    env = os.environ.get(PYTHON_ENV)
    if env:
        return Path(env)
    py = _python_of(venv_dir())
    return py if py.exists() else None


def _install_steps(staging: Path) -> list[tuple[str, list[str]]]:
    """The build as (what, command) steps run in order (tests replace them: no download)."""
    return [("python -m venv", [sys.executable, "-m", "venv", str(staging)]),
            (f"pip install {REQUIREMENT}",
             [str(_python_of(staging)), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", REQUIREMENT])]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_abandoned(final: Path) -> None:
    """Drop temp folders of builds whose process is gone (killed mid-build)."""
    for p in final.parent.glob(f".{final.name}{_PARTIAL}*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def ensure(progress: Progress | None = None) -> Path:
    """The converter's Python, building the venv first if it is not there yet."""
    env = os.environ.get(PYTHON_ENV)
    if env:
        if not Path(env).exists():
            raise ConverterUnavailable(f"{PYTHON_ENV}={env} does not exist")
        return Path(env)
    final = venv_dir()
    if _python_of(final).exists():
        return _python_of(final)
    if os.environ.get(NO_DOWNLOAD_ENV) == "1":
        raise ConverterUnavailable(
            f"converter not built ({final}); {NO_DOWNLOAD_ENV}=1 forbids building it: run "
            f"'make setup' or 'python -m edgec.baselines.tflite_venv', or set {PYTHON_ENV}")
    say = progress or _stderr
    staging = final.with_name(f".{final.name}{_PARTIAL}{os.getpid()}")
    say(f"tflite: building the converter venv once ({REQUIREMENT} with TensorFlow 2.19, "
        f"{SIZE}, a few minutes) in {final}")
    t0 = time.monotonic()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(final)
        shutil.rmtree(staging, ignore_errors=True)
        for what, cmd in _install_steps(staging):
            res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if res.returncode != 0:
                raise ConverterUnavailable(
                    f"converter venv could not be built: '{what}' failed: "
                    f"{_last_line(res.stderr or res.stdout)}")
        if not _python_of(staging).exists():
            raise ConverterUnavailable(f"converter venv could not be built: no "
                                       f"{_python_of(staging)} after the install")
        try:
            staging.rename(final)
        except OSError:
            if not _python_of(final).exists():  # else a build alongside this one won
                raise ConverterUnavailable(f"converter venv could not be built: {final} "
                                           "exists and is no venv; remove it") from None
    except OSError as exc:  # disk full, permissions
        raise ConverterUnavailable(f"converter venv could not be built: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"tflite: converter venv ready in {time.monotonic() - t0:.0f} s")
    return _python_of(final)


def main() -> int:
    """make setup: build the venv where edgec looks for it (nothing to do if it is there)."""
    try:
        py = ensure(progress=print)
    except ConverterUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"TFLite converter: {py}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
