"""R1: containers start quickly."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import ClaimResult, Samples, ratio_claim


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    return ratio_claim(
        "R1",
        samples,
        "time_to_first_response_s",
        "s",
        t.r1_min_start_ratio,
        vm_over_container=True,
    )


CLAIM = Claim(
    id="R1",
    statement="Containers start quickly",
    measured='time from "create" to first HTTP 200, repeated, every variant',
    expected="container many times faster",
    reference="Container start ~100 ms via the runtime, +~250 ms Docker daemon (van Rijn & "
    "Rellermeyer 2021); Firecracker microVM boot to init < 125 ms (Agache et al. 2020); "
    "LightVM 2.3 ms (Manco et al. 2017).",
    judge=judge,
    thresholds=("r1_min_start_ratio",),
)
