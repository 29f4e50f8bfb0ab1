"""Host-kernel attack surface (issue 11 item 4): how many distinct host kernel functions the
app's workload reaches through each variant, the "horizontal attack profile" measure.

Where the host's ftrace can be used (tracefs mounted or mountable, available_filter_functions
readable), the function tracer is pointed at the variant's host processes (the container's
processes; the VM's QEMU process), forks followed, for a bounded window while the app serves
HTTP requests on 127.0.0.1; the trace's distinct callee names are counted, and the tracer is put
back to "nop" with an empty PID filter whatever happens. Where it cannot, every variant gets a
"not measurable on this host: <reason>" reading. On the machines this project runs on tracefs
mounts (in a private mount namespace, so the host's mounts are untouched) but reading its
function list is refused: expect "not measurable".
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scripts.checks.probes.catalog import ISOLATION, Metric, Reading, to_sample
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.host import HostHandle, local_host
from scripts.checks.targets.libvirt_domains import QEMU_PID_DIR
from scripts.checks.targets.target import Target

METRIC = "host_kernel_functions_reached"
METRICS = {METRIC: Metric("functions", ISOLATION)}
MOUNTED = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# Already mounted somewhere, else mounted in a mount namespace of its own and read there.
ACCESS_CHECK = (
    "for d in " + " ".join(MOUNTED) + "; do "
    '[ -e "$d/available_filter_functions" ] && { head -n 1 "$d/available_filter_functions" '
    '>/dev/null && echo "tracefs $d" && exit 0; }; done; '
    'd=$(mktemp -d) || exit 1; unshare -m sh -c "mount -t tracefs nodev $d && '
    'head -n 1 $d/available_filter_functions >/dev/null"; rc=$?; rmdir "$d"; exit $rc'
)
# "  python3-1234    [000] ..... 12.345678: do_sys_openat2 <-do_sys_open"
TRACE_LINE = re.compile(r":\s+([A-Za-z_][\w.$]*)\s+<-")
WINDOW_S = 5.0
MAX_REQUESTS = 2000


@dataclass(frozen=True)
class TracefsAccess:
    directory: str | None  # a mounted tracefs usable as is; None: not measurable
    reason: str


def tracefs_access(host: Target) -> TracefsAccess:
    result = host.run(ACCESS_CHECK, root=True)
    first = result.stdout.strip().splitlines()
    if result.ok and first and first[-1].startswith("tracefs "):
        return TracefsAccess(first[-1].split(" ", 1)[1], "")
    detail = (result.stderr.strip() or result.stdout.strip() or f"rc {result.rc}")[-160:]
    if result.ok:  # mountable and readable, but only in a private mount namespace
        return TracefsAccess(None, "tracefs is not mounted on the host (it could be: mount it)")
    return TracefsAccess(None, f"ftrace's function list cannot be read ({detail})")


def functions_reached(trace: str) -> set[str]:
    """Distinct traced functions in function-tracer output (callees, not their callers)."""
    return {match.group(1) for match in map(TRACE_LINE.search, trace.splitlines()) if match}


@dataclass(frozen=True)
class Subject:
    target: Target  # the variant, named as the other samples name it
    host_pids: Callable[[], Sequence[int]]  # its processes on this host (asked only if traced)
    url: str  # an app endpoint on the host's 127.0.0.1
    host: HostHandle = field(default_factory=local_host)  # where the subject runs


def container_pids(name: str, host: HostHandle | None = None) -> list[int]:
    """The container's main process on its host (the tracer follows its forks)."""
    done = (host or local_host()).docker(["inspect", "-f", "{{.State.Pid}}", name], timeout_s=30)
    pid = done.stdout.strip()
    return [int(pid)] if done.returncode == 0 and pid.isdigit() and pid != "0" else []


def qemu_pids(domain: str, host: HostHandle | None = None) -> list[int]:
    """The QEMU process of a libvirt domain on its host (libvirt's pid file)."""
    try:
        text = (host or local_host()).read_text(f"{QEMU_PID_DIR}/{domain}.pid").strip()
    except OSError:
        text = ""
    return [int(text)] if text.isdigit() else []


def serve_requests(url: str, window_s: float) -> int:
    """GET `url` for `window_s` (at most MAX_REQUESTS times); returns the count served."""
    served, deadline = 0, time.monotonic() + window_s
    while time.monotonic() < deadline and served < MAX_REQUESTS:
        with urllib.request.urlopen(url, timeout=2) as response:
            response.read()
        served += 1
    return served


def traced_functions(
    host: Target, tracefs: str, subject: Subject, window_s: float
) -> set[str] | None:
    """Distinct functions traced; None when the subject's processes are not on this host."""
    pids = " ".join(str(pid) for pid in subject.host_pids())
    if not pids:
        return None
    setup = (
        f"cd {tracefs} && echo 0 > tracing_on && echo > trace && echo {pids} > set_ftrace_pid && "
        "echo 1 > options/function-fork && echo function > current_tracer && echo 1 > tracing_on"
    )
    restore = (
        f"cd {tracefs} && echo 0 > tracing_on; echo nop > current_tracer; "
        "echo > set_ftrace_pid; echo 0 > options/function-fork; echo > trace"
    )
    try:
        if not host.run(setup, root=True).ok:
            return set()
        with subject.host.reach(subject.url) as url:
            serve_requests(url, window_s)
        host.run(f"echo 0 > {tracefs}/tracing_on", root=True)
        return functions_reached(host.run(f"cat {tracefs}/trace", root=True, timeout_s=120).stdout)
    finally:
        host.run(restore, root=True)


def attack_surface(
    host: Target, subjects: Sequence[Subject], window_s: float = WINDOW_S
) -> list[Sample]:
    access = tracefs_access(host)
    samples = []
    for subject in subjects:
        if access.directory is None:
            reason = f"not measurable on this host: {access.reason}"
            metadata: dict[str, Value] = {"inconclusive": True, "reason": reason}
            reading = Reading(METRIC, "inconclusive", metadata)
        else:
            found = traced_functions(host, access.directory, subject, window_s)
            if found is None:
                reason = "its processes are not on this host (a remote Docker or libvirt host)"
                reading = Reading(METRIC, "inconclusive", {"inconclusive": True, "reason": reason})
            else:
                metadata = {"window_s": window_s, "tracer": "function"}
                reading = Reading(METRIC, len(found), metadata)
        samples.append(to_sample(reading, subject.target, "attack_surface"))
    return samples
