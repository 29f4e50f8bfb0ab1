"""A memory budget the kernel enforces: one parent cgroup with a memory limit that every
instance of a density run is started under.

- Containers: a cgroup Docker is given as `--cgroup-parent` (HostConfig.CgroupParent); with
  the cgroupfs driver a parent "/twinlab-STACK-budget-RUN" is that directory of each
  hierarchy, and each container gets a child named by its ID.
- VMs: a libvirt resource partition ("/machine/twinlab-STACK-budget-RUN" in the domain's
  <resource><partition>). Without systemd-machined libvirt maps every path component but a
  leading "machine" to COMPONENT.partition, so the partition lives in the directory
  machine/twinlab-STACK-budget-RUN.partition of each hierarchy, and libvirt only creates "/machine"
  itself: any other partition must exist before the domain starts (virCgroupNewPartition).

cgroup v1 (a memory controller mount; the limit is memory.limit_in_bytes, and
memory.memsw.limit_in_bytes where swap accounting is on) and cgroup v2 (memory.max, with the
memory controller enabled in every ancestor's cgroup.subtree_control) are both handled; a
hybrid host (v1 controllers plus a v2 tree at unified/) gets the directory in the v2 tree too,
because libvirt places its domains there as well.

OOM kills are counted three ways, because each alone misses some: the instance's own cgroup
counter (v1 memory.oom_control `oom_kill`, v2 memory.events; gone once the instance is gone),
the kernel log's `oom-kill:` line (names the cgroup the victim was in), and the runtime's view
(docker's State.OOMKilled, libvirt's domain gone).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import paramiko

from scripts.checks.parsers.proc_resources import MIB, parse_flat_keyed
from scripts.checks.resources import footprint
from scripts.checks.resources.errors import BudgetError
from scripts.checks.targets.host import HostHandle, HostUnreachableError

CGROUP_ROOT = footprint.CGROUP_ROOT
# twinlab-STACK-budget-RUN: under the stack's own prefix, like everything else of the stack.
BUDGET_INFIX = "-budget-"
# What a budget's own name may hold: no "." (libvirt would not add ".partition"), no "/",
# nothing libvirt would escape with a leading "_".
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# Controllers the instances' runtimes use, enabled for children on cgroup v2.
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")
REMOVE_TIMEOUT_S = 15.0
# A remote host's kernel log, followed: each new record's message, one a line (util-linux).
FOLLOW_KERNEL_LOG = ("dmesg", "--follow-new", "--notime")
# dmesg refuses at once when it may not read the log: this long tells a refusal from a start.
FOLLOW_START_S = 0.3

CgroupVersion = Literal["v1", "v2"]
Kind = Literal["container", "vm"]


@dataclass(frozen=True)
class CgroupLayout:
    """How this host's cgroups are mounted."""

    root: Path  # where cgroups are mounted, e.g. /sys/fs/cgroup
    version: CgroupVersion  # of the memory controller
    memory_root: Path  # v1: the memory controller's mount; v2: the unified tree
    hierarchies: tuple[Path, ...]  # every tree a runtime may place an instance in


def _is_hierarchy(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / "cgroup.procs").exists()


def detect_layout(root: Path = CGROUP_ROOT) -> CgroupLayout:
    """v1 when a memory controller is mounted on its own tree, else v2 with memory enabled."""
    memory = footprint.v1_controller_dir("memory", root)
    if memory is not None and (memory / "memory.limit_in_bytes").exists():
        trees = [p for p in sorted(root.iterdir()) if _is_hierarchy(p)]
        unified = footprint.unified_dir(root)
        if unified not in trees and (unified / "cgroup.controllers").exists():
            trees.append(unified)
        return CgroupLayout(root, "v1", memory, tuple(trees))
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return CgroupLayout(root, "v2", root, (root,))
    raise BudgetError(
        f"no cgroup memory controller under {root}: neither a v1 memory mount nor a v2 tree "
        "with memory in cgroup.controllers; a kernel-enforced budget needs one"
    )


def budget_name(stack: str, run: str) -> str:
    name = f"twinlab-{stack}{BUDGET_INFIX}{run}"
    if not NAME_RE.match(name):
        raise BudgetError(
            f"budget cgroup name {name!r}: stack and run may hold only letters, digits and "
            "'-' (a '.' or '/' would change where libvirt looks for the partition)"
        )
    return name


def libvirt_partition(name: str) -> str:
    """The <partition> value for a budget: a child of libvirt's default /machine."""
    return f"/machine/{name}"


def libvirt_partition_dir(partition: str) -> str:
    """Where libvirt (without systemd-machined) looks for `partition`, relative to each
    hierarchy: components without a '.' get '.partition', a leading machine/system/user
    stays as is (libvirt's virCgroupSetPartitionSuffix)."""
    if not partition.startswith("/") or partition.rstrip("/") == "":
        raise BudgetError(f"libvirt partition {partition!r} must be an absolute path below /")
    parts = partition.strip("/").split("/")
    mapped = []
    for index, part in enumerate(parts):
        if not part:
            raise BudgetError(f"libvirt partition {partition!r} has an empty component")
        if (index == 0 and part in ("machine", "system", "user")) or "." in part:
            mapped.append(part)
        else:
            mapped.append(f"{part}.partition")
    return "/".join(mapped)


def docker_cgroup_parent(name: str) -> str:
    """Docker's --cgroup-parent for the cgroupfs driver: an absolute path below each root."""
    return f"/{name}"


def budget_dir(kind: Kind, name: str) -> str:
    """The budget cgroup of `kind`, relative to each hierarchy."""
    if kind == "container":
        return docker_cgroup_parent(name).lstrip("/")
    return libvirt_partition_dir(libvirt_partition(name))


@dataclass(frozen=True)
class OomKill:
    """One `oom-kill:` line of the kernel log."""

    oom_memcg: str  # the cgroup whose limit was hit
    task_memcg: str  # the cgroup the killed task was in
    task: str
    pid: int


def parse_oom_kill(message: str) -> OomKill | None:
    """'oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/a,task_memcg=/a/b,task=x,pid=1,uid=0'
    (the kernel's dump_oom_victim line since 4.19); None for any other message."""
    _, found, rest = message.partition("oom-kill:")
    if not found:
        return None
    fields = dict(item.split("=", 1) for item in rest.strip().split(",") if "=" in item)
    try:
        return OomKill(
            fields.get("oom_memcg", ""),
            fields.get("task_memcg", ""),
            fields.get("task", ""),
            int(fields.get("pid", "0")),
        )
    except ValueError:
        return None


def parse_kmsg_record(record: str) -> str:
    """The message of one /dev/kmsg record 'PRIO,SEQ,USEC,FLAGS[,..];MESSAGE\\n[ KEY=VAL...]'."""
    header, sep, body = record.partition(";")
    if not sep or "," not in header:
        return ""
    return body.split("\n", 1)[0]


class KernelLog:
    """New kernel log records since it was opened (/dev/kmsg, non-blocking). On a host where
    the log cannot be read, `available` is False and the other OOM sources still count."""

    def __init__(self, path: Path | None = Path("/dev/kmsg"), problem: str = "") -> None:
        self.problem = problem
        self._fd: int | None = None
        if path is None:
            return
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as error:
            self.problem = f"{path}: {error.strerror}"
            self.close()

    @classmethod
    def unavailable(cls, why: str) -> KernelLog:
        """A log that reads nothing, saying why (the other OOM sources still count)."""
        return cls(None, why)

    @property
    def available(self) -> bool:
        return self._fd is not None

    def oom_kills(self) -> list[OomKill]:
        kills: list[OomKill] = []
        while self._fd is not None:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.EPIPE:  # records overwritten before we read them
                    continue
                self.problem = f"reading the kernel log: {error.strerror}"
                break
            if not record:  # end of a plain file (tests); /dev/kmsg says EAGAIN instead
                break
            for line in record.decode(errors="replace").splitlines():
                kill = parse_oom_kill(parse_kmsg_record(line))
                if kill is not None:
                    kills.append(kill)
        return kills

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class HostKernelLog(KernelLog):
    """A remote host's kernel log, followed over its SSH (`dmesg --follow-new` there, from
    when it is opened); read without blocking, like /dev/kmsg here."""

    def __init__(self, host: HostHandle) -> None:
        super().__init__(None)
        self._channel: paramiko.Channel | None = None
        self._partial = ""
        try:
            channel = host.open_stream(FOLLOW_KERNEL_LOG)
        except (HostUnreachableError, paramiko.SSHException, OSError) as error:
            self.problem = f"cannot follow the kernel log of {host}: {error}"
            return
        time.sleep(FOLLOW_START_S)
        if channel.exit_status_ready():
            said = channel.recv_stderr(4096).decode(errors="replace").strip()
            self.problem = f"dmesg on {host} cannot follow the kernel log: {said}"
            channel.close()
            return
        self._channel = channel

    @property
    def available(self) -> bool:
        return self._channel is not None

    def oom_kills(self) -> list[OomKill]:
        channel = self._channel
        if channel is None:
            return []
        text = self._partial
        while channel.recv_ready():
            text += channel.recv(65536).decode(errors="replace")
        if channel.exit_status_ready() and not channel.recv_ready():
            self.problem = f"dmesg stopped following the kernel log (exit {channel.exit_status})"
            self.close()
        *lines, self._partial = text.split("\n")
        return [kill for kill in map(parse_oom_kill, lines) if kill is not None]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def open_kernel_log(host: HostHandle) -> KernelLog:
    """The kernel log of the host the budget is on: /dev/kmsg here, followed over SSH there."""
    return KernelLog() if host.is_local else HostKernelLog(host)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise BudgetError(f"cannot read {path}: {error.strerror}") from None


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as error:
        raise BudgetError(f"cannot write {value.strip()!r} to {path}: {error.strerror}") from None


@dataclass(frozen=True)
class MemoryCounters:
    """A cgroup's memory now, its peak, how often it hit its limit, OOM kills inside it."""

    usage_bytes: int
    peak_bytes: int | None
    limit_hits: int
    oom_kills: int

    @property
    def usage_mib(self) -> float:
        return self.usage_bytes / MIB


def read_counters(memory_dir: Path, version: CgroupVersion) -> MemoryCounters:
    """v1 counts an OOM kill in the victim's own cgroup only; v2's memory.events counts the
    whole subtree."""
    if version == "v1":
        oom = parse_flat_keyed(_read(memory_dir / "memory.oom_control"))
        # With swap accounting the memsw counter is charged first and counts the failures.
        memsw = memory_dir / "memory.memsw.failcnt"
        memsw_hits = int(_read(memsw)) if memsw.exists() else 0
        return MemoryCounters(
            int(_read(memory_dir / "memory.usage_in_bytes")),
            int(_read(memory_dir / "memory.max_usage_in_bytes")),
            int(_read(memory_dir / "memory.failcnt")) + memsw_hits,
            oom.get("oom_kill", 0),
        )
    events = parse_flat_keyed(_read(memory_dir / "memory.events"))
    peak = memory_dir / "memory.peak"
    return MemoryCounters(
        int(_read(memory_dir / "memory.current")),
        int(_read(peak)) if peak.exists() else None,
        events.get("max", 0),
        events.get("oom_kill", 0),
    )


def instance_memory_dir(pid: int, layout: CgroupLayout) -> Path:
    """The memory cgroup of the instance whose main process is `pid` (a container's cgroup,
    a VM's NAME.libvirt-qemu: on v2 libvirt puts QEMU into an emulator child)."""
    proc = type(layout.root)("/proc")  # on the host of the cgroup tree (a HostPath if remote)
    _, memory_dir, _ = footprint.container_cgroup(pid, proc=proc, root=layout.root)
    if layout.version == "v2" and memory_dir.name == "emulator":
        return memory_dir.parent
    return memory_dir


@dataclass
class BudgetCgroup:
    """The budget's directory in every hierarchy; made by `create`, removed by `remove`."""

    layout: CgroupLayout
    relative: str  # e.g. twinlab-dev-budget-1 or machine/twinlab-dev-budget-1.partition
    limit_bytes: int
    created: list[Path] = field(default_factory=list)

    @property
    def memory_dir(self) -> Path:
        return self.layout.memory_root / self.relative

    @property
    def limit_mib(self) -> float:
        return self.limit_bytes / MIB

    def create(self, kind: Kind) -> None:
        """Make the budget (refusing one that exists) with its limit. Containers: only the
        memory tree (Docker makes the rest of the parent path itself); VMs: every tree,
        because libvirt looks the partition up in each."""
        trees = (self.layout.memory_root,) if kind == "container" else self.layout.hierarchies
        existing = [tree / self.relative for tree in trees if (tree / self.relative).exists()]
        if existing:
            raise BudgetError(
                f"budget cgroup {existing[0]} exists already (another run, or a leftover: "
                "python -m scripts.checks.resources.density_budget --leftovers STACK --remove)"
            )
        for tree in trees:
            self._make(tree)
        if self.layout.version == "v1":
            _write(self.memory_dir / "memory.limit_in_bytes", str(self.limit_bytes))
            memsw = "memory.memsw.limit_in_bytes"
            if (self.layout.memory_root / memsw).exists():  # swap accounting is on: swap
                _write(self.memory_dir / memsw, str(self.limit_bytes))  # must not stretch it
        else:
            _write(self.memory_dir / "memory.max", str(self.limit_bytes))
            swap = self.memory_dir / "memory.swap.max"
            if swap.exists():
                _write(swap, "0")

    def _make(self, tree: Path) -> None:
        path = tree
        for part in self.relative.split("/"):
            parent, path = path, path / part
            if self.layout.version == "v2":
                enable_v2_controllers(parent)
            if path.exists():
                continue
            try:
                path.mkdir()
            except OSError as error:
                raise BudgetError(f"cannot create cgroup {path}: {error.strerror}") from None
            self.created.append(path)
            if (parent / "cpuset.cpus").exists() and self.layout.version == "v1":
                # A v1 cpuset child starts with no CPUs and no memory nodes: nothing could run.
                for key in ("cpuset.cpus", "cpuset.mems"):
                    _write(path / key, _read(parent / key).strip() or "\n")

    def counters(self) -> MemoryCounters:
        return read_counters(self.memory_dir, self.layout.version)

    def contains(self, cgroup_path: str) -> bool:
        """Whether a cgroup path as the kernel log names it lies in this budget."""
        return f"/{self.relative}/" in f"{cgroup_path.rstrip('/')}/"

    def remove(self, timeout_s: float = REMOVE_TIMEOUT_S) -> list[str]:
        """Remove the budget's directory from every tree (the runtimes remove their instance
        children when the instances go, sometimes a moment later: retried until `timeout_s`).
        Returns what is still there. Intermediate directories (libvirt's own "machine") stay."""
        deadline = time.monotonic() + timeout_s
        while True:
            present = [t / self.relative for t in self.layout.hierarchies]
            remaining = remove_budget_dirs([p for p in present if p.exists()])
            if not remaining or time.monotonic() >= deadline:
                return remaining
            time.sleep(0.5)


def _child_dirs(path: Path) -> list[Path]:
    """Every directory below `path` (through Path methods: a HostPath walks a remote host)."""
    try:
        children = [child for child in path.iterdir() if child.is_dir() and not child.is_symlink()]
    except OSError:
        return []
    return [found for child in children for found in (child, *_child_dirs(child))]


def enable_v2_controllers(cgroup: Path) -> None:
    """Let `cgroup`'s children use the memory controller (and the others the runtimes set)."""
    available = (cgroup / "cgroup.controllers").read_text().split()
    enabled = (cgroup / "cgroup.subtree_control").read_text().split()
    wanted = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
    if "memory" not in available:
        raise BudgetError(f"cgroup {cgroup} does not offer the memory controller to children")
    if wanted:
        _write(cgroup / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))


def leftover_budgets(stack: str | None, root: Path = CGROUP_ROOT) -> list[Path]:
    """Budget directories of `stack` (every stack: None) in every tree, as containers'
    parents (twinlab-STACK-budget-*) and as libvirt partitions
    (machine/twinlab-STACK-budget-*.partition)."""
    pattern = re.compile(
        rf"^twinlab-{re.escape(stack) if stack else '.+'}{BUDGET_INFIX}[^.]+(\.partition)?$"
    )
    return [p for p in _budget_dirs(root) if pattern.match(p.name)]


def budget_dirs_named(prefix: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Budget directories whose name starts with `prefix` (e.g. twinlab-ci-): for the
    project's leftovers sweep, which goes by name prefix."""
    return [p for p in _budget_dirs(root) if p.name.startswith(prefix)]


def _budget_dirs(root: Path) -> list[Path]:
    try:
        layout = detect_layout(root)
    except BudgetError:
        return []
    found = []
    for tree in layout.hierarchies:
        for parent in (tree, tree / "machine"):
            if parent.is_dir():
                found += [p for p in sorted(parent.iterdir()) if p.is_dir()]
    return [p for p in found if BUDGET_INFIX in p.name and p.name.startswith("twinlab-")]


def remove_budget_dirs(paths: list[Path]) -> list[str]:
    """rmdir each (deepest first); returns those that could not be removed and why."""
    failed = []
    for path in paths:
        for child in sorted(_child_dirs(path), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                child.rmdir()
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError as error:
            failed.append(f"{path} ({error.strerror})")
    return failed
