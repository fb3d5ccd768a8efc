"""The SIMD shape of a CPU target, from LLVM's feature list for it.

Tile sizes follow from it: lanes per vector register and how many registers
can hold accumulators without spilling (measured: x86 tiles on NEON spill
and lose most of the speed, so nothing here is fixed for one CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class VectorUnit:
    name: str
    lanes: int  # float32 lanes per vector register
    registers: int  # architectural vector registers
    fma_lanes: int = 0  # float32 lanes of the FMA datapath (0: as wide as a register)

    def __post_init__(self) -> None:
        if not self.fma_lanes:
            object.__setattr__(self, "fma_lanes", self.lanes)

    @property
    def accumulators(self) -> int:
        """Vector accumulators a register tile may use: the rest hold the
        broadcast input, the weight vectors and addresses."""
        return self.registers - 4 if self.registers >= 32 else self.registers - 3

    @property
    def preferred_accumulators(self) -> int:
        """About where measured tiles peaked: 14-16 of 32 registers, 12 of 16."""
        return min(self.accumulators, 16)

    @property
    def saturating_accumulators(self) -> int:
        """Enough independent FMAs in flight to keep the units busy (about
        latency x FMA ports): tiles from here to preferred rank equal."""
        return self.preferred_accumulators * 3 // 4

    def to_json(self) -> dict:
        """What 'edgec targets --host' reports the kernels assume."""
        return {"name": self.name, "lanes": self.lanes, "vector_bits": self.lanes * 32,
                "fma_lanes": self.fma_lanes, "fma_bits": self.fma_lanes * 32,
                "registers": self.registers, "accumulators": self.accumulators,
                "preferred_accumulators": self.preferred_accumulators}


def _registers(arch: str, features: set[str]) -> VectorUnit:
    if arch == "x86_64":
        if "avx512f" in features:
            return VectorUnit("avx512", 16, 32)
        if "avx2" in features or "avx" in features:
            return VectorUnit("avx2", 8, 16)
        return VectorUnit("sse", 4, 16)
    if arch == "aarch64":
        return VectorUnit("neon", 4, 32)
    return VectorUnit("generic", 4, 16)


def vector_unit(arch: str, features: set[str], fma_bits: int | None = None) -> VectorUnit:
    """``fma_bits``: the width of the FMA datapath when narrower than the
    registers (the target file's [device] fma_bits; LLVM does not say), on
    any unit (Zen 4's AVX-512, Zen 1's AVX2 on 128-bit halves); one at least
    as wide as the registers changes nothing."""
    unit = _registers(arch, features)
    if fma_bits and fma_bits // 32 < unit.lanes:
        return replace(unit, fma_lanes=fma_bits // 32)
    return unit


def target_vector_unit(target) -> VectorUnit:
    """The unit build.py hands the kernels for ``target`` (an edgec Target):
    LLVM's features for its CPU side, and the file's fma_bits."""
    from tvm.target import codegen

    from ..build import cpu_side, tvm_target

    features = set(codegen.llvm_get_cpu_features(cpu_side(tvm_target(target))))
    return vector_unit(target.arch, features, target.fma_bits)
