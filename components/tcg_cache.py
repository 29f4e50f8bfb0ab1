"""The size of QEMU's TCG translation cache (`twinlab:tcgCacheMiB`): what software emulation
costs in memory, set so a user can compare a TCG VM with a KVM one (which has no such cache).

Under TCG, QEMU translates guest code into host code kept in one anonymous executable mapping,
the code generation buffer ("tb-size"). Left unset, QEMU 7.2 sizes it itself: 1 GiB on a
64-bit host, or host RAM / 8 when that is smaller (accel/tcg since QEMU 5.1); only the pages
it has written cost memory. libvirt >= 8.0 sets it with <features><tcg><tb-cache>.
"""

from __future__ import annotations

CONFIG_KEY = "tcgCacheMiB"
# QEMU's own bounds for an x86-64 host: at least 1 MiB (MIN_CODE_GEN_BUFFER_SIZE), at most
# 2 GiB (MAX_CODE_GEN_BUFFER_SIZE: translated blocks jump to each other with 32-bit offsets).
MIN_MIB = 1
MAX_MIB = 2048
QEMU_DEFAULT = "QEMU's own: 1 GiB on a 64-bit host, host RAM / 8 if smaller"


def tb_cache_feature(cache_mib: int | None) -> str:
    """The domain XML inside <features> that sets the cache; empty for QEMU's default."""
    if cache_mib is None:
        return ""
    return f"<tcg><tb-cache unit='MiB'>{cache_mib}</tb-cache></tcg>"
