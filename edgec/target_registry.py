"""Devices as data: targets/*.toml -> frozen Target values.

A device is a TOML file (see README, "Target files"); adding one never means
editing code. This module only reads and validates the files and picks the
best match for this machine; turning a Target into a TVM target dict is the
backend's job, so nothing here imports TVM.
"""

from __future__ import annotations

import difflib
import json
import os
import platform
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UnsupportedError, UsageError

_PACKAGE = Path(__file__).resolve().parent
#: Where the bundled target files live: inside the package when installed from a
#: wheel (setup.py maps the checkout's targets/ there), else the checkout's own
#: targets/ (editable install or a plain checkout on sys.path).
BUNDLED_TARGETS = next((p for p in (_PACKAGE / "bundled_targets", _PACKAGE.parent / "targets")
                        if p.is_dir()), _PACKAGE.parent / "targets")
#: Extra target folders, os.pathsep-separated, searched before the bundled ones.
TARGET_PATH_ENV = "EDGEC_TARGET_PATH"

HOST_ALIAS = "host"
_TOP_KEYS = {"description", "aliases", "tvm", "host", "device", "toolchain"}
_ARCH_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_GPU_KINDS = {"cuda", "opencl", "vulkan", "rocm", "metal"}
#: (artifact arch, host arch) pairs edgec runs under qemu-user (edgec/bundle/emulate.py).
EMULATED = {("aarch64", "x86_64")}


def normalize_arch(machine: str) -> str:
    """Map platform.machine() spellings to one name per architecture."""
    return _ARCH_NAMES.get(machine.lower(), machine.lower())


def host_arch() -> str:
    return normalize_arch(platform.machine())


def host_cpu_flags() -> frozenset[str]:
    """CPU features the kernel reports as usable (/proc/cpuinfo 'flags' or 'Features').

    The kernel's list is what counts: a VM may hide AVX-512 from a CPU that
    has it, and code using it would die with SIGILL.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("__list__", *(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        if value and value[0] == "__list__":
            return [_thaw(v) for v in value[1:]]
        return {k: _thaw(v) for k, v in value}
    return value


@dataclass(frozen=True)
class Target:
    """One device: its TVM target, where its code runs and how to link for it."""

    name: str
    description: str
    path: Path
    arch: str
    aliases: tuple[str, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    cc: str | None = None
    cc_flags: tuple[str, ...] = ()
    cc_package: str | None = None
    fma_bits: int | None = None  # FMA datapath width when narrower than the registers
    _tvm: tuple = field(default=(), repr=False)
    _host: tuple | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.tvm["kind"]

    @property
    def is_gpu(self) -> bool:
        return self.kind in _GPU_KINDS

    @property
    def tvm(self) -> dict[str, Any]:
        """The [tvm] table as a fresh dict (callers may mutate it)."""
        return _thaw(self._tvm)

    @property
    def host(self) -> dict[str, Any] | None:
        """The [host] table (CPU side of a GPU target), or None."""
        return None if self._host is None else _thaw(self._host)

    def tvm_dict(self) -> dict[str, Any]:
        """The complete dict handed to tvm.target.Target, host included."""
        d = self.tvm
        if self._host is not None:
            d["host"] = self.host
        return d

    def to_json(self) -> dict[str, Any]:
        """Everything the manifest and --save-temps record about the target."""
        return {
            "name": self.name,
            "description": self.description,
            "file": str(self.path),
            "arch": self.arch,
            "cpu_flags": list(self.cpu_flags),
            **({"fma_bits": self.fma_bits} if self.fma_bits else {}),
            "tvm": self.tvm_dict(),
            "toolchain": {"cc": self.cc, "flags": list(self.cc_flags), "package": self.cc_package},
        }

    def runs_on_host(self) -> tuple[bool, str]:
        """(True, "") when this machine can execute code built for the target, else why not."""
        return host_compatibility(self.name, self.kind, self.arch, self.cpu_flags)


def host_compatibility(name: str, kind: str, arch: str,
                       cpu_flags: tuple[str, ...] | list[str]) -> tuple[bool, str]:
    """Can this machine run code built for (kind, arch, cpu_flags)? If not, why and what to do."""
    if arch != host_arch():
        here = ("run it here under qemu-user with 'edgec run ARTIFACT --emulate' (outputs, no "
                "latency), " if (arch, host_arch()) in EMULATED and kind == "llvm" else "")
        return False, (f"built for {arch} (target '{name}') and this machine is {host_arch()}; "
                       f"copy it to the device, {here}or compile with --target host to run it "
                       "natively here")
    if kind in _GPU_KINDS:
        return False, (f"built for a {kind} GPU (target '{name}'); edgec generated its kernels, "
                       f"but this machine has no {kind} device to run them on")
    missing = sorted(set(cpu_flags) - host_cpu_flags())
    if missing:
        return False, (f"built for target '{name}', which needs CPU features this machine "
                       f"lacks ({', '.join(missing)}); compile with --target host to run it here")
    return True, ""


def _err(path: Path, msg: str) -> UsageError:
    return UsageError(f"{path}: {msg}; fix the target file (see README, 'Target files')")


def parse_target_file(path: Path, name: str) -> Target:
    """Read and validate one target file; every mistake names the file and key."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _err(path, f"not valid TOML ({exc})") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _err(path, f"unknown key(s) {sorted(unknown)}")
    desc = data.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise _err(path, "'description' (one line) is required")
    tvm = data.get("tvm")
    if not isinstance(tvm, dict) or not isinstance(tvm.get("kind"), str):
        raise _err(path, "a [tvm] table with 'kind' is required")
    host = data.get("host")
    if host is not None and not isinstance(host, dict):
        raise _err(path, "[host] must be a table")
    device = data.get("device", {})
    arch = device.get("arch")
    if arch not in ("x86_64", "aarch64"):
        raise _err(path, "[device] arch must be 'x86_64' or 'aarch64'")
    cpu = tvm if tvm["kind"] == "llvm" else (host or {})
    if cpu.get("kind") != "llvm" or "mtriple" not in cpu:
        raise _err(path, "the CPU side ([tvm] for CPUs, [host] for GPUs) needs kind='llvm' "
                         "and an mtriple")
    if normalize_arch(cpu["mtriple"].split("-")[0]) != arch:
        raise _err(path, f"mtriple {cpu['mtriple']!r} does not match [device] arch {arch!r}")
    fma_bits = device.get("fma_bits")
    if fma_bits is not None and (not isinstance(fma_bits, int) or isinstance(fma_bits, bool)
                                 or fma_bits < 128 or fma_bits % 128):
        raise _err(path, "[device] fma_bits must be a multiple of 128 (the FMA datapath "
                         "width, e.g. 256 on Zen 4)")
    tool = data.get("toolchain", {})
    if not isinstance(tool.get("cc"), str):
        raise _err(path, "[toolchain] cc (the C compiler that links the library) is required")
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _err(path, "'aliases' must be a list of strings")
    if HOST_ALIAS in aliases:
        raise _err(path, f"'{HOST_ALIAS}' is reserved: edgec picks the host target itself")
    return Target(
        name=name,
        description=" ".join(desc.split()),
        path=path,
        arch=arch,
        aliases=tuple(aliases),
        cpu_flags=tuple(device.get("cpu_flags", [])),
        cc=tool["cc"],
        cc_flags=tuple(tool.get("flags", [])),
        cc_package=tool.get("package"),
        fma_bits=fma_bits,
        _tvm=_freeze(tvm),
        _host=None if host is None else _freeze(host),
    )


def target_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(TARGET_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, BUNDLED_TARGETS]


def load_targets() -> dict[str, Target]:
    """All target files by name ('arm/raspberry-pi-4'); the first directory wins a name."""
    found: dict[str, Target] = {}
    for root in target_dirs():
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.toml")):
            name = path.relative_to(root).with_suffix("").as_posix()
            if name not in found:
                found[name] = parse_target_file(path, name)
    owners: dict[str, str] = {}
    for t in found.values():
        for key in (*t.aliases, t.name.rsplit("/", 1)[-1]):
            other = owners.get(key)
            if other is not None and other != t.name and key in t.aliases:
                raise _err(t.path, f"alias {key!r} is already used by target '{other}'")
            owners.setdefault(key, t.name)
    return found


def pick_host_target(targets: dict[str, Target]) -> Target:
    """The CPU target file that best fits this machine: right arch, most features usable."""
    arch, flags = host_arch(), host_cpu_flags()
    fits = [t for t in targets.values()
            if t.kind == "llvm" and t.arch == arch and set(t.cpu_flags) <= flags]
    if not fits:
        raise UnsupportedError(
            f"no target file fits this machine ({arch}); add one under targets/ "
            "(see README, 'Adding a device')")
    return max(fits, key=lambda t: (len(t.cpu_flags), t.name))


def resolve_target(spec: str | Target) -> Target:
    """A target from a file name, a short name, an alias or 'host'."""
    if isinstance(spec, Target):
        return spec
    targets = load_targets()
    if spec == HOST_ALIAS:
        return pick_host_target(targets)
    if spec in targets:
        return targets[spec]
    by_key: dict[str, Target] = {}
    for t in targets.values():
        for a in t.aliases:
            by_key[a] = t
    for t in targets.values():
        by_key.setdefault(t.name.rsplit("/", 1)[-1], t)
    if spec in by_key:
        return by_key[spec]
    choices = sorted({*targets, *by_key, HOST_ALIAS})
    close = difflib.get_close_matches(spec, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run 'edgec targets' for the list"
    raise UsageError(f"unknown target '{spec}': {hint}")


def target_summary(t: Target) -> str:
    """One line for logs: name and TVM dict."""
    return f"{t.name} {json.dumps(t.tvm_dict(), sort_keys=True)}"
