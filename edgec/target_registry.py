"""Devices as data: targets/*.toml -> frozen Target values.

A device is a TOML file (see README, "Target files"); adding one never means
editing code. This module only reads and validates the files, describes this
machine's CPU (/proc/cpuinfo, CPU affinity) and picks the file that fits it
best ('host'); turning a Target into a tvm.target.Target is the backend's
job, so nothing here imports TVM.
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
_TOP_KEYS = {"description", "aliases", "tvm", "host", "device", "toolchain", "accelerator", "cpu"}
#: an accelerator file with ``cpu = ...`` takes these tables from the CPU target it names
_CPU_TABLES = ("tvm", "host", "device", "toolchain")
_DEVICE_KEYS = {"arch", "cpu_flags", "fma_bits", "vendor", "cpu_families"}
_TOOLCHAIN_KEYS = {"cc", "flags", "package"}
NUM_CORES = "num-cores"
CPUINFO = Path("/proc/cpuinfo")
#: /proc/cpuinfo flags shown as SIMD by 'edgec targets --host' (with those the files name)
_SIMD_PREFIXES = ("sse", "ssse", "avx", "amx", "fma", "f16c", "asimd", "sve", "i8mm", "bf16")
_ARCH_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_GPU_KINDS = {"cuda", "opencl", "vulkan", "rocm", "metal"}
#: (artifact arch, host arch) pairs edgec runs under qemu-user (edgec/bundle/emulate.py).
EMULATED = {("aarch64", "x86_64")}


def normalize_arch(machine: str) -> str:
    """Map platform.machine() spellings to one name per architecture."""
    return _ARCH_NAMES.get(machine.lower(), machine.lower())


def host_arch() -> str:
    """This machine's architecture, as target files name it (``x86_64``, ``aarch64``)."""
    return normalize_arch(platform.machine())


@dataclass(frozen=True)
class HostCPU:
    """A CPU as /proc/cpuinfo describes it: what 'host' is picked by."""

    arch: str
    vendor: str | None = None  # vendor_id (x86 only): GenuineIntel, AuthenticAMD
    family: int | None = None  # cpu family: Intel 6; AMD 25 (Zen 3, Zen 4), 26 (Zen 5)
    model: int | None = None
    model_name: str = ""
    flags: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"arch": self.arch, "vendor": self.vendor, "family": self.family,
                "model": self.model, "model_name": self.model_name, "flags": sorted(self.flags)}


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_cpuinfo(text: str, arch: str) -> HostCPU:
    """/proc/cpuinfo text -> HostCPU; the first processor's fields (x86 'flags',
    aarch64 'Features'), so a test can feed any machine's text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", fields.get("Features", ""))
    return HostCPU(arch=normalize_arch(arch), vendor=fields.get("vendor_id") or None,
                   family=_int(fields.get("cpu family")), model=_int(fields.get("model")),
                   model_name=fields.get("model name", ""), flags=frozenset(flags.split()))


def host_cpu() -> HostCPU:
    """This machine's CPU. The kernel's flags are what counts: a VM may hide
    AVX-512 from a CPU that has it, and code using it would die with SIGILL."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text, host_arch())


def host_cpu_flags() -> frozenset[str]:
    """CPU features the kernel reports as usable (/proc/cpuinfo 'flags' or 'Features')."""
    return host_cpu().flags


def host_core_count() -> tuple[int, str]:
    """CPUs this process may run on, and where the number came from: the
    affinity mask, not the machine's count (taskset, cpusets and containers
    restrict it; the runtime starts as many threads, see runtime/native.py)."""
    try:
        return len(os.sched_getaffinity(0)), "this process's CPU affinity"
    except (AttributeError, OSError):  # no affinity outside Linux
        return os.cpu_count() or 1, "os.cpu_count() (no CPU affinity on this OS)"


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
    """One device: its TVM target, where its code runs and how to link for it.

    Read from a target file (``targets/<family>/<device>.toml``) by
    ``load_targets``; frozen, so a resolved target cannot drift between
    compile and the manifest.

    Attributes:
        name: the file's path under its target folder, without ``.toml``
            (``arm/raspberry-pi-4``).
        description: the file's one-line description.
        path: the target file.
        arch: ``x86_64`` or ``aarch64``: the machine that runs the code.
        aliases: short names ``resolve_target`` also accepts (``arm``).
        cpu_flags: /proc/cpuinfo flags the code may use; a host lacking one
            refuses the artifact instead of dying with SIGILL.
        cc, cc_flags, cc_package: the C compiler that links the library, its
            flags, and the Debian package named when it is missing.
        fma_bits: the FMA datapath width where narrower than the registers
            (Zen 4: 256), so kernels may use half-width vectors.
        vendor, cpu_families: the /proc/cpuinfo vendor_id and cpu family
            numbers ``host`` may pick the file for (none: any CPU).
    """

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
    vendor: str | None = None  # the /proc/cpuinfo vendor_id 'host' may pick this file for
    cpu_families: tuple[int, ...] = ()  # and its 'cpu family' numbers (none: any)
    _tvm: tuple = field(default=(), repr=False)
    _host: tuple | None = field(default=None, repr=False)
    _accelerator: tuple | None = field(default=None, repr=False)
    cpu_target: str | None = None  # an accelerator file's CPU side: a target name or 'host'

    @property
    def accelerator(self) -> dict[str, Any] | None:
        """The [accelerator] table (``plugin`` and the plugin's keys), or None."""
        return None if self._accelerator is None else _thaw(self._accelerator)

    @property
    def resolved(self) -> bool:
        """False for an accelerator file whose CPU target could not be resolved."""
        return bool(self._tvm)

    @property
    def kind(self) -> str:
        """TVM's target kind: ``llvm`` for CPUs, ``cuda``/``opencl``/... for GPUs
        (``unresolved`` for an accelerator file whose CPU target is missing)."""
        return self.tvm.get("kind", "unresolved")

    @property
    def is_gpu(self) -> bool:
        """Whether the kernels run on a GPU (the [host] table is then the CPU side)."""
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
        """The complete dict handed to tvm.target.Target, host included, with
        num-cores resolved (see cores())."""
        d = self.tvm
        if self._host is not None:
            d["host"] = self.host
        elif NUM_CORES not in d:
            cores, _ = self.cores()
            if cores is not None:
                d[NUM_CORES] = cores
        return d

    def cores(self) -> tuple[int | None, str]:
        """(num-cores for TVM, where it comes from): the file's pin; else, for a
        CPU target of this machine's arch, the CPUs this process may use; else
        none. Only MetaSchedule reads it (README, 'Targets')."""
        cpu = self.tvm if self.kind == "llvm" else (self.host or {})
        if NUM_CORES in cpu:
            return cpu[NUM_CORES], f"pinned in {self.path}"
        if self.kind != "llvm":
            return None, "not set: a GPU target's file may pin it in [host]"
        if self.arch != host_arch():
            return None, (f"not set: the code is for {self.arch} and this machine is "
                          f"{host_arch()}; pin it in the file to tune for the device")
        return host_core_count()

    def _cores_json(self) -> dict[str, Any]:
        cores, source = self.cores()
        return {"value": cores, "source": source}

    def cpu_mismatch(self, cpu: HostCPU) -> str:
        """Why ``cpu`` is not one this file is made for; "" if it is, or the file names none."""
        if self.vendor and cpu.vendor != self.vendor:
            return f"made for {self.vendor} CPUs, this one is {cpu.vendor or 'of no vendor_id'}"
        if self.cpu_families and cpu.family not in self.cpu_families:
            return (f"made for {self.vendor} CPU families {_listed(self.cpu_families)}, this "
                    f"one is family {cpu.family}")
        return ""

    def to_json(self) -> dict[str, Any]:
        """Everything the manifest and --save-temps record about the target."""
        return {
            "name": self.name,
            "description": self.description,
            "file": str(self.path),
            "arch": self.arch,
            "cpu_flags": list(self.cpu_flags),
            **({"fma_bits": self.fma_bits} if self.fma_bits else {}),
            **({"vendor": self.vendor} if self.vendor else {}),
            **({"cpu_families": list(self.cpu_families)} if self.cpu_families else {}),
            "tvm": self.tvm_dict(),
            "num_cores": self._cores_json(),
            "toolchain": {"cc": self.cc, "flags": list(self.cc_flags), "package": self.cc_package},
            **({"accelerator": self.accelerator, "cpu_target": self.cpu_target}
               if self._accelerator is not None else {}),
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


def _listed(values) -> str:
    return ", ".join(str(v) for v in values)


def _err(path: Path, msg: str) -> UsageError:
    return UsageError(f"{path}: {msg}; fix the target file (see README, 'Target files')")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _table(path: Path, data: dict, key: str, allowed: set[str]) -> dict:
    """The [key] table (empty if absent); a misspelt key in it is an error, not ignored."""
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise _err(path, f"[{key}] must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise _err(path, f"unknown key(s) {sorted(unknown)} in [{key}] (known: "
                         f"{', '.join(sorted(allowed))})")
    return table


def _check_cpu_side(path: Path, tvm: dict, host: dict | None, arch: str) -> None:
    """The llvm table the CPU code is built from: [tvm] for CPUs, [host] for GPUs."""
    cpu = tvm if tvm["kind"] == "llvm" else (host or {})
    where = "[tvm]" if cpu is tvm else "[host]"
    if cpu.get("kind") != "llvm" or "mtriple" not in cpu:
        raise _err(path, "the CPU side ([tvm] for CPUs, [host] for GPUs) needs kind='llvm' "
                         "and an mtriple")
    if normalize_arch(cpu["mtriple"].split("-")[0]) != arch:
        raise _err(path, f"mtriple {cpu['mtriple']!r} does not match [device] arch {arch!r}")
    cores = cpu.get(NUM_CORES)
    if cores is not None and (not _is_count(cores) or cores < 1):
        raise _err(path, f"{where} num-cores must be a whole number >= 1, or left out (a CPU "
                         "target of this machine's arch then gets this process's CPU count)")


def _fma_bits(path: Path, device: dict) -> int | None:
    fma_bits = device.get("fma_bits")
    if fma_bits is not None and (not _is_count(fma_bits) or fma_bits < 128 or fma_bits % 128):
        raise _err(path, "[device] fma_bits must be a multiple of 128 (the FMA datapath "
                         "width, e.g. 256 on Zen 4)")
    return fma_bits


def _cpu_flags(path: Path, device: dict) -> tuple[str, ...]:
    flags = device.get("cpu_flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise _err(path, "[device] cpu_flags must be a list of /proc/cpuinfo flag names")
    return tuple(flags)


def _cpu_identity(path: Path, device: dict, kind: str,
                  arch: str) -> tuple[str | None, tuple[int, ...]]:
    """(vendor, cpu_families): which CPUs 'host' may pick the file for, beyond its flags."""
    vendor, families = device.get("vendor"), device.get("cpu_families")
    if vendor is None and families is None:
        return None, ()
    if kind != "llvm":
        raise _err(path, "[device] vendor and cpu_families choose the 'host' CPU target, "
                         "which a GPU target never is; leave them out")
    if arch != "x86_64":
        raise _err(path, "[device] vendor and cpu_families match /proc/cpuinfo 'vendor_id' "
                         f"and 'cpu family', which {arch} kernels do not report; leave them out")
    if not isinstance(vendor, str) or not vendor.strip():
        raise _err(path, "[device] vendor must be a /proc/cpuinfo vendor_id such as "
                         "'GenuineIntel' or 'AuthenticAMD' (cpu_families need it: family "
                         "numbers are per vendor)")
    if families is None:
        return vendor, ()
    if not isinstance(families, list) or not families or \
            not all(_is_count(f) and f >= 0 for f in families):
        raise _err(path, "[device] cpu_families must be a non-empty list of /proc/cpuinfo "
                         "'cpu family' numbers, e.g. [25] for AMD Zen 3 and Zen 4")
    return vendor, tuple(families)


def _aliases(path: Path, data: dict) -> tuple[str, ...]:
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _err(path, "'aliases' must be a list of strings")
    if HOST_ALIAS in aliases:
        raise _err(path, f"'{HOST_ALIAS}' is reserved: edgec picks the host target itself")
    return tuple(aliases)


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
    accelerator = _accelerator_table(path, data)
    if "cpu" in data:
        return _accelerator_only(path, name, data, desc, accelerator)
    tvm = data.get("tvm")
    if not isinstance(tvm, dict) or not isinstance(tvm.get("kind"), str):
        raise _err(path, "a [tvm] table with 'kind' is required")
    host = data.get("host")
    if host is not None and not isinstance(host, dict):
        raise _err(path, "[host] must be a table")
    device = _table(path, data, "device", _DEVICE_KEYS)
    arch = device.get("arch")
    if arch not in ("x86_64", "aarch64"):
        raise _err(path, "[device] arch must be 'x86_64' or 'aarch64'")
    _check_cpu_side(path, tvm, host, arch)
    vendor, families = _cpu_identity(path, device, tvm["kind"], arch)
    tool = _table(path, data, "toolchain", _TOOLCHAIN_KEYS)
    if not isinstance(tool.get("cc"), str):
        raise _err(path, "[toolchain] cc (the C compiler that links the library) is required")
    return Target(
        name=name,
        description=" ".join(desc.split()),
        path=path,
        arch=arch,
        aliases=_aliases(path, data),
        cpu_flags=_cpu_flags(path, device),
        cc=tool["cc"],
        cc_flags=tuple(tool.get("flags", [])),
        cc_package=tool.get("package"),
        fma_bits=_fma_bits(path, device),
        vendor=vendor,
        cpu_families=families,
        _tvm=_freeze(tvm),
        _host=None if host is None else _freeze(host),
        _accelerator=None if accelerator is None else _freeze(accelerator),
    )


def _accelerator_table(path: Path, data: dict) -> dict | None:
    table = data.get("accelerator")
    if table is None:
        if "cpu" in data:
            raise _err(path, "'cpu' names the CPU side of an accelerator; it needs an "
                             "[accelerator] table")
        return None
    if not isinstance(table, dict) or not isinstance(table.get("plugin"), str):
        raise _err(path, "[accelerator] must be a table with 'plugin' (the accelerator "
                         "plugin's name, e.g. 'ethos-u')")
    return table


def _accelerator_only(path: Path, name: str, data: dict, desc: str,
                      accelerator: dict) -> Target:
    """An accelerator file whose CPU side is another target (``cpu = "host"``, or a
    name): resolved by load_targets once every file is read."""
    cpu = data["cpu"]
    if not isinstance(cpu, str) or not cpu.strip():
        raise _err(path, "'cpu' must name a CPU target file or 'host'")
    given = [t for t in _CPU_TABLES if t in data]
    if given:
        raise _err(path, f"[{given[0]}] comes from the CPU target 'cpu' names ({cpu!r}); "
                         "give either 'cpu' or the CPU tables, not both")
    return Target(name=name, description=" ".join(desc.split()), path=path, arch="",
                  aliases=_aliases(path, data), cpu_target=cpu,
                  _accelerator=_freeze(accelerator))


def _with_cpu(acc: Target, targets: dict[str, Target]) -> Target:
    """``acc`` with the CPU side of the target its 'cpu' names among ``targets`` (the
    CPU target files only); unchanged when that cannot be resolved here
    (resolve_target then says why)."""
    import dataclasses

    try:
        base = (pick_host_target(targets) if acc.cpu_target == HOST_ALIAS
                else _lookup(acc.cpu_target, targets))
    except (UsageError, UnsupportedError):
        return acc
    if base is None:
        return acc
    return dataclasses.replace(base, name=acc.name, description=acc.description,
                               path=acc.path, aliases=acc.aliases,
                               _accelerator=acc._accelerator,
                               cpu_target=acc.cpu_target if acc.cpu_target != HOST_ALIAS
                               else f"host ({base.name})")


def _lookup(spec: str, targets: dict[str, Target]) -> Target | None:
    """The target ``spec`` names: a file name, else an alias, else a file's short name."""
    if spec in targets:
        return targets[spec]
    for t in targets.values():
        if spec in t.aliases:
            return t
    return next((t for t in targets.values() if t.name.rsplit("/", 1)[-1] == spec), None)


def target_dirs() -> list[Path]:
    """Where target files are looked for: EDGEC_TARGET_PATH's folders, then the bundled ones."""
    extra = [Path(p) for p in os.environ.get(TARGET_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, BUNDLED_TARGETS]


def load_targets() -> dict[str, Target]:
    """All target files by name ('arm/raspberry-pi-4'); the first directory wins a name.

    Raises:
        UsageError: a target file is invalid or two files claim one alias (exit 2).
    """
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
    cpus = {n: t for n, t in found.items() if t.accelerator is None}
    return {n: _with_cpu(t, cpus) if t.cpu_target else t for n, t in found.items()}


@dataclass(frozen=True)
class Fit:
    """How one CPU target file fits a CPU: the flags it lacks, the vendor or family it is not."""

    target: Target
    missing: tuple[str, ...]
    mismatch: str

    @property
    def fits(self) -> bool:
        return not self.missing and not self.mismatch

    @property
    def rank(self) -> tuple:
        """Files made for the CPU's vendor (and family) beat generic ones, then
        more cpu_flags (more specific: they let LLVM use more) beat fewer."""
        t = self.target
        return (t.vendor is not None, len(t.cpu_flags), len(t.cpu_families), t.name)

    def reason(self) -> str:
        if not self.fits:
            lacks = f"this CPU lacks {', '.join(self.missing)}" if self.missing else ""
            return "; ".join(r for r in (self.mismatch, lacks) if r)
        t = self.target
        made = "generic (names no vendor)" if t.vendor is None else f"made for {t.vendor}" + (
            f" family {_listed(t.cpu_families)}" if t.cpu_families else "")
        return f"{made}; all {len(t.cpu_flags)} of its cpu_flags present"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target.name, "fits": self.fits, "reason": self.reason(),
                "missing_flags": list(self.missing), "mismatch": self.mismatch}


@dataclass(frozen=True)
class HostPick:
    """Which target file 'host' is on a CPU and why ('edgec targets --host')."""

    cpu: HostCPU
    fits: tuple[Fit, ...]  # every CPU target file of the CPU's arch, best first
    chosen: Target | None

    @property
    def simd_flags(self) -> tuple[str, ...]:
        """The CPU's flags that decide the pick: those the files name, and SIMD ones."""
        named = {f for fit in self.fits for f in fit.target.cpu_flags}
        return tuple(sorted(f for f in self.cpu.flags
                            if f in named or f.startswith(_SIMD_PREFIXES)))

    @property
    def why(self) -> str:
        if self.chosen is None:
            return (f"no target file fits this {self.cpu.arch} CPU; add one under targets/ "
                    "(see README, 'Adding a device')")
        t, cpu = self.chosen, self.cpu
        others = [f.target.name for f in self.fits if f.fits and f.target is not t]
        also = f"; also fit: {', '.join(others)}" if others else ""
        if t.vendor is not None:
            made = t.vendor + (f" family {cpu.family}" if t.cpu_families else "")
            return (f"made for {made} CPUs, as this one is, and of such files that fit the "
                    f"most specific ({len(t.cpu_flags)} cpu_flags, all present){also}")
        return (f"no file made for {cpu.vendor or 'this CPU'} family {cpu.family} fits, so the "
                f"generic file with the most cpu_flags ({len(t.cpu_flags)}, all present){also}")

    def lines(self, unit: dict[str, Any] | None = None) -> list[str]:
        """'edgec targets --host' as text; ``unit``: the kernels' vector unit for the
        chosen file (VectorUnit.to_json(), from the backend: it needs LLVM)."""
        cpu = self.cpu
        lines = [f"CPU: {cpu.vendor or 'no vendor_id'}, family {cpu.family}, model "
                 f"{cpu.model}, '{cpu.model_name or 'no model name'}' ({cpu.arch})",
                 "flags seen (SIMD, and those the target files name): "
                 + (" ".join(self.simd_flags) or "none"),
                 f"CPU target files for {cpu.arch}, best first:",
                 *([f"  {'fits' if f.fits else 'no  '}  {f.target.name}: {f.reason()}"
                    for f in self.fits] or ["  none"]),
                 f"host = {self.chosen.name if self.chosen else 'none'}: {self.why}"]
        if unit is not None:
            cores = self.chosen._cores_json()
            fma = ("its fma_bits: half-width tiles are tried too"
                   if unit["fma_lanes"] < unit["lanes"] else "as wide as the registers")
            lines += [f"kernels assume: {unit['name']}, {unit['lanes']} float32 lanes "
                      f"({unit['vector_bits']}-bit vectors), {unit['registers']} vector "
                      f"registers ({unit['accumulators']} for accumulators), FMA datapath "
                      f"{unit['fma_lanes']} lanes ({fma})",
                      f"num-cores: {cores['value']} ({cores['source']})"]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"cpu": self.cpu.to_json(),
                "simd_flags": list(self.simd_flags), "targets": [f.to_json() for f in self.fits],
                "chosen": self.chosen.name if self.chosen else None, "why": self.why,
                "num_cores": self.chosen._cores_json() if self.chosen else
                {"value": None, "source": "no target fits"}}


def explain_host(targets: dict[str, Target] | None = None, cpu: HostCPU | None = None) -> HostPick:
    """How each CPU target file of ``cpu``'s arch (default: this machine's) fits it, and
    the pick: all its cpu_flags present and its vendor/family (where it names them)
    matching; files made for the CPU before generic ones, then the most specific."""
    targets = load_targets() if targets is None else targets
    cpu = host_cpu() if cpu is None else cpu
    fits = sorted((Fit(t, tuple(sorted(set(t.cpu_flags) - cpu.flags)), t.cpu_mismatch(cpu))
                   for t in targets.values() if t.kind == "llvm" and t.arch == cpu.arch
                   and t.accelerator is None),
                  key=lambda f: (f.fits, f.rank), reverse=True)
    chosen = fits[0].target if fits and fits[0].fits else None
    return HostPick(cpu, tuple(fits), chosen)


def pick_host_target(targets: dict[str, Target], cpu: HostCPU | None = None) -> Target:
    """The CPU target file that best fits this machine (or ``cpu``); see explain_host."""
    pick = explain_host(targets, cpu)
    if pick.chosen is None:
        raise UnsupportedError(
            f"no target file fits this machine ({pick.cpu.arch}); add one under targets/ "
            "(see README, 'Adding a device'); 'edgec targets --host' says why each file "
            "does not")
    return pick.chosen


def resolve_target(spec: str | Target) -> Target:
    """A target from a file name, a short name, an alias or 'host'.

    Args:
        spec: ``arm/raspberry-pi-4``, ``raspberry-pi-4``, ``arm``, ``host``, or
            a ``Target`` (returned as it is).

    Returns:
        The target; ``host`` is the CPU target file that best fits this
        machine (see ``explain_host``).

    Raises:
        UsageError: an unknown name (the message lists close matches).
        UnsupportedError: ``host`` on a machine no target file fits.
    """
    if isinstance(spec, Target):
        return spec
    targets = load_targets()
    if spec == HOST_ALIAS:
        return pick_host_target(targets)  # explain_host passes over accelerator files
    found = _lookup(spec, targets)
    if found is not None:
        if not found.resolved:
            raise UsageError(f"{found.path}: cpu = {found.cpu_target!r} names no CPU target "
                             "file that resolves here; fix the target file")
        return found
    choices = sorted({*targets, HOST_ALIAS, *(a for t in targets.values() for a in t.aliases),
                      *(t.name.rsplit("/", 1)[-1] for t in targets.values())})
    close = difflib.get_close_matches(spec, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run 'edgec targets' for the list"
    raise UsageError(f"unknown target '{spec}': {hint}")


def target_summary(t: Target) -> str:
    """One line for logs: name and TVM dict."""
    return f"{t.name} {json.dumps(t.tvm_dict(), sort_keys=True)}"
