"""I2: VMs isolate more strongly, because each has its own kernel."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.probes import findings
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    isolation_line,
    probed_targets,
    vm_blind_notes,
    vm_isolation_problems,
)


def judge(samples: Samples, _t: Thresholds) -> ClaimResult:
    vm = samples.primary("vm")
    targets = probed_targets(samples, vm)
    if vm is None or not targets:
        return ClaimResult("I2", "inconclusive", "no VM probed")
    problems = vm_isolation_problems(samples, targets[0])
    summary = "; ".join(problems) or (
        "nothing of the host kernel visible; guest root changes only its own kernel"
    )
    not_measured = vm_blind_notes(samples, targets[0]) + findings.unmeasurable(
        samples.all, targets[0]
    )
    if not_measured:
        summary += "; " + "; ".join(not_measured)
    guest_only = findings.weaknesses(samples.all, targets[0], scope=findings.GUEST_ONLY)
    if guest_only:
        summary += "; guest-only (expose the guest's own kernel, not the host's): " + "; ".join(
            guest_only
        )
    return ClaimResult(
        "I2",
        "does not hold" if problems else "holds",
        summary,
        {vm: isolation_line(samples, targets[0])},
        problems=tuple(problems),
    )


CLAIM = Claim(
    id="I2",
    statement="VMs isolate more strongly, because each has its own kernel",
    measured="the same probes; plus root in the guest may load modules / change kernel settings "
    "without touching the host",
    expected="VM: nothing of the host kernel visible",
    reference="Textbook: hardware-virtualized isolation with its own kernel.",
    judge=judge,
    kinds=("vm",),
)
