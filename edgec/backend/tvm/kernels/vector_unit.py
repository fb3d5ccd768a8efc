"""The SIMD shape of a CPU target, from LLVM's feature list for it.

Tile sizes follow from it: lanes per vector register and how many registers
can hold accumulators without spilling (measured: x86 tiles on NEON spill
and lose most of the speed, so nothing here is fixed for one CPU).
"""

from __future__ import annotations

from dataclasses import dataclass


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


def vector_unit(arch: str, features: set[str], fma_bits: int | None = None) -> VectorUnit:
    """``fma_bits``: the width of the FMA datapath when narrower than the
    registers (the target file's [device] fma_bits; LLVM does not say)."""
    fma = fma_bits // 32 if fma_bits else 0
    if arch == "x86_64":
        if "avx512f" in features:
            return VectorUnit("avx512", 16, 32, min(fma, 16))
        if "avx2" in features or "avx" in features:
            return VectorUnit("avx2", 8, 16)
        return VectorUnit("sse", 4, 16)
    if arch == "aarch64":
        return VectorUnit("neon", 4, 32)
    return VectorUnit("generic", 4, 16)
