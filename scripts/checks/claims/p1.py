"""P1: containers generally perform better; the hypervisor layer costs performance."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.claims.parts import combined_verdict
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    ratio_claim,
    summary_cells,
)

# Open-loop latency shown beside the throughput verdict (openloop.py metrics).
LATENCY_METRICS = ("latency_p50_ms", "latency_p99_ms", "latency_p99_9_ms")


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    """The verdict on closed-loop throughput (container/VM req/s per endpoint, every endpoint
    must hold); the open-loop latency at one offered rate is reported beside it, not judged."""
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
    verdict = combined_verdict(parts)
    worst = min(
        (part for part in parts if part.ratio is not None),
        key=lambda part: part.ratio or 0.0,
        default=None,
    )
    cells = {
        label.name: "; ".join(
            f"{e} {p.cell(label.name)}"
            for e, p in zip(endpoints, parts, strict=True)
            if p.cell(label.name)
        )
        for label in samples.variants()
        if any(p.cell(label.name) for p in parts)  # e.g. a variant measured only by R1
    }
    summary = "; ".join(f"{e}: {p.summary}" for e, p in zip(endpoints, parts, strict=True))
    latency = open_loop_latency(samples)
    for name, text in latency.items():
        cells[name] = f"{cells.get(name, '')}; open-loop {text}".lstrip("; ")
    if latency:
        summary += "; latency from the open-loop run at one offered rate, reported, not judged"
    unavailable = {f"{s.variant}: {s.value}" for s in samples.matching("open_loop_unavailable")}
    if unavailable:
        summary += "; no open-loop latency: " + "; ".join(sorted(unavailable))
    return ClaimResult(
        "P1",
        verdict,
        summary,
        cells,
        ratio=worst.ratio if worst else None,
        ratio_ci=worst.ratio_ci if worst else None,
        summaries={
            f"{name} ({endpoint})": summary
            for endpoint, part in zip(endpoints, parts, strict=True)
            for name, summary in part.summaries.items()
        },
    )


def open_loop_latency(samples: Samples) -> dict[str, str]:
    """Per variant: the open-loop run's offered rate and latency percentiles as distributions,
    and the generator's CPU, e.g. "at 120 req/s: p50 1.2 ms (95 % CI ...), ...". Empty when no
    open-loop run was made."""
    rates = samples.numbers("offered_rate_per_s")
    if not rates:
        return {}
    texts: dict[str, list[str]] = {}
    for metric in (*LATENCY_METRICS, "load_generator_cpu_percent"):
        cells, _ = summary_cells(samples, metric, "%" if "percent" in metric else "ms", loop="open")
        name = metric.removeprefix("latency_").removesuffix("_ms").replace("_", ".")
        if metric == "load_generator_cpu_percent":
            name = "generator CPU"
        for variant, text in cells.items():
            texts.setdefault(variant, []).append(f"{name} {text}")
    rate = f"at {max(rates):g} req/s: "
    return {variant: rate + ", ".join(parts) for variant, parts in texts.items()}


CLAIM = Claim(
    id="P1",
    statement="Containers generally perform better; the hypervisor layer costs performance",
    measured="HTTP throughput under a fixed, bounded closed-loop load (wrk), for a static, a "
    "CPU-bound and an I/O-bound (fsync) endpoint; latency percentiles (p50/p90/p99/p99.9) from an "
    "open-loop, constant-rate run (vegeta) at the same offered rate for every variant, the "
    "generator pinned to a core apart from the servers",
    expected="container at least as fast; report the ratio per endpoint",
    reference="KVM: CPU-bound Linpack 2-17 % slower, random I/O about half the IOPS; Docker NAT "
    "roughly doubles network latency (Felter et al. 2015).",
    judge=judge,
    thresholds=("p1_min_throughput_ratio",),
)
