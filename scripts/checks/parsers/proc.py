"""Parsers for /proc, /sys and cgroup files as read inside a target."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Linux capability numbers (include/uapi/linux/capability.h), index = bit.
CAP_NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
CAP_SYS_ADMIN = CAP_NAMES.index("SYS_ADMIN")
# Split out of CAP_SYS_ADMIN in Linux 5.8/5.9; the kernel still grants their powers to holders
# of CAP_SYS_ADMIN, and older container runtimes (Docker 20.10) do not know their names.
SPLIT_FROM_SYS_ADMIN = tuple(
    CAP_NAMES.index(name) for name in ("PERFMON", "BPF", "CHECKPOINT_RESTORE")
)
# cgroup v1 reports "no limit" as a page-rounded 2**63-1; anything this large is no limit.
NO_LIMIT_BYTES = 1 << 60
PROC_HEADER = re.compile(r"^==> /proc/(\d+)/(stat|cmdline) <==$")
MIB = 1024 * 1024


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as a dict of field -> value (whitespace-stripped)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def cap_mask(hex_text: str) -> int:
    return int(hex_text, 16)


def cap_names(mask: int) -> list[str]:
    return [name for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1]


def cap_count(mask: int) -> int:
    return bin(mask).count("1")


def cap_powers(mask: int) -> int:
    """The capability bits whose powers `mask` grants (CAP_SYS_ADMIN implies the split ones)."""
    if mask >> CAP_SYS_ADMIN & 1:
        for bit in SPLIT_FROM_SYS_ADMIN:
            mask |= 1 << bit
    return mask


def holds_all_caps(inside: int, host: int) -> bool:
    """True when `inside` grants every power the host's root holds."""
    return host & ~cap_powers(inside) == 0


def is_identity_uid_map(text: str) -> bool:
    """True for the initial user namespace's map: one line '0 0 4294967295'."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    return rows == [["0", "0", "4294967295"]]


def meminfo_total_mib(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    raise ValueError("no MemTotal line in /proc/meminfo")


def uptime_s(text: str) -> float:
    return float(text.split()[0])


def module_names(text: str) -> frozenset[str]:
    """Loaded module names from /proc/modules."""
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class ProcessEntry:
    pid: int
    ppid: int
    comm: str
    cmdline: str

    @property
    def command(self) -> str:
        """The command line, or [comm] for kernel threads (empty cmdline), as ps shows them."""
        return self.cmdline or f"[{self.comm}]"


def parse_stat_line(line: str) -> tuple[int, str, int]:
    """pid, comm and ppid from a /proc/PID/stat line; comm may contain spaces and ')'."""
    pid_text, _, rest = line.partition(" (")
    comm, _, after = rest.rpartition(") ")
    return int(pid_text), comm, int(after.split()[1])


def parse_process_table(text: str) -> tuple[int, list[ProcessEntry]]:
    """The listing of the probes' PROCESS_TABLE snippet: 'self PID', then `head -v` blocks of
    /proc/PID/stat and /proc/PID/cmdline (NULs turned into spaces).

    Returns the probing shell's PID and every process it saw (those with a stat block).
    """
    self_pid = -1
    files: dict[tuple[int, str], list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if current is None and line.startswith("self "):
            self_pid = int(line.split()[1])
            continue
        header = PROC_HEADER.match(line)
        if header:
            current = files.setdefault((int(header.group(1)), header.group(2)), [])
        elif current is not None:
            current.append(line)
    entries = []
    for (pid, kind), lines in sorted(files.items()):
        if kind != "stat" or not lines or not lines[0]:
            continue
        try:
            _, comm, ppid = parse_stat_line(lines[0])
        except (ValueError, IndexError):
            continue
        cmdline = " ".join(" ".join(files.get((pid, "cmdline"), [])).split())
        entries.append(ProcessEntry(pid, ppid, comm, cmdline))
    return self_pid, entries


def without_probe(entries: Iterable[ProcessEntry], self_pid: int) -> list[ProcessEntry]:
    """The processes minus the probe itself: its shell, the shell's children, and the session
    chain that started it (sudo, sshd session) up to but excluding a daemon whose parent is
    PID 1 (the listening sshd counts as an OS service) or PID 0 (outside the namespace)."""
    entries = list(entries)
    by_pid = {entry.pid: entry for entry in entries}
    probe = {self_pid}
    changed = True
    while changed:
        children = {e.pid for e in entries if e.ppid in probe and e.pid not in probe}
        probe |= children
        changed = bool(children)
    parent = by_pid.get(by_pid[self_pid].ppid) if self_pid in by_pid else None
    while parent is not None and parent.pid != 1 and parent.ppid not in (0, 1):
        probe.add(parent.pid)
        parent = by_pid.get(parent.ppid)
    return [entry for entry in entries if entry.pid not in probe]


def limit_bytes(text: str | None) -> int | None:
    """A cgroup memory limit (v1 limit_in_bytes or v2 memory.max); None when unlimited."""
    if text is None or text.strip() in ("", "max"):
        return None
    value = int(text.strip())
    return None if value >= NO_LIMIT_BYTES else value


def cpu_quota_cpus(
    v2_cpu_max: str | None, v1_quota: str | None, v1_period: str | None
) -> float | None:
    """CPUs allowed by the CFS quota (cgroup v2 cpu.max or v1 cfs_quota/period); None if none."""
    if v2_cpu_max is not None and v2_cpu_max.strip():
        quota, period = v2_cpu_max.split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    if v1_quota is not None and v1_period is not None and v1_quota.strip():
        quota_us = int(v1_quota.strip())
        return None if quota_us < 0 else quota_us / int(v1_period.strip())
    return None


def installed_dpkg_count(text: str) -> int:
    """Installed packages from `dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n'`."""
    return sum(1 for line in text.splitlines() if line.startswith("ii "))


def running_service_units(text: str) -> list[str]:
    """Unit names from `systemctl list-units --type=service --state=running --plain --no-legend`."""
    units = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].endswith(".service"):
            units.append(fields[0])
    return units


def parse_namespaces(text: str) -> dict[str, str]:
    """Lines "NAME LINK" (e.g. "pid pid:[4026531836]") as NAME -> LINK; unreadable ones absent."""
    found = {}
    for line in text.splitlines():
        name, _, link = line.strip().partition(" ")
        if link.strip():
            found[name] = link.strip()
    return found
