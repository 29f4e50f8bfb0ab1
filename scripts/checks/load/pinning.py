"""Which CPUs the servers and the load generator may run on, read from the kernel.

A fair load run (P1) needs both servers on the same core set, helper threads included (QEMU's
emulator thread, which also runs SLIRP networking, its I/O threads, the container's docker-proxy),
and the load generator on cores apart from them: on 2 cores, servers on core 0 and the generator
on core 1. This module chooses the generator's cores and reads what is really in force:

- a container's cpuset from `docker inspect` (HostConfig.CpusetCpus) and from its cgroup;
- every thread of a process (QEMU: vCPU, emulator and I/O threads) with `taskset -pc TID` for
  each /proc/PID/task/TID, and its cgroup's cpuset (libvirt may pin by either);
- docker-proxy processes publishing a host port;

and `server_placement_problems` says, in words, what keeps the two servers off one core set
(a QEMU PID comes from `LibvirtDomains.qemu_pid`).

Parsers are pure and tested on captured output; readers take the /proc and cgroup roots as
arguments so a test can point them at files.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from components.errors import TwinlabError
from scripts.checks.parsers.proc_resources import parse_proc_cgroup
from scripts.checks.targets.host import HostHandle, local_host

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
COMMAND_TIMEOUT_S = 10.0

# "thread" for any thread of a process other than QEMU (docker-proxy, the generator).
ThreadRole = Literal["vcpu", "iothread", "emulator", "thread"]
# QEMU names its vCPU threads "CPU 0/TCG" or "CPU 0/KVM" and its I/O threads "IO <id>"; every
# other thread (the main loop, which also runs SLIRP, "worker", "call_rcu", ...) is emulator.
VCPU_THREAD = re.compile(r"^CPU \d+/(TCG|KVM)$")
IOTHREAD_PREFIX = "IO "


class PinningError(TwinlabError):
    """CPU placement cannot be read or chosen; the message says what to change."""


# --- pure parsers --------------------------------------------------------------------------------


def parse_cpu_list(text: str) -> frozenset[int]:
    """A kernel CPU list ("0-2,4", "1", "" for none) as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise PinningError(f"not a CPU list: {text.strip()!r} (expected e.g. '0-1,3')")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise PinningError(f"not a CPU list: {text.strip()!r} (range {part} runs backwards)")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """The kernel's compact form: {0, 1, 2, 5} -> "0-2,5"."""
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    start = previous = None
    for cpu in [*ordered, None]:
        if cpu is not None and previous is not None and cpu == previous + 1:
            previous = cpu
            continue
        if start is not None and previous is not None:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = cpu
    return ",".join(ranges)


def parse_cpu_mask(mask: str) -> frozenset[int]:
    """A hexadecimal affinity mask ("3", "ffffffff,00000001") as a set of CPU numbers."""
    digits = mask.strip().replace(",", "")
    try:
        value = int(digits, 16)
    except ValueError:
        raise PinningError(f"not a CPU mask: {mask.strip()!r}") from None
    return frozenset(bit for bit in range(value.bit_length()) if value >> bit & 1)


TASKSET_LINE = re.compile(r"^pid (\d+)'s current affinity (list|mask): (\S*)\s*$")


def parse_taskset(text: str) -> tuple[int, frozenset[int]]:
    """`taskset -p PID` (mask) or `taskset -pc PID` (list) output: (pid, CPUs)."""
    for line in text.splitlines():
        found = TASKSET_LINE.match(line.strip())
        if found:
            pid, kind, value = found.groups()
            cpus = parse_cpu_list(value) if kind == "list" else parse_cpu_mask(value)
            return int(pid), cpus
    raise PinningError(f"taskset printed no affinity line: {text.strip()[:200]!r}")


def thread_role(name: str) -> ThreadRole:
    """vcpu, iothread or emulator, from a QEMU thread's name (/proc/PID/task/TID/comm)."""
    if VCPU_THREAD.match(name):
        return "vcpu"
    if name.startswith(IOTHREAD_PREFIX):
        return "iothread"
    return "emulator"


def cpuset_from_inspect(inspect_json: str) -> frozenset[int] | None:
    """HostConfig.CpusetCpus of `docker inspect NAME` output; None when the container may use
    every CPU (Docker leaves the field empty then)."""
    try:
        found = json.loads(inspect_json)
    except json.JSONDecodeError as error:
        raise PinningError(f"docker inspect printed no JSON: {error}") from None
    records = found if isinstance(found, list) else [found]
    if len(records) != 1 or not isinstance(records[0], dict):
        raise PinningError(f"expected one container in docker inspect output, got {len(records)}")
    cpuset = str((records[0].get("HostConfig") or {}).get("CpusetCpus") or "")
    return parse_cpu_list(cpuset) if cpuset else None


def cpuset_file(proc_cgroup: str, cgroup_root: Path = CGROUP_ROOT) -> Path:
    """The file holding the CPUs in force for a process, from its /proc/PID/cgroup text.

    cgroup v1 (also the hybrid layout, whose unified tree has no cpuset controller):
    <root>/cpuset/<path>/cpuset.effective_cpus; cgroup v2: <root>/<path>/cpuset.cpus.effective.
    """
    paths = parse_proc_cgroup(proc_cgroup)
    v1 = paths.v1_path("cpuset")
    if v1 is not None:
        return cgroup_root / "cpuset" / v1.lstrip("/") / "cpuset.effective_cpus"
    if paths.unified is not None:
        return cgroup_root / paths.unified.lstrip("/") / "cpuset.cpus.effective"
    raise PinningError("the process is in no cpuset cgroup (no cpuset or unified line)")


def docker_proxy_host_port(argv: Sequence[str]) -> int | None:
    """The host port a docker-proxy command line publishes (`-host-port N`); None otherwise."""
    if not argv or Path(argv[0]).name != "docker-proxy":
        return None
    for flag, value in itertools.pairwise(argv):
        if flag in ("-host-port", "--host-port") and value.isdigit():
            return int(value)
    return None


# --- choosing cores ------------------------------------------------------------------------------


def host_cpus(
    *, proc: Path = PROC, cgroup_root: Path = CGROUP_ROOT, host: HostHandle | None = None
) -> frozenset[int]:
    """The CPUs twinlab may place processes on: its cgroup's cpuset (the machine's cores unless
    twinlab runs in a restricted cgroup), or this process's affinity if that cannot be read.
    On a remote `host`: those of a process started there over its SSH (the generator's).

    Not the affinity first: a twinlab run pinned to core 0 may still start its generator on 1.
    """
    if host is not None and not host.is_local:
        try:
            path = cpuset_file(host.read_text("/proc/self/cgroup"), cgroup_root)
            return parse_cpu_list(host.read_text(str(path)))
        except (OSError, PinningError):
            status = host.read_text("/proc/self/status")
            return parse_cpu_list(re.findall(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)[0])
    try:
        return process_cgroup_cpus(os.getpid(), proc=proc, cgroup_root=cgroup_root)
    except PinningError:
        return frozenset(os.sched_getaffinity(0))


def choose_generator_cpus(host: frozenset[int], servers: frozenset[int]) -> frozenset[int]:
    """Every host CPU the servers do not use: where the load generator runs.

    PinningError when the servers may run on every core (pin them first) or use CPUs the host
    does not have.
    """
    if not servers:
        raise PinningError("the servers' CPU set is empty")
    foreign = servers - host
    if foreign:
        raise PinningError(
            f"the servers' CPUs {format_cpu_list(foreign)} are not among the host's "
            f"{format_cpu_list(host)}"
        )
    free = host - servers
    if not free:
        raise PinningError(
            f"the servers may run on every CPU ({format_cpu_list(host)}): no core is left for "
            "the load generator; deploy both on fewer CPUs (stack config vcpus) and run again"
        )
    return frozenset(free)


def split_cpus(
    host: frozenset[int], server_cpu_count: int
) -> tuple[frozenset[int], frozenset[int]]:
    """(servers, generator): the servers on the lowest `server_cpu_count` CPUs, the generator
    on the rest. On 2 cores with 1 server CPU: servers {0}, generator {1}."""
    if not 1 <= server_cpu_count < len(host):
        raise PinningError(
            f"{server_cpu_count} server CPUs on a host with {len(host)}: need at least 1 and "
            "one CPU left for the load generator"
        )
    servers = frozenset(sorted(host)[:server_cpu_count])
    return servers, host - servers


# --- reading what is in force ---------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadPlacement:
    """Where one thread may run: its affinity narrowed by its cgroup's cpuset."""

    pid: int
    tid: int
    name: str
    role: ThreadRole
    affinity: frozenset[int]  # sched affinity (taskset)
    cgroup_cpus: frozenset[int] | None  # None when the cgroup's cpuset could not be read

    @property
    def cpus(self) -> frozenset[int]:
        return self.affinity if self.cgroup_cpus is None else self.affinity & self.cgroup_cpus

    def describe(self) -> str:
        role = "" if self.role == "thread" else f"{self.role}, "
        return f"{self.name} ({role}tid {self.tid}) on {format_cpu_list(self.cpus)}"


def _taskset(*args: str, host: HostHandle | None = None) -> str:
    """Run taskset with `args` (on a remote `host` over its SSH); its output, or PinningError
    with its reason."""
    if host is not None and not host.is_local:
        result = host.run(["taskset", *args], timeout_s=COMMAND_TIMEOUT_S)
        if result.returncode != 0:
            raise PinningError(
                f"taskset {' '.join(args)} on {host} failed: {result.stderr.strip()}"
            )
        return result.stdout
    found = shutil.which("taskset")
    if found is None:
        raise PinningError("taskset not found; install Debian's util-linux")
    result = subprocess.run(
        [found, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise PinningError(f"taskset {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def thread_affinity(tid: int) -> frozenset[int]:
    """CPUs a thread may run on, from `taskset -pc TID`."""
    return parse_taskset(_taskset("-pc", str(tid)))[1]


def pin_process(pid: int, cpus: frozenset[int], host: HostHandle | None = None) -> None:
    """Every thread of `pid` onto `cpus` (`taskset -a`, on its host): a server's helper process
    (the container's docker-proxy) joins the server's core set, as QEMU's threads do."""
    _taskset("--all-tasks", "--pid", "--cpu-list", format_cpu_list(cpus), str(pid), host=host)


def _read_cgroup_cpus(task_dir: Path, cgroup_root: Path) -> frozenset[int] | None:
    try:
        path = cpuset_file((task_dir / "cgroup").read_text(encoding="utf-8"), cgroup_root)
        return parse_cpu_list(path.read_text(encoding="utf-8"))
    except (OSError, PinningError):
        return None


def process_threads(
    pid: int,
    *,
    proc: Path = PROC,
    cgroup_root: Path = CGROUP_ROOT,
    qemu: bool = True,
    affinity_of: Callable[[int], frozenset[int]] = thread_affinity,
    host: HostHandle | None = None,
) -> list[ThreadPlacement]:
    """Every thread of process `pid` with the CPUs it may run on; for QEMU (`qemu=True`) each
    with its role (vCPU, emulator, I/O thread), for another process with the role "thread".

    `affinity_of(tid)` reads a thread's affinity (taskset by default; a test replays captures).
    On a remote `host` one script there lists every thread (remote_threads).
    """
    if host is not None and not host.is_local:
        return remote_threads(host, pid, qemu, cgroup_root)
    tasks = proc / str(pid) / "task"
    try:
        tids = sorted(int(entry.name) for entry in tasks.iterdir() if entry.name.isdigit())
    except OSError as error:
        raise PinningError(f"cannot list the threads of process {pid}: {error}") from None
    threads = []
    for tid in tids:
        task = tasks / str(tid)
        try:
            name = (task / "comm").read_text(encoding="utf-8").strip()
            affinity = affinity_of(tid)
        except (OSError, PinningError):
            continue  # the thread ended while we looked
        threads.append(
            ThreadPlacement(
                pid,
                tid,
                name,
                thread_role(name) if qemu else "thread",
                affinity,
                _read_cgroup_cpus(task, cgroup_root),
            )
        )
    if not threads:
        raise PinningError(f"process {pid} has no threads left to read (did it exit?)")
    return threads


def container_cpuset(name: str, *, host: HostHandle | None = None) -> frozenset[int] | None:
    """The container's configured cpuset (`docker inspect` on its host, this machine by
    default); None when unrestricted."""
    argv = ["inspect", "--type", "container", name]
    result = (host or local_host()).docker(argv, timeout_s=COMMAND_TIMEOUT_S)
    if result.returncode != 0:
        raise PinningError(f"docker inspect {name} failed: {result.stderr.strip()}")
    return cpuset_from_inspect(result.stdout)


def process_cgroup_cpus(
    pid: int, *, proc: Path = PROC, cgroup_root: Path = CGROUP_ROOT
) -> frozenset[int]:
    """CPUs in force for a process through its cgroup (a container's init, a QEMU process)."""
    try:
        path = cpuset_file((proc / str(pid) / "cgroup").read_text(encoding="utf-8"), cgroup_root)
        return parse_cpu_list(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PinningError(f"cannot read the cpuset of process {pid}: {error}") from None


def docker_proxy_pids(
    host_port: int, *, proc: Path = PROC, host: HostHandle | None = None
) -> list[int]:
    """PIDs of the docker-proxy processes that publish `host_port` (none when Docker uses
    iptables only, e.g. with userland-proxy disabled)."""
    if host is not None and not host.is_local:
        listed = host.run(["pgrep", "-a", "-x", "docker-proxy"]).stdout.splitlines()
        return sorted(
            int(line.split()[0])
            for line in listed
            if docker_proxy_host_port(line.split()[1:]) == host_port
        )
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [part.decode("utf-8", "replace") for part in argv if part]
        if docker_proxy_host_port(args) == host_port:
            pids.append(int(entry.name))
    return sorted(pids)


def placement_problems(
    expected: frozenset[int], threads: Iterable[ThreadPlacement], *, what: str
) -> list[str]:
    """Threads of `what` that may run outside the `expected` CPU set, in words; [] when none."""
    return [
        f"{what}: {thread.describe()}, outside {format_cpu_list(expected)}"
        for thread in threads
        if not thread.cpus <= expected
    ]


def server_placement_problems(
    container_cpus: frozenset[int] | None,
    qemu_threads: Iterable[ThreadPlacement],
    proxy_threads: Iterable[ThreadPlacement] = (),
) -> list[str]:
    """What keeps the two servers off one core set, in words; [] when they share it.

    The container's cpuset (`container_cpuset`, None when unrestricted) is the reference; every
    QEMU thread (`process_threads(qemu_pid)`) and every thread of the container's docker-proxy
    (`process_threads(pid, qemu=False)` for each of `docker_proxy_pids(port)`) must stay on it.
    """
    if container_cpus is None:
        return ["container: may run on every CPU (no cpuset); deploy it with one"]
    return [
        *placement_problems(container_cpus, qemu_threads, what="VM"),
        *placement_problems(container_cpus, proxy_threads, what="docker-proxy"),
    ]


# One line per thread of process $0: TID, name, affinity, its /proc cgroup lines joined by "|".
REMOTE_THREADS = (
    'for t in /proc/"$0"/task/[0-9]*; do printf "%s\\t%s\\t%s\\t%s\\n" "${t##*/}" '
    '"$(cat "$t/comm")" "$(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" "$t/status")" '
    '"$(tr "\\n" "|" < "$t/cgroup")"; done'
)


def remote_threads(
    host: HostHandle, pid: int, qemu: bool, cgroup_root: Path = CGROUP_ROOT
) -> list[ThreadPlacement]:
    """process_threads on a remote host: one script lists the threads, then each distinct
    cpuset file is read once."""
    done = host.run(["sh", "-c", REMOTE_THREADS, str(pid)])
    cpusets: dict[Path, frozenset[int] | None] = {}
    threads = []
    for line in done.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 4 or not fields[0].isdigit() or not fields[2]:
            continue  # the thread ended while the script looked
        tid, name, allowed, cgroup = fields
        try:
            path: Path | None = cpuset_file(cgroup.replace("|", "\n"), cgroup_root)
        except PinningError:
            path = None
        if path is not None and path not in cpusets:
            try:
                cpusets[path] = parse_cpu_list(host.read_text(str(path)))
            except (OSError, PinningError):
                cpusets[path] = None
        threads.append(
            ThreadPlacement(
                pid,
                int(tid),
                name,
                thread_role(name) if qemu else "thread",
                parse_cpu_list(allowed),
                cpusets.get(path) if path is not None else None,
            )
        )
    if not threads:
        raise PinningError(f"process {pid} on {host} has no threads left to read (did it exit?)")
    return threads
