"""Root without a user namespace (CIS 4.1 a user for the container; 5.31 host user namespace):
the target's main process runs as uid 0 and that uid 0 is the host's root (identity uid map),
so any escape lands as root on the host.

Read: the Uid line and uid_map of PID 1 (the container's main process; the probes themselves
run as root through docker exec, so their own uid says nothing). When PID 1 is the host's init
(host PID namespace, reported by the namespace probe) the container's own user cannot be told
from inside: not measurable. In a VM PID 1 is the guest's init, root of the guest's kernel
only: guest-only.
"""

from __future__ import annotations

from scripts.checks.parsers import proc
from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import cis
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, on_host_kernel, scope
from scripts.checks.probes.shell import BOOT_ID, NAMESPACES
from scripts.checks.results.samples import Value

METRIC = "root_without_userns"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)


def root_user(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    inside = proc.parse_namespaces(sections["namespaces"].text)
    host_pid = baseline.namespaces.get("pid")
    if (
        on_host_kernel(sections, baseline)
        and host_pid is not None
        and inside.get("pid") == host_pid
    ):
        reason = "PID 1 is the host's init (host PID namespace): the main process is not PID 1"
        return [not_measurable(METRIC, cis.USER, reason, where)]
    if not sections["status"].ok:
        return [not_measurable(METRIC, cis.USER, "/proc/1/status unreadable", where)]
    uids = proc.parse_status(sections["status"].text).get("Uid", "").split()
    identity = proc.is_identity_uid_map(sections["uid_map"].text)
    root = "0" in uids
    weak = root and identity
    if weak:
        whose = "the host's" if on_host_kernel(sections, baseline) else "the guest kernel's"
        what = f"main process runs as uid 0 with no user namespace (uid 0 is {whose} root)"
    elif root:
        what = "main process runs as uid 0 inside a user namespace (mapped to an unprivileged uid)"
    else:
        what = f"main process runs as uid {uids[0] if uids else '?'}"
    extra: dict[str, Value] = {"uids": " ".join(uids), "uid_map_identity": identity}
    return [finding(METRIC, weak, cis.USER, what, where, **extra)]


PROBE = ReadProbe(
    "root_user",
    {
        "status": "cat /proc/1/status",
        "uid_map": "cat /proc/1/uid_map",
        "namespaces": NAMESPACES,
        "boot_id": BOOT_ID,
    },
    root_user,
)
