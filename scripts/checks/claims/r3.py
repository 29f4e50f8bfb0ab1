"""R3: VMs need more storage."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import ClaimResult, Samples, ratio_claim


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    # Sizes are exact (a file's bytes do not vary between readings): one reading a variant is
    # the whole distribution, so n=1 is allowed and the CI is the point.
    return ratio_claim(
        "R3",
        samples,
        "image_size_mib",
        "MiB",
        t.r3_min_size_ratio,
        vm_over_container=True,
        min_n=1,
        note="exact sizes (no spread: n=1 per variant is the whole figure)",
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
