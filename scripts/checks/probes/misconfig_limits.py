"""No PIDs limit (CIS 5.29): without pids.max a fork bomb inside exhausts the kernel's process
table, which on a shared kernel is the host's.

Read: pids.max of the target's own cgroup (cgroup v2 at /sys/fs/cgroup, v1 under
/sys/fs/cgroup/pids). "max" is no limit. A target that shows no pids.max at all (no pids
controller, or the root cgroup, which has none) cannot be judged: not measurable. In a VM the
process table at risk is the guest's: guest-only.
"""

from __future__ import annotations

from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import cis
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, scope
from scripts.checks.probes.shell import BOOT_ID, optional

METRIC = "pids_unlimited"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)


def pids_limit(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    for name, source in (("v2_max", "cgroup v2 pids.max"), ("v1_max", "cgroup v1 pids.max")):
        text = optional(sections, name)
        if text is None or not text.strip():
            continue
        value = text.strip()
        unlimited = value == "max"
        what = f"no PIDs limit ({source} = max)" if unlimited else f"PIDs limit {value}"
        return [finding(METRIC, unlimited, cis.PIDS_LIMIT, what, where, pids_max=value)]
    reason = "no pids.max visible (no pids controller, or the root cgroup)"
    return [not_measurable(METRIC, cis.PIDS_LIMIT, reason, where)]


PROBE = ReadProbe(
    "pids_limit",
    {
        "v2_max": "cat /sys/fs/cgroup/pids.max",
        "v1_max": "cat /sys/fs/cgroup/pids/pids.max",
        "boot_id": BOOT_ID,
    },
    pids_limit,
)
