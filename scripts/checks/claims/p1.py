"""P1: containers generally perform better; the hypervisor layer costs performance."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.verdicts import ClaimResult, Samples, Verdict, ratio_claim


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    endpoints = sorted(
        {str(s.metadata.get("endpoint")) for s in samples.all if s.metric == "requests_per_s"}
    )
    if not endpoints:
        return ClaimResult("P1", "inconclusive", "no load samples")
    parts = [
        ratio_claim(
            "P1",
            samples,
            "requests_per_s",
            "req/s",
            t.p1_min_throughput_ratio,
            vm_over_container=False,
            endpoint=endpoint,
        )
        for endpoint in endpoints
    ]
    if any(part.verdict == "inconclusive" for part in parts):
        verdict: Verdict = "inconclusive"
    else:
        verdict = "holds" if all(part.verdict == "holds" for part in parts) else "does not hold"
    ratios = [part.ratio for part in parts if part.ratio is not None]
    cells = {
        label.name: ", ".join(
            f"{e} {p.cell(label.name)}" for e, p in zip(endpoints, parts, strict=True)
        )
        for label in samples.variants()
    }
    return ClaimResult(
        "P1",
        verdict,
        "; ".join(f"{e}: {p.summary}" for e, p in zip(endpoints, parts, strict=True)),
        cells,
        ratio=min(ratios) if ratios else None,
    )


CLAIM = Claim(
    id="P1",
    statement="Containers generally perform better; the hypervisor layer costs performance",
    measured="HTTP throughput and latency percentiles under a fixed, bounded load, for a static, "
    "a CPU-bound and an I/O-bound (fsync) endpoint",
    expected="container at least as fast; report the ratio per endpoint",
    reference="KVM: CPU-bound Linpack 2-17 % slower, random I/O about half the IOPS; Docker NAT "
    "roughly doubles network latency (Felter et al. 2015).",
    judge=judge,
    thresholds=("p1_min_throughput_ratio",),
)
