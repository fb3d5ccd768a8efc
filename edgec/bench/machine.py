"""What the numbers were measured on: CPU, cores, ISA, versions, date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..target_registry import host_cpu_flags

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
    flags = host_cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
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
    return (f"{machine['cpu']}, {machine['cores']} cores ({isa}); {vers}; "
            f"{machine['date'][:10]}")
