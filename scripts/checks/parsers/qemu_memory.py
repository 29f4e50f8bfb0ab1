"""What a QEMU process's memory is made of, from its /proc/PID/smaps: the guest's RAM, TCG's
translation cache and the rest (QEMU itself, its libraries, device emulation and buffers).

- Guest RAM: QEMU's memory backend, one anonymous read-write mapping exactly the size of the
  domain's memory; its PSS is the guest RAM touched so far.
- TCG translation cache: under software emulation, the code generation buffer, the largest
  anonymous executable (rwx) mapping (its size is the tb-size, QEMU's or twinlab:tcgCacheMiB,
  less a guard page); its PSS is the translated code written so far. None under KVM.
- QEMU and devices: every other mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scripts.checks.parsers.proc_resources import MemoryMapping


class QemuMemoryMapError(ValueError):
    """The smaps do not look like a QEMU process with a guest of the given size."""


@dataclass(frozen=True)
class QemuMemoryParts:
    """PSS of each part in MiB, plus the sizes of the two mappings found (what was reserved)."""

    guest_ram_mib: float
    tcg_cache_mib: float
    qemu_other_mib: float
    guest_ram_mapped_mib: float
    tcg_cache_mapped_mib: float  # 0 without a TCG cache (KVM)

    @property
    def total_mib(self) -> float:
        return self.guest_ram_mib + self.tcg_cache_mib + self.qemu_other_mib

    def parts(self) -> dict[str, float]:
        """The three parts by the name their samples carry (metric memory_part_mib)."""
        return {
            "guest_ram": self.guest_ram_mib,
            "tcg_cache": self.tcg_cache_mib,
            "qemu_other": self.qemu_other_mib,
        }


def _anonymous(mapping: MemoryMapping) -> bool:
    return mapping.path == ""


def qemu_memory_parts(
    mappings: Sequence[MemoryMapping], guest_memory_mib: float
) -> QemuMemoryParts:
    """Split the PSS of a QEMU process whose guest has `guest_memory_mib` of RAM."""
    guest_kb = round(guest_memory_mib * 1024)
    guest = [
        m for m in mappings if _anonymous(m) and m.size_kb == guest_kb and m.perms.startswith("rw-")
    ]
    if not guest:
        raise QemuMemoryMapError(
            f"no anonymous read-write mapping of {guest_kb} kB (the guest's {guest_memory_mib:g} "
            "MiB): not the smaps of this domain's QEMU"
        )
    executable = [m for m in mappings if _anonymous(m) and m.perms.startswith("rwx")]
    cache = max(executable, key=lambda m: m.size_kb, default=None)
    ram = guest[0]
    total_kb = sum(m.pss_kb for m in mappings)
    cache_pss = cache.pss_kb if cache is not None else 0
    return QemuMemoryParts(
        guest_ram_mib=ram.pss_kb / 1024,
        tcg_cache_mib=cache_pss / 1024,
        qemu_other_mib=(total_kb - ram.pss_kb - cache_pss) / 1024,
        guest_ram_mapped_mib=ram.size_kb / 1024,
        tcg_cache_mapped_mib=cache.size_kb / 1024 if cache is not None else 0.0,
    )
