"""R4: many more containers than VMs fit on one host."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.verdicts import ClaimResult, Samples, ratio_claim


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    return ratio_claim(
        "R4", samples, "instances_fit", "instances", t.r4_min_density_ratio, vm_over_container=False
    )


CLAIM = Claim(
    id="R4",
    statement="Many more containers than VMs fit on one host",
    measured="instances that reach HTTP 200 within a fixed memory budget, same app and same "
    "per-instance limit",
    expected="container count much higher",
    reference="Firecracker: up to 150 microVMs started per second per host; LightVM: thousands "
    "per server.",
    judge=judge,
    thresholds=("r4_min_density_ratio",),
)
