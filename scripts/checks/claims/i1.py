"""I1: containers give process-level isolation on a shared kernel."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.probes import findings
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    container_isolation_problems,
    isolation_line,
    probed_targets,
    weakened,
)


def judge(samples: Samples, _t: Thresholds) -> ClaimResult:
    container = samples.primary("container")
    targets = [t for t in probed_targets(samples, container) if not weakened(samples, t)]
    if container is None or not targets:
        return ClaimResult("I1", "inconclusive", "no container probed")
    problems = container_isolation_problems(samples, targets[0])
    summary = "; ".join(problems) or (
        "separate PID namespace, reduced capabilities, seccomp on, host kernel state visible, "
        "no misconfiguration found"
    )
    unmeasured = findings.unmeasurable(samples.all, targets[0])
    if unmeasured:
        summary += "; " + "; ".join(unmeasured)
    return ClaimResult(
        "I1",
        "does not hold" if problems else "holds",
        summary,
        {container: isolation_line(samples, targets[0])},
        problems=tuple(problems),
    )


CLAIM = Claim(
    id="I1",
    statement="Containers give process-level isolation: separated from each other, but on a "
    "shared kernel",
    measured="inside each: can it see host processes, host kernel state (uptime, boot id, loaded "
    "modules list, kernel log), its capabilities (CapEff), seccomp mode, NoNewPrivs, user "
    "namespace map, device nodes, cgroup limits",
    expected="container: host kernel state visible, PID namespace hides host processes, "
    "capabilities reduced, seccomp on",
    reference="Textbook: process-level isolation on a shared kernel.",
    judge=judge,
    kinds=("container",),
)
