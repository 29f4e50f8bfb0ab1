"""What an instance costs the host right now, read from the host's side.

Container: its cgroup (the memory `docker stats` shows, CPU time of every task in it).
VM: its QEMU process (proportional set size, CPU time of all its threads). Both read on the
host that runs the instance, so the checks run there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from scripts.checks.parsers.proc_resources import (
    MIB,
    cgroup_v1_cpu_ns,
    cgroup_v1_memory,
    cgroup_v2_cpu_ns,
    cgroup_v2_memory,
    parse_flat_keyed,
    parse_proc_cgroup,
    parse_smaps,
    parse_smaps_rollup,
    proc_stat_cpu_ticks,
)
from scripts.checks.parsers.qemu_memory import qemu_memory_parts
from scripts.checks.resources.errors import InstanceNotRunningError
from scripts.checks.results.samples import Value

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


@dataclass(frozen=True)
class MemoryReading:
    charged_mib: float
    metadata: dict[str, Value] = field(default_factory=dict)
    # What the figure is made of, in MiB (a VM: guest_ram, tcg_cache, qemu_other); empty when
    # it is read as one piece.
    parts_mib: dict[str, float] = field(default_factory=dict)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise InstanceNotRunningError(f"cannot read {path} ({what}): {error.strerror}") from None


def v1_controller_dir(controller: str, root: Path = CGROUP_ROOT) -> Path | None:
    """The cgroup v1 mount holding `controller` (may be shared, e.g. cpu,cpuacct)."""
    for mount in sorted(root.iterdir()) if root.is_dir() else []:
        if controller in mount.name.split(",") and mount.is_dir() and not mount.is_symlink():
            return mount
    return None


def unified_dir(root: Path = CGROUP_ROOT) -> Path:
    """Where cgroup v2 is mounted: the root itself (pure v2) or root/unified (hybrid)."""
    return root if (root / "cgroup.controllers").exists() else root / "unified"


def container_cgroup(
    pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT
) -> tuple[str, Path, Path]:
    """(cgroup version, memory dir, cpu-accounting dir) of the cgroup holding `pid`."""
    paths = parse_proc_cgroup(_read(proc / str(pid) / "cgroup", "container's cgroup"))
    memory = paths.v1_path("memory")
    cpuacct = paths.v1_path("cpuacct")
    memory_mount = v1_controller_dir("memory", root)
    cpuacct_mount = v1_controller_dir("cpuacct", root)
    if memory and cpuacct and memory_mount and cpuacct_mount:
        return "v1", memory_mount / memory.lstrip("/"), cpuacct_mount / cpuacct.lstrip("/")
    if paths.unified is None:
        raise InstanceNotRunningError(f"process {pid} is in no memory cgroup")
    unified = _domain_cgroup(unified_dir(root) / paths.unified.lstrip("/"))
    return "v2", unified, unified


def _domain_cgroup(directory: Path) -> Path:
    """The cgroup v2 directory that accounts memory for `directory`: itself, or the nearest
    parent that is not "threaded" (libvirt puts QEMU's threads in threaded children, emulator
    and vcpuN, of the machine scope, which holds the memory of all of them)."""
    while (directory / "cgroup.type").is_file() and (
        (directory / "cgroup.type").read_text().strip() == "threaded"
    ):
        directory = directory.parent
    return directory


def container_memory(pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT) -> MemoryReading:
    version, memory_dir, _ = container_cgroup(pid, proc, root)
    stat_text = _read(memory_dir / "memory.stat", "memory.stat")
    stat = parse_flat_keyed(stat_text)
    if version == "v1":
        usage = _read(memory_dir / "memory.usage_in_bytes", "memory usage")
        memory = cgroup_v1_memory(usage, stat_text)
        rss, cache = stat.get("total_rss", 0), stat.get("total_cache", 0)
    else:
        memory = cgroup_v2_memory(_read(memory_dir / "memory.current", "memory usage"), stat_text)
        rss, cache = stat.get("anon", 0), stat.get("file", 0)
    return MemoryReading(
        memory.charged_bytes / MIB,
        {
            "method": "cgroup usage minus inactive file (docker stats)",
            "cgroup_version": version,
            "raw_usage_mib": round(memory.usage_bytes / MIB, 3),
            "inactive_file_mib": round(memory.inactive_file_bytes / MIB, 3),
            "rss_mib": round(rss / MIB, 3),
            "cache_mib": round(cache / MIB, 3),
        },
    )


def container_cpu_ns(pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT) -> int:
    version, _, cpu_dir = container_cgroup(pid, proc, root)
    if version == "v1":
        return cgroup_v1_cpu_ns(_read(cpu_dir / "cpuacct.usage", "CPU accounting"))
    return cgroup_v2_cpu_ns(_read(cpu_dir / "cpu.stat", "CPU accounting"))


def qemu_memory(
    pid: int, proc: Path = PROC, guest_memory_mib: float | None = None
) -> MemoryReading:
    """PSS of the QEMU process; with the guest's memory size, also what it is made of (guest
    RAM, TCG's code cache, the rest) from /proc/PID/smaps."""
    rollup = parse_smaps_rollup(_read(proc / str(pid) / "smaps_rollup", "QEMU memory"))
    extra: dict[str, Value] = {
        f"{key.lower()}_mib": round(rollup[key] / 1024, 3)
        for key in ("Rss", "Pss_Anon", "Pss_File", "Pss_Shmem")
        if key in rollup
    }
    parts: dict[str, float] = {}
    if guest_memory_mib is not None:
        mappings = parse_smaps(_read(proc / str(pid) / "smaps", "QEMU memory map"))
        split = qemu_memory_parts(mappings, guest_memory_mib)
        parts = split.parts()
        extra |= {f"{part}_pss_mib": round(value, 3) for part, value in parts.items()}
        extra |= {
            "guest_ram_mapped_mib": round(split.guest_ram_mapped_mib, 3),
            "tcg_cache_mapped_mib": round(split.tcg_cache_mapped_mib, 3),
        }
    return MemoryReading(
        rollup["Pss"] / 1024,
        {"method": "QEMU process PSS (/proc/PID/smaps_rollup)", "qemu_pid": pid, **extra},
        parts,
    )


def vm_memory(
    pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT, guest_memory_mib: float | None = None
) -> MemoryReading:
    """A VM measured as a container is (R2 like for like): its libvirt machine cgroup, which
    holds QEMU with all its threads, by the same formula (usage minus inactive file); QEMU's PSS
    beside it (`pss_mib`), with what the PSS is made of (the parts)."""
    cgroup = container_memory(pid, proc, root)
    pss = qemu_memory(pid, proc, guest_memory_mib)
    return MemoryReading(
        cgroup.charged_mib,
        {
            **pss.metadata,
            **cgroup.metadata,
            "method": "libvirt machine cgroup usage minus inactive file (as a container's)",
            "pss_mib": round(pss.charged_mib, 3),
        },
        pss.parts_mib,
    )


def qemu_cpu_ns(pid: int, proc: Path = PROC) -> int:
    ticks = proc_stat_cpu_ticks(_read(proc / str(pid) / "stat", "QEMU CPU time"))
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
