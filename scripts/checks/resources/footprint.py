"""What an instance costs the host right now, read from the host's side.

Container: its cgroup (the memory `docker stats` shows, CPU time of every task in it).
VM: its QEMU process (proportional set size, CPU time of all its threads). Both read on the
host that runs the instance, so the checks run there.
"""

from __future__ import annotations

import functools
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
from scripts.checks.targets.host import HostHandle

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


@dataclass(frozen=True)
class MemoryReading:
    charged_mib: float
    metadata: dict[str, Value] = field(default_factory=dict)
    # What the figure is made of, in MiB (a VM: guest_ram, tcg_cache, qemu_other); empty when
    # it is read as one piece.
    parts_mib: dict[str, float] = field(default_factory=dict)


def _read(path: Path, what: str, host: HostHandle | None = None) -> str:
    """A file of the instance's host: this machine's when `host` is None."""
    try:
        return path.read_text() if host is None else host.read_text(str(path))
    except OSError as error:
        reason = error.strerror or str(error)
        raise InstanceNotRunningError(f"cannot read {path} ({what}): {reason}") from None


def _subdirs(root: Path, host: HostHandle | None) -> list[Path]:
    """Directories directly under `root` (not symlinks to them), on the host."""
    if host is None or host.is_local:
        found = sorted(root.iterdir()) if root.is_dir() else []
        return [path for path in found if path.is_dir() and not path.is_symlink()]
    return list(_remote_subdirs(host, root))


@functools.cache
def _remote_subdirs(host: HostHandle, root: Path) -> tuple[Path, ...]:
    """The cgroup mounts of a remote host, listed once (each listing is an SSH session)."""
    done = host.run(["find", str(root), "-mindepth", "1", "-maxdepth", "1", "-type", "d"])
    return tuple(sorted(Path(line) for line in done.stdout.splitlines() if line))


def v1_controller_dir(
    controller: str, root: Path = CGROUP_ROOT, host: HostHandle | None = None
) -> Path | None:
    """The cgroup v1 mount holding `controller` (may be shared, e.g. cpu,cpuacct)."""
    for mount in _subdirs(root, host):
        if controller in mount.name.split(","):
            return mount
    return None


def unified_dir(root: Path = CGROUP_ROOT, host: HostHandle | None = None) -> Path:
    """Where cgroup v2 is mounted: the root itself (pure v2) or root/unified (hybrid)."""
    try:
        _read(root / "cgroup.controllers", "cgroup v2 controllers", host)
        return root
    except InstanceNotRunningError:
        return root / "unified"


def container_cgroup(
    pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT, host: HostHandle | None = None
) -> tuple[str, Path, Path]:
    """(cgroup version, memory dir, cpu-accounting dir) of the cgroup holding `pid`."""
    paths = parse_proc_cgroup(_read(proc / str(pid) / "cgroup", "container's cgroup", host))
    memory = paths.v1_path("memory")
    cpuacct = paths.v1_path("cpuacct")
    memory_mount = v1_controller_dir("memory", root, host)
    cpuacct_mount = v1_controller_dir("cpuacct", root, host)
    if memory and cpuacct and memory_mount and cpuacct_mount:
        return "v1", memory_mount / memory.lstrip("/"), cpuacct_mount / cpuacct.lstrip("/")
    if paths.unified is None:
        raise InstanceNotRunningError(f"process {pid} is in no memory cgroup")
    unified = _domain_cgroup(unified_dir(root, host) / paths.unified.lstrip("/"), host)
    return "v2", unified, unified


def _domain_cgroup(directory: Path, host: HostHandle | None) -> Path:
    """The cgroup v2 directory that accounts memory for `directory`: itself, or the nearest
    parent that is not "threaded" (libvirt puts QEMU's threads in threaded children, emulator
    and vcpuN, of the machine scope, which holds the memory of all of them)."""
    while True:
        try:
            kind = _read(directory / "cgroup.type", "cgroup type", host).strip()
        except InstanceNotRunningError:
            return directory
        if kind != "threaded":
            return directory
        directory = directory.parent


def container_memory(
    pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT, host: HostHandle | None = None
) -> MemoryReading:
    version, memory_dir, _ = container_cgroup(pid, proc, root, host)
    stat_text = _read(memory_dir / "memory.stat", "memory.stat", host)
    stat = parse_flat_keyed(stat_text)
    if version == "v1":
        usage = _read(memory_dir / "memory.usage_in_bytes", "memory usage", host)
        memory = cgroup_v1_memory(usage, stat_text)
        rss, cache = stat.get("total_rss", 0), stat.get("total_cache", 0)
    else:
        current = _read(memory_dir / "memory.current", "memory usage", host)
        memory = cgroup_v2_memory(current, stat_text)
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


def container_cpu_ns(
    pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT, host: HostHandle | None = None
) -> int:
    version, _, cpu_dir = container_cgroup(pid, proc, root, host)
    if version == "v1":
        return cgroup_v1_cpu_ns(_read(cpu_dir / "cpuacct.usage", "CPU accounting", host))
    return cgroup_v2_cpu_ns(_read(cpu_dir / "cpu.stat", "CPU accounting", host))


def qemu_memory(
    pid: int,
    proc: Path = PROC,
    guest_memory_mib: float | None = None,
    host: HostHandle | None = None,
) -> MemoryReading:
    """PSS of the QEMU process; with the guest's memory size, also what it is made of (guest
    RAM, TCG's code cache, the rest) from /proc/PID/smaps."""
    rollup = parse_smaps_rollup(_read(proc / str(pid) / "smaps_rollup", "QEMU memory", host))
    extra: dict[str, Value] = {
        f"{key.lower()}_mib": round(rollup[key] / 1024, 3)
        for key in ("Rss", "Pss_Anon", "Pss_File", "Pss_Shmem")
        if key in rollup
    }
    parts: dict[str, float] = {}
    if guest_memory_mib is not None:
        mappings = parse_smaps(_read(proc / str(pid) / "smaps", "QEMU memory map", host))
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
    pid: int,
    proc: Path = PROC,
    root: Path = CGROUP_ROOT,
    guest_memory_mib: float | None = None,
    host: HostHandle | None = None,
) -> MemoryReading:
    """A VM measured as a container is (R2 like for like): its libvirt machine cgroup, which
    holds QEMU with all its threads, by the same formula (usage minus inactive file); QEMU's PSS
    beside it (`pss_mib`), with what the PSS is made of (the parts)."""
    cgroup = container_memory(pid, proc, root, host)
    pss = qemu_memory(pid, proc, guest_memory_mib, host)
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


def qemu_cpu_ns(pid: int, proc: Path = PROC, host: HostHandle | None = None) -> int:
    ticks = proc_stat_cpu_ticks(_read(proc / str(pid) / "stat", "QEMU CPU time", host))
    return ticks * 1_000_000_000 // clock_ticks_per_s(host)


def clock_ticks_per_s(host: HostHandle | None) -> int:
    """USER_HZ of the host's kernel (/proc/PID/stat counts in it)."""
    if host is None or host.is_local:
        return os.sysconf("SC_CLK_TCK")
    return int(host.run(["getconf", "CLK_TCK"]).stdout.strip() or 100)
