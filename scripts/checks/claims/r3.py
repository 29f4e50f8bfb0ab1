"""R3: VMs need more storage."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.verdicts import ClaimResult, Samples, ratio_claim


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    return ratio_claim(
        "R3", samples, "image_size_mib", "MiB", t.r3_min_size_ratio, vm_over_container=True
    )


CLAIM = Claim(
    id="R3",
    statement="VMs need more storage",
    measured="container image size vs VM disk image (plus kernel and initrd)",
    expected="container smaller",
    reference="No single figure: depends on the guest OS image.",
    judge=judge,
    thresholds=("r3_min_size_ratio",),
)
