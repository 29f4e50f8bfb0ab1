"""LSM profile unconfined (CIS 5.2 AppArmor, 5.3 SELinux): the target's processes run without a
confining profile although the kernel enforces one.

Read: /proc/self/attr/current (the probing shell gets the target's profile: docker exec applies
the container's) and which confining LSMs the kernel runs. On the host's kernel that is the
host's list (HostBaseline.lsms): a host kernel without AppArmor or SELinux confines nothing and
the probe says "not measurable", never "confined". In a VM the guest kernel's own list is used
and the finding is guest-only.
"""

from __future__ import annotations

from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import cis
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, on_host_kernel, scope
from scripts.checks.probes.shell import BOOT_ID, LSM_SNIPPETS, active_lsms

METRIC = "lsm_unconfined"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)
# SELinux types that mean "not confined" (the targeted policy's and container-selinux's).
UNCONFINED_SELINUX_TYPES = ("unconfined_t", "spc_t", "kernel_t", "initrc_t")


def unconfined(label: str) -> bool:
    label = label.removesuffix(" (enforce)").removesuffix(" (complain)").strip()
    return label == "unconfined" or any(t in label.split(":") for t in UNCONFINED_SELINUX_TYPES)


def lsm_profile(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    lsms = baseline.lsms if on_host_kernel(sections, baseline) else active_lsms(sections)
    item = cis.SELINUX if "selinux" in lsms else cis.APPARMOR
    current = sections["current"]
    if not lsms:
        kernel = "host" if on_host_kernel(sections, baseline) else "guest"
        reason = (
            f"the {kernel} kernel runs no AppArmor or SELinux (attr/current: "
            f"{current.value[:80] or current.rc})"
        )
        return [not_measurable(METRIC, item, reason, where)]
    if not current.ok:
        reason = f"{', '.join(lsms)} enabled but /proc/self/attr/current unreadable"
        return [not_measurable(METRIC, item, f"{reason}: {current.value[:80]}", where)]
    label = current.value.replace("\x00", "")
    weak = unconfined(label)
    what = f"runs {'unconfined' if weak else 'confined'} under {', '.join(lsms)}: {label}"
    return [finding(METRIC, weak, item, what, where, profile=label)]


PROBE = ReadProbe(
    "lsm_profile",
    {"current": "cat /proc/self/attr/current", **LSM_SNIPPETS, "boot_id": BOOT_ID},
    lsm_profile,
)
