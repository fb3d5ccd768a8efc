"""Which machine an ELF shared library or program was built for."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm", 243: "riscv64"}


def elf_arch(path: Path) -> str:
    """'x86_64', 'aarch64', ... for an ELF file; UsageError naming it otherwise."""
    try:
        head = Path(path).read_bytes()[:20]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise UsageError(f"{path}: not an ELF shared library")
    machine = int.from_bytes(head[18:20], "little")
    return MACHINES.get(machine, f"machine {machine}")
