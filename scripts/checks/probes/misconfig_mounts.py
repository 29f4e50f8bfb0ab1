"""Sensitive host paths mounted (CIS 5.6): a host directory such as /, /etc, /root or
/var/lib/docker, or the host's own /proc or /sys, mounted into the target.

Read: the target's /proc/self/mountinfo. A mount shows the device (major:minor) of its
filesystem and the directory of that filesystem it exposes; bind mounts share the device with
the host's mount of the same filesystem, so the host path is found by matching the device
against the host's mountinfo (HostBaseline.mounts). Only meaningful on the host's kernel: in a
VM, device numbers belong to the guest; there a 9p or virtiofs mount is a host directory shared
into the guest, which is reported (scope "host": it is the host's filesystem). Under an
application kernel (gVisor) every file, the root included, comes through the gofer as 9p, so
from inside no mount tells which host path it is: "not measurable" there (the container's
mounts are then for `docker inspect` on the host to judge).

Not findings: Docker's own per-container files (/etc/hosts etc. from
/var/lib/docker/containers/ID/), named volumes (/var/lib/docker/volumes/NAME/_data), the
container's cgroup directories, and the standard /sys (read-only), /dev/shm and /dev/mqueue
mounts, which a shared network or IPC namespace brings and the namespace probe reports.
"""

from __future__ import annotations

from scripts.checks.parsers.mountinfo import Mount, host_path, parse_mountinfo, within
from scripts.checks.parsers.sections import Sections
from scripts.checks.parsers.virt import GVISOR_PROC_VERSION
from scripts.checks.probes import cis
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, on_host_kernel, scope
from scripts.checks.probes.findings import HOST_SCOPE
from scripts.checks.probes.shell import BOOT_ID, MOUNTINFO, PROC_VERSION
from scripts.checks.probes.system import kernel_sign
from scripts.checks.results.samples import Value

METRIC = "sensitive_host_path_mounted"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)
# Sensitive with everything below them (CIS 5.6's list plus /root).
SENSITIVE_TREES = ("/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr", "/root")
# Sensitive as a whole, but not every path below them (Docker keeps per-container files there).
SENSITIVE_DIRS = ("/", "/var/lib/docker", "/var/lib/containerd", "/run", "/var/run", "/home")
HOST_SHARE_FSTYPES = ("9p", "virtiofs")
STANDARD_MOUNTS = ("/dev/shm", "/dev/mqueue")
EXAMPLES = 6


def sensitive(path: str) -> bool:
    """`path` is a sensitive directory, contains one, or lies in a sensitive tree."""
    every = (*SENSITIVE_TREES, *SENSITIVE_DIRS)
    contains = any(within(directory, path) for directory in every)
    return contains or any(within(path, tree) for tree in SENSITIVE_TREES)


def exempt(mount: Mount) -> bool:
    if mount.fstype in ("cgroup", "cgroup2"):
        return mount.root != "/"  # its own cgroup directory; "/" is the host's whole hierarchy
    if mount.fstype in ("devpts", "mqueue") or mount.mount_point in STANDARD_MOUNTS:
        return True
    return mount.mount_point == "/sys" and mount.read_only


def exposed(mounts: list[Mount], host_mounts: tuple[Mount, ...]) -> list[str]:
    """ "host HOST_PATH on MOUNT_POINT (rw|ro)" for each sensitive host path mounted; mounts below
    one already listed (a recursive bind's submounts) are counted with it, not listed."""
    found: list[tuple[Mount, str]] = []
    for mount in mounts:
        if exempt(mount):
            continue
        path = host_path(mount, list(host_mounts))
        if path is not None and sensitive(path):
            found.append((mount, path))
    tops = [
        (mount, path)
        for mount, path in found
        if not any(
            other.mount_point != mount.mount_point and within(mount.mount_point, other.mount_point)
            for other, _ in found
        )
    ]
    lines = []
    for mount, path in tops:
        below = sum(
            1
            for other, _ in found
            if other.mount_point != mount.mount_point
            and within(other.mount_point, mount.mount_point)
        )
        mode = "ro" if mount.read_only else "rw"
        extra = f" +{below} submounts" if below else ""
        lines.append(f"host {path} on {mount.mount_point} ({mode}){extra}")
    return lines


def sensitive_mounts(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    mounts = parse_mountinfo(sections["mountinfo"].text)
    if kernel_sign(sections, "proc_version").strip() == GVISOR_PROC_VERSION:
        reason = "an application kernel (gVisor) serves every file, its root too, as 9p"
        return [not_measurable(METRIC, cis.SENSITIVE_MOUNTS, reason, where)]
    if not on_host_kernel(sections, baseline):
        shares = [
            f"{m.fstype} {m.source} on {m.mount_point}"
            for m in mounts
            if m.fstype in HOST_SHARE_FSTYPES
        ]
        what = f"host directory shared into the guest: {'; '.join(shares)}" if shares else ""
        return [
            finding(METRIC, bool(shares), cis.SENSITIVE_MOUNTS, what or "no host share", HOST_SCOPE)
        ]
    if not baseline.mounts:
        reason = "the host's mountinfo was not read"
        return [not_measurable(METRIC, cis.SENSITIVE_MOUNTS, reason, where)]
    found = exposed(mounts, baseline.mounts)
    writable = [entry for entry in found if "(rw)" in entry]
    what = "sensitive host path mounted: " + "; ".join(found[:EXAMPLES])
    extra: dict[str, Value] = {"writable": bool(writable), "mount_count": len(mounts)}
    if not found:
        what = "no sensitive host path mounted"
    return [finding(METRIC, bool(found), cis.SENSITIVE_MOUNTS, what, where, **extra)]


PROBE = ReadProbe(
    "sensitive_mounts",
    {"mountinfo": MOUNTINFO, "boot_id": BOOT_ID, "proc_version": PROC_VERSION},
    sensitive_mounts,
)
