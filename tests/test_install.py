"""edgec installs as users install it, not only editable from its checkout.

The test builds the sdist and, from it, the wheel (what ``python -m build``
does), installs the wheel into a clean venv and runs that venv's ``edgec``
from a folder outside the checkout: the target list must come from the
package's own ``bundled_targets``, and a model must compile and verify. It
never reaches the internet: the build backend and edgec's dependencies come
from a wheelhouse in edgec's cache, which ``make setup`` fills by running this
file (``python tests/test_install.py``) while it has the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from edgec.cache import cache_dir

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = cache_dir("wheelhouse", create=False)  # read before any test moves the cache
STAMP = WHEELHOUSE / "requirements.txt"  # what the wheelhouse was filled for


def requirements() -> list[str]:
    """What a clean install takes from an index: the build backend and edgec's dependencies."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [*meta["build-system"]["requires"], *meta["project"]["dependencies"]]


def wheelhouse_ready() -> bool:
    return STAMP.is_file() and STAMP.read_text().splitlines() == requirements()


def fill_wheelhouse() -> None:
    """Download the wheels (for this Python and machine) unless pyproject.toml is unchanged."""
    if wheelhouse_ready():
        print(f"wheelhouse: up to date in {WHEELHOUSE}")
        return
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                    "--dest", str(WHEELHOUSE), *requirements()], check=True)
    STAMP.write_text("\n".join(requirements()) + "\n")
    print(f"wheelhouse: {len(list(WHEELHOUSE.glob('*.whl')))} wheels in {WHEELHOUSE}")


def _copy_checkout(dest: Path) -> None:
    """The checkout's files as a fresh clone would have them, uncommitted edits included
    (never its build/, egg-info or venvs, which would leak into the packages)."""
    res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True)
    for rel in res.stdout.decode().split("\0"):
        src = REPO / rel
        if rel and src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, f"{cmd[:3]} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


def _bundled_target_files() -> list[str]:
    return sorted(p.relative_to(REPO / "targets").as_posix()
                  for p in (REPO / "targets").rglob("*.toml"))


@pytest.mark.install
def test_wheel_installs_offline_into_a_clean_venv_and_compiles(tmp_path):
    if not wheelhouse_ready():
        pytest.fail(f"no wheelhouse for edgec's dependencies in {WHEELHOUSE}: run 'make setup' "
                    "(or 'python tests/test_install.py') once with the network")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "EDGEC_TARGET_PATH")}
    env |= {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE), "COLUMNS": "200"}
    src, dist, venv, elsewhere = (tmp_path / d for d in ("src", "dist", "venv", "elsewhere"))
    _copy_checkout(src)
    _run([sys.executable, "-m", "build", "--outdir", dist, src], tmp_path, env)

    sdist, wheel = next(dist.glob("edgec-*.tar.gz")), next(dist.glob("edgec-*.whl"))
    with tarfile.open(sdist) as t:  # the sdist can rebuild the package: setup.py reads targets/
        names = t.getnames()
    assert any(n.endswith("/setup.py") for n in names)
    assert all(any(n.endswith(f"/targets/{f}") for n in names) for f in _bundled_target_files())
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert {f"edgec/bundled_targets/{f}" for f in _bundled_target_files()} <= names
    assert "edgec/backend/tvm/onnx_ops.txt" in names
    assert "edgec/bundle/templates/CMakeLists.txt" in names

    _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], tmp_path, env)
    elsewhere.mkdir()
    shutil.copy(REPO / "models" / "tiny_cnn.onnx", elsewhere)
    edgec = venv / "bin" / "edgec"

    listed = json.loads(_run([edgec, "targets", "--json"], elsewhere, env).stdout)
    root = next(venv.glob("lib/python*/site-packages/edgec/bundled_targets"))
    assert sorted(f"{name}.toml" for name in listed) == _bundled_target_files()
    assert all(Path(t["file"]).is_relative_to(root) for t in listed.values()), listed
    assert "host" in _run([edgec, "targets"], elsewhere, env).stdout

    _run([edgec, "compile", "tiny_cnn.onnx", "--target", "host", "-o", "tiny.edgec"],
         elsewhere, env)
    res = _run([edgec, "verify", "tiny.edgec", "--model", "tiny_cnn.onnx"], elsewhere, env)
    assert "verified: all 1 output(s) match onnxruntime" in res.stdout, res.stdout


if __name__ == "__main__":  # make setup (wheelhouse): with the network, before the tests
    fill_wheelhouse()
