"""Container runtime socket reachable (CIS 5.32): a Docker, containerd, Podman, CRI-O or
BuildKit API socket inside the target that accepts a connection gives whoever can connect
control of that daemon, and the daemon runs as root on its machine.

Read: the well-known socket paths plus every mount point ending in ".sock", each socket (once,
however many paths lead to it) tried with a bare connect() (nothing sent, closed at once).
Without python3, only presence (`test -S`).
"""

from __future__ import annotations

import shlex

from scripts.checks.parsers.sections import Sections
from scripts.checks.parsers.virt import GVISOR_PROC_VERSION
from scripts.checks.probes import cis, findings
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, on_host_kernel, scope
from scripts.checks.probes.shell import BOOT_ID, PROC_VERSION
from scripts.checks.probes.system import kernel_sign

METRIC = "runtime_socket_reachable"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)
SOCKET_PATHS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/crio/crio.sock",
    "/run/buildkit/buildkitd.sock",
)
CONNECT = r"""
import os, socket, stat, sys
paths = list(sys.argv[1:])
for line in open("/proc/self/mountinfo"):
    point = line.split()[4].encode().decode("unicode_escape")
    if point.endswith(".sock") and point not in paths:
        paths.append(point)
seen = set()
for path in paths:
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode) or os.path.realpath(path) in seen:
            continue
    except OSError:
        continue
    seen.add(os.path.realpath(path))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
        print("reachable", path)
    except OSError as error:
        print("refused", path, error.strerror)
    finally:
        probe.close()
"""
PRESENT = " ".join(f'[ -S {path} ] && echo "present {path}";' for path in SOCKET_PATHS)
SNIPPETS = {
    "connect": f"python3 -c {shlex.quote(CONNECT)} {' '.join(SOCKET_PATHS)}",
    "present": f"{PRESENT} :",
    "boot_id": BOOT_ID,
    "proc_version": PROC_VERSION,
}


def socket_lines(text: str) -> dict[str, list[str]]:
    """ "reachable"/"refused"/"present" -> socket paths."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        state, _, rest = line.strip().partition(" ")
        if state in ("reachable", "refused", "present") and rest:
            found.setdefault(state, []).append(rest.split()[0])
    return found


def runtime_socket(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    # Under gVisor a socket file comes from the host through the gofer: a reachable one is the
    # host's daemon, although the application kernel is not the host's.
    through_gofer = kernel_sign(sections, "proc_version").strip() == GVISOR_PROC_VERSION
    if through_gofer:
        where = findings.HOST_SCOPE
    if sections["connect"].ok:
        seen, method = socket_lines(sections["connect"].text), "connect()"
        reachable = seen.get("reachable", [])
    else:  # no python3: a socket file present is taken as reachable (root inside)
        seen, method = socket_lines(sections["present"].text), "test -S (no python3)"
        reachable = seen.get("present", [])
    if through_gofer:
        daemon = "the host's, through gVisor's gofer"
    else:
        daemon = "the host's" if on_host_kernel(sections, baseline) else "the guest's own"
    what = (
        f"container runtime socket reachable: {', '.join(reachable)} ({daemon} daemon)"
        if reachable
        else "no container runtime socket reachable"
    )
    extra = {"method": method, "refused": ",".join(seen.get("refused", []))}
    return [finding(METRIC, bool(reachable), cis.DOCKER_SOCKET, what, where, **extra)]


PROBE = ReadProbe("runtime_socket", SNIPPETS, runtime_socket)
