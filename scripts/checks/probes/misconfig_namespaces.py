"""Host namespaces shared (CIS 5.16 PID, 5.10 network, 5.17 IPC, 5.21 UTS): the target runs in
the host's own namespace instead of one of its own.

Read: /proc/self/ns/{pid,net,ipc,uts} of the probing shell (docker exec and SSH sessions join
the target's namespaces), compared with the host's (HostBaseline.namespaces). The links name a
namespace by inode, which identifies it only within one kernel: the initial namespaces of every
kernel have the same fixed inodes, so a VM's own PID namespace shows the host's number. Hence a
namespace counts as shared only when the target also runs on the host's kernel (same boot id).
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

# namespace -> (metric, CIS item, what sharing it gives)
SHARED = {
    "pid": ("host_pid_namespace_shared", cis.HOST_PID, "sees and signals every host process"),
    "net": ("host_net_namespace_shared", cis.HOST_NETWORK, "host interfaces and ports"),
    "ipc": ("host_ipc_namespace_shared", cis.HOST_IPC, "host shared memory and semaphores"),
    "uts": ("host_uts_namespace_shared", cis.HOST_UTS, "can change the host's hostname"),
}
METRICS = {metric: Metric("", ISOLATION) for metric, _, _ in SHARED.values()}


def host_namespaces(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    inside = proc.parse_namespaces(sections["namespaces"].text)
    where = scope(sections, baseline)
    same_kernel = on_host_kernel(sections, baseline)
    readings = []
    for name, (metric, item, gives) in SHARED.items():
        host, own = baseline.namespaces.get(name), inside.get(name)
        if host is None or own is None:
            side = "the host's" if host is None else "the target's"
            reason = f"{side} /proc/self/ns/{name} could not be read"
            readings.append(not_measurable(metric, item, reason, where))
            continue
        shared = same_kernel and own == host
        if shared:
            what = f"host {name} namespace shared ({own}): {gives}"
        elif same_kernel:
            what = f"own {name} namespace ({own}; host {host})"
        else:
            what = f"own kernel: its {name} namespace is the guest's ({own})"
        readings.append(finding(metric, shared, item, what, where, namespace=own))
    return readings


PROBE = ReadProbe(
    "host_namespaces", {"namespaces": NAMESPACES, "boot_id": BOOT_ID}, host_namespaces
)
