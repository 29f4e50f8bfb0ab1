"""I3: container isolation holds only "if managed properly"."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    container_isolation_problems,
    isolation_line,
    weakened,
    weakening_reported,
)


def judge(samples: Samples, _t: Thresholds) -> ClaimResult:
    container = samples.primary("container")
    weak = [t for t in samples.targets(container) if weakened(samples, t)]
    if container is None or not weak:
        return ClaimResult("I3", "inconclusive", "no deliberately weakened container probed")
    reported = weakening_reported(samples, weak[0])
    still_passes = not container_isolation_problems(samples, weak[0])
    holds = bool(reported) and not still_passes
    return ClaimResult(
        "I3",
        "holds" if holds else "does not hold",
        f"weakened container ({weak[0]}): checks report {', '.join(reported) or 'nothing'}",
        {container: isolation_line(samples, weak[0])},
        problems=tuple(reported),
    )


CLAIM = Claim(
    id="I3",
    statement='Container isolation holds only "if managed properly"',
    measured="the same probes against a deliberately weakened container (privileged, host PID "
    "namespace)",
    expected="the checks report the weakening; the isolation tests fail on it",
    reference="Textbook: container isolation holds only if managed properly.",
    judge=judge,
    kinds=("container",),
)
