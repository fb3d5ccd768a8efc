"""What the numbers were measured on: CPU, cores, ISA, versions, date."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..errors import EdgecError
from ..target_registry import host_core_count, host_cpu, load_targets, pick_host_target

_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "asimd", "asimddp", "sve")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    """The CPU as /proc/cpuinfo names it, with the vendor, family and model that
    decide edgec's host target (machines of one kind differ: Zen 3, Zen 4,
    Sapphire Rapids), the target file 'host' resolved to, and the CPUs this
    process may use (the thread count every engine defaults to)."""
    cpu = host_cpu()
    flags = cpu.flags
    try:
        host = pick_host_target(load_targets()).name
    except EdgecError:  # a machine no target file fits still gets its numbers
        host = "none fits"
    return {
        "cpu": cpu_model(),
        "vendor": cpu.vendor, "family": cpu.family, "model": cpu.model,
        "host_target": host,
        "cores": host_core_count()[0],
        "arch": platform.machine(),
        "isa": [f for f in _ISA_FLAGS if f in flags],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def caption(machine: dict, versions: dict) -> str:
    """One line for charts and tables: where and with what the numbers were taken."""
    isa = "/".join(machine["isa"]) or "no SIMD flags"
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    family = (f" family {machine['family']} model {machine['model']}"
              if machine.get("family") is not None else "")
    target = f", edgec host target {machine['host_target']}" if machine.get("host_target") else ""
    return (f"{machine['cpu']}{family}, {machine['cores']} cores ({isa}){target}; {vers}; "
            f"{machine['date'][:10]}")
