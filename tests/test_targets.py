"""Target files: every bundled file parses, aliases resolve, host picks a runnable
file, and each file declares the CPU features LLVM may use for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgec.errors import UsageError
from edgec.target_registry import (
    host_arch,
    host_cpu_flags,
    load_targets,
    pick_host_target,
    resolve_target,
)

REQUIRED_DEVICES = {  # what the foundation issue asks for, by file
    "x86/x86-64-v3": ("llvm", "x86_64"),
    "x86/zen4-avx512": ("llvm", "x86_64"),
    "arm/raspberry-pi-4": ("llvm", "aarch64"),
    "arm/cortex-a76-dotprod": ("llvm", "aarch64"),
    "gpu/jetson-orin": ("cuda", "aarch64"),
    "gpu/cuda-a100": ("cuda", "x86_64"),
    "gpu/mali-opencl": ("opencl", "aarch64"),
}


def test_bundled_targets_parse_with_descriptions():
    targets = load_targets()
    for name, (kind, arch) in REQUIRED_DEVICES.items():
        t = targets[name]
        assert (t.kind, t.arch) == (kind, arch)
        assert t.description and "\n" not in t.description
        assert t.cc


@pytest.mark.parametrize("alias,name", [("x86", "x86/x86-64-v3"), ("arm", "arm/raspberry-pi-4"),
                                        ("zen4", "x86/zen4-avx512"),
                                        ("raspberry-pi-4", "arm/raspberry-pi-4"),
                                        ("arm/cortex-a76-dotprod", "arm/cortex-a76-dotprod"),
                                        ("orin", "gpu/jetson-orin")])
def test_aliases_and_short_names(alias, name):
    assert resolve_target(alias).name == name


def test_arm_alias_is_neon_cortex_a72():
    t = resolve_target("arm").tvm_dict()
    assert t["mtriple"] == "aarch64-linux-gnu" and t["mcpu"] == "cortex-a72"
    assert "+neon" in t["mattr"]


def test_gpu_targets_have_a_host():
    for name in ("gpu/jetson-orin", "gpu/cuda-a100", "gpu/mali-opencl"):
        d = resolve_target(name).tvm_dict()
        assert d["host"]["kind"] == "llvm"


def test_unknown_target_suggests_close_names():
    with pytest.raises(UsageError, match=r"unknown target 'x68'.*x86"):
        resolve_target("x68")


def test_host_target_runs_here():
    t = pick_host_target(load_targets())
    assert t.arch == host_arch()
    assert set(t.cpu_flags) <= host_cpu_flags()
    assert t.runs_on_host() == (True, "")
    assert resolve_target("host") == t


def test_targets_this_host_cannot_run_say_why():
    arm = resolve_target("arm")
    ok, why = arm.runs_on_host()
    if host_arch() != "aarch64":
        assert not ok and "aarch64" in why
    ok, why = resolve_target("cuda").runs_on_host()
    assert not ok and "cuda" in why


def _write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp


BASE = ('description = "d"\n[tvm]\nkind = "llvm"\nmtriple = "aarch64-linux-gnu"\n'
        '[device]\narch = "aarch64"\n[toolchain]\ncc = "gcc"\n')


@pytest.mark.parametrize("text,msg", [
    (BASE.replace('description = "d"\n', ""), "description"),
    (BASE.replace('arch = "aarch64"', 'arch = "sparc"'), "arch"),
    (BASE.replace('mtriple = "aarch64-linux-gnu"', 'mtriple = "x86_64-linux-gnu"'),
     "does not match"),
    (BASE.replace('cc = "gcc"', ""), "cc"),
    ("surprise = 1\n" + BASE, "unknown key"),
    ('aliases = ["host"]\n' + BASE, "reserved"),
    ("not toml [", "not valid TOML"),
])
def test_bad_target_files_name_the_file(tmp_path, monkeypatch, text, msg):
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(_write(tmp_path, "bad.toml", text)))
    with pytest.raises(UsageError, match=msg) as exc:
        load_targets()
    assert "bad.toml" in str(exc.value)


def test_user_target_path_adds_devices(tmp_path, monkeypatch):
    _write(tmp_path, "mine.toml", 'aliases = ["mine"]\n' + BASE)
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tmp_path))
    assert resolve_target("mine").path == tmp_path / "mine.toml"
    assert "x86/x86-64-v3" in load_targets()


def test_duplicate_alias_is_an_error(tmp_path, monkeypatch):
    _write(tmp_path, "clash.toml", 'aliases = ["arm"]\n' + BASE)
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tmp_path))
    with pytest.raises(UsageError, match="alias 'arm' is already used"):
        load_targets()


@pytest.mark.compile
@pytest.mark.parametrize("name", sorted(REQUIRED_DEVICES))
def test_target_files_declare_every_cpu_feature_llvm_may_use(name):
    from edgec.backend.tvm.build import check_cpu_flags, required_cpu_flags

    t = resolve_target(name)
    check_cpu_flags(t)  # raises if the file under-declares
    assert required_cpu_flags(t), "the mapping must see some feature for every target"


@pytest.mark.compile
def test_under_declared_cpu_flags_are_caught(tmp_path, monkeypatch):
    from edgec.backend.tvm.build import check_cpu_flags

    _write(tmp_path, "lying.toml", BASE.replace('kind = "llvm"', 'kind = "llvm"\nmcpu = '
                                                '"cortex-a76"')
           .replace('arch = "aarch64"', 'arch = "aarch64"\ncpu_flags = ["asimd"]'))
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tmp_path))
    with pytest.raises(UsageError, match="asimddp"):
        check_cpu_flags(resolve_target("lying"))


def test_edgec_targets_is_the_api_function():
    """The README's `edgec.targets()`: no submodule of that name may shadow it."""
    import edgec

    found = edgec.targets()
    assert isinstance(found["arm/raspberry-pi-4"], edgec.Target)
    assert edgec.resolve_target("arm") == found["arm/raspberry-pi-4"]
