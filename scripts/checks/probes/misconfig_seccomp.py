"""Seccomp filter absent or ineffective (CIS 5.22): is a filter installed, and how many of a
fixed list of dangerous syscalls does it block.

Read: Seccomp and Seccomp_filters of /proc/self/status, and the answers to
syscall_test.SCRIPT (each dangerous syscall called with arguments the kernel rejects: nothing
happens either way; EPERM means the filter blocked it). Only syscalls the host's kernel answers
with an argument error are counted (the host's answers are the calibration). A target with no
filter, or one that blocks none of them, is the finding. In a VM the filter (or its absence)
guards the guest's kernel only: guest-only.
"""

from __future__ import annotations

from scripts.checks.parsers import proc
from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import cis, findings, syscall_test
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, scope
from scripts.checks.probes.shell import BOOT_ID, STATUS
from scripts.checks.results.samples import Value

METRIC = "seccomp_unconfined"
COUNT_METRIC = "dangerous_syscalls_blocked"
METRICS = {
    METRIC: Metric("", ISOLATION),  # True = weak (findings.py)
    COUNT_METRIC: Metric("syscalls", ISOLATION),
}


def blocked_syscalls(
    answers: dict[str, str], host_answers: dict[str, str]
) -> tuple[list[str], list[str]]:
    """(blocked, tested): the countable syscalls, and those of them answered EPERM."""
    tested = [name for name in answers if syscall_test.countable(host_answers.get(name))]
    blocked = [name for name in tested if answers[name] == syscall_test.FILTER_ERRNO]
    return blocked, tested


def seccomp_filter(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    status = proc.parse_status(sections["status"].text)
    mode = int(status.get("Seccomp", "0"))
    answers = syscall_test.parse_answers(sections["syscalls"].text)
    if not sections["syscalls"].ok or not answers:
        # Without the count only the filter's presence is known: mode 0 is still a finding.
        reason = (
            "syscall test did not run (no python3, or not x86_64): "
            + (sections["syscalls"].value[:80])
        )
        if mode == 0:
            return [finding(METRIC, True, cis.SECCOMP, "no seccomp filter (mode 0)", where)]
        return [not_measurable(METRIC, cis.SECCOMP, reason, where, seccomp_mode=mode)]
    blocked, tested = blocked_syscalls(answers, dict(baseline.syscall_answers))
    allowed = [name for name in tested if name not in blocked]
    extra: dict[str, Value] = {
        "seccomp_mode": mode,
        "tested": len(tested),
        "blocked_names": ",".join(blocked),
        "allowed_names": ",".join(allowed),
    }
    # The count is a measurement, not a finding: no "cis" key, so no table row of its own.
    count = Reading(COUNT_METRIC, len(blocked), {**extra, findings.SCOPE_KEY: where})
    weak = mode != 2 or not blocked
    if mode != 2:
        what = (
            f"no seccomp filter (mode {mode}): "
            f"{len(allowed)} of {len(tested)} dangerous syscalls reach the kernel"
        )
    elif not blocked:
        what = f"seccomp filter blocks none of {len(tested)} dangerous syscalls"
    else:
        what = f"seccomp filter blocks {len(blocked)} of {len(tested)} dangerous syscalls"
    return [count, finding(METRIC, weak, cis.SECCOMP, what, where, **extra)]


PROBE = ReadProbe(
    "seccomp_filter",
    {"status": STATUS, "syscalls": syscall_test.SNIPPET, "boot_id": BOOT_ID},
    seccomp_filter,
)
