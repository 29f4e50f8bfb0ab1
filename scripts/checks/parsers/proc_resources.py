"""Parsers for the host-side files that say what an instance costs: cgroup memory and CPU
accounting of a container, /proc of the QEMU process of a VM, and `qemu-img info` of its disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class CgroupPaths:
    """Where a process sits: cgroup v1 paths by controller, and its v2 (unified) path if any."""

    v1: dict[str, str]
    unified: str | None

    def v1_path(self, controller: str) -> str | None:
        return self.v1.get(controller)


def parse_proc_cgroup(text: str) -> CgroupPaths:
    """/proc/PID/cgroup: 'ID:controller[,controller]:path' lines; v2 is the '0::path' line.

    Read from the host (the initial cgroup namespace), the paths are absolute below the mount.
    """
    v1: dict[str, str] = {}
    unified = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            unified = path
            continue
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return CgroupPaths(v1, unified)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat) as a dict of ints; other lines are skipped."""
    values = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("-").isdigit():
            values[fields[0]] = int(fields[1])
    return values


@dataclass(frozen=True)
class CgroupMemory:
    usage_bytes: int
    inactive_file_bytes: int

    @property
    def charged_bytes(self) -> int:
        """What `docker stats` shows: usage minus the inactive file cache the kernel can drop
        at once (docker CLI calculateMemUsageUnixNoCache)."""
        if self.inactive_file_bytes < self.usage_bytes:
            return self.usage_bytes - self.inactive_file_bytes
        return self.usage_bytes


def cgroup_v1_memory(usage_in_bytes: str, memory_stat: str) -> CgroupMemory:
    """cgroup v1 memory.usage_in_bytes and memory.stat (total_inactive_file counts children)."""
    stat = parse_flat_keyed(memory_stat)
    return CgroupMemory(int(usage_in_bytes.strip()), stat.get("total_inactive_file", 0))


def cgroup_v2_memory(memory_current: str, memory_stat: str) -> CgroupMemory:
    stat = parse_flat_keyed(memory_stat)
    return CgroupMemory(int(memory_current.strip()), stat.get("inactive_file", 0))


def cgroup_v1_cpu_ns(cpuacct_usage: str) -> int:
    """cpuacct.usage: CPU time of every task in the cgroup, in nanoseconds."""
    return int(cpuacct_usage.strip())


def cgroup_v2_cpu_ns(cpu_stat: str) -> int:
    stat = parse_flat_keyed(cpu_stat)
    if "usage_usec" not in stat:
        raise ValueError("no usage_usec line in cpu.stat")
    return stat["usage_usec"] * 1000


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """/proc/PID/smaps_rollup: 'Field:   N kB' lines as a dict of kB (Rss, Pss, Pss_Anon, ...)."""
    values = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and len(fields) == 2 and fields[1] == "kB" and fields[0].isdigit():
            values[key.strip()] = int(fields[0])
    if "Pss" not in values:
        raise ValueError("no Pss line in smaps_rollup (kernel older than 4.14?)")
    return values


def proc_stat_cpu_ticks(text: str) -> int:
    """utime + stime of /proc/PID/stat, in clock ticks, summed over all threads of the process.

    comm (field 2) may hold spaces and parentheses, so fields are counted after the last ')'.
    """
    after_comm = text.rpartition(")")[2].split()
    # after_comm[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(after_comm[11]) + int(after_comm[12])


def cpu_percent(cpu_seconds: float, window_s: float) -> float:
    """CPU time over a wall-clock window as percent of one core (200 = two cores busy)."""
    if window_s <= 0:
        raise ValueError("window must be positive")
    return 100.0 * cpu_seconds / window_s


@dataclass(frozen=True)
class DiskImage:
    filename: str
    format: str
    virtual_size_bytes: int
    actual_size_bytes: int
    backing_filename: str | None


def parse_qemu_img_chain(text: str) -> list[DiskImage]:
    """`qemu-img info --output=json [--backing-chain]`: the image first, its backing files after.

    Without --backing-chain qemu-img prints one object, with it a list.
    """
    data = json.loads(text)
    records = data if isinstance(data, list) else [data]
    return [
        DiskImage(
            filename=record["filename"],
            format=record["format"],
            virtual_size_bytes=int(record["virtual-size"]),
            actual_size_bytes=int(record.get("actual-size", 0)),
            backing_filename=record.get("full-backing-filename") or record.get("backing-filename"),
        )
        for record in records
    ]


def meminfo_available_mib(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise ValueError("no MemAvailable line in /proc/meminfo")


@dataclass(frozen=True)
class MemoryMapping:
    perms: str
    path: str
    size_kb: int
    rss_kb: int
    pss_kb: int


def parse_smaps(text: str) -> list[MemoryMapping]:
    """/proc/PID/smaps: one header line per mapping ('start-end perms offset dev inode
    [path]') followed by 'Field: N kB' lines."""
    mappings: list[MemoryMapping] = []
    header: list[str] | None = None
    fields: dict[str, int] = {}

    def flush() -> None:
        if header is not None:
            path = header[5] if len(header) > 5 else ""
            mappings.append(
                MemoryMapping(
                    header[1],
                    path,
                    fields.get("Size", 0),
                    fields.get("Rss", 0),
                    fields.get("Pss", 0),
                )
            )

    for line in text.splitlines():
        first = line.split(" ", 1)[0]
        if "-" in first and ":" not in first:
            flush()
            header, fields = line.split(None, 5), {}
            continue
        key, sep, rest = line.partition(":")
        values = rest.split()
        if sep and len(values) == 2 and values[1] == "kB" and values[0].isdigit():
            fields[key.strip()] = int(values[0])
    flush()
    return mappings
