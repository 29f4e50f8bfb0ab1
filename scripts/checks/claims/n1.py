"""N1: a VM neighbour disturbs the app less than a container neighbour (performance isolation).

Judged per stressor on the p99 latency: each variant's slowdowns (stressed p99 over the
baseline p99 of the same repeat, neighbours/slowdown.py), and the ratio of the primary
container's median slowdown to the primary VM's, which must be at least the threshold
(stats.judge_ratio: its whole 95 % CI). p50 slowdowns are shown beside it. The claim holds only
when it holds for every stressor that ran; where the data says otherwise, the reason says so in
words.
"""

from __future__ import annotations

from collections.abc import Iterable

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.neighbours.measure import PATH
from scripts.checks.neighbours.slowdown import (
    LATENCY_METRIC,
    slowdowns,
    stressors_run,
)
from scripts.checks.results.samples import TEXTBOOK_KINDS
from scripts.checks.results.stats import Summary, judge_ratio, summarize
from scripts.checks.results.verdicts import ClaimResult, Samples, Verdict, judged

JUDGED = "p99"
SHOWN = ("p50", "p99")
# Offered more than this share of a variant's closed-loop maximum on the same path, the app
# queues: its baseline latency swings with any change in capacity, and a slowdown measures the
# queue rather than the neighbour. The maximum is the same run's wrk median (load group, P1).
MAX_UTILIZATION = 0.8


def _slowdown_text(summary: Summary) -> str:
    return (
        f"x{summary.median:.3g} (95 % CI {summary.ci_low:.3g}-{summary.ci_high:.3g}, n={summary.n})"
    )


def _disturbs(summary: Summary | None) -> bool:
    """Whether a slowdown distribution lies wholly above 1 (the neighbour measurably hurts)."""
    return summary is not None and summary.ci_low > 1.0


def judge_stressor(samples: Samples, stressor: str, threshold: float) -> ClaimResult:
    """One stressor: slowdowns per variant (cells), and the container/VM ratio judged."""
    claim = f"N1 {stressor}"
    cells: dict[str, str] = {}
    summaries: dict[str, Summary] = {}
    uncovered: list[str] = []
    for label in samples.variants():
        texts = []
        for percentile in SHOWN:
            found = slowdowns(samples.all, label.name, stressor, percentile)
            if found.uncovered and percentile == JUDGED:
                uncovered.append(f"{label.name} {found.uncovered}")
            if found.values:
                summary = summarize(found.values, name=f"{label.name} {stressor} slowdown")
                texts.append(f"{percentile} {_slowdown_text(summary)}")
                if percentile == JUDGED:
                    summaries[label.name] = summary
        if texts:
            cells[label.name] = ", ".join(texts)
    container, vm = (samples.primary(kind) for kind in TEXTBOOK_KINDS)
    if container is None or vm is None:
        missing = "container" if container is None else "vm"
        return ClaimResult(claim, "inconclusive", f"no variant of kind {missing} measured", cells)
    judgement = judge_ratio(
        slowdowns(samples.all, container, stressor, JUDGED).values,
        slowdowns(samples.all, vm, stressor, JUDGED).values,
        threshold,
        "at least",
        a_name=f"{container} slowdown",
        b_name=f"{vm} slowdown",
    )
    reason = f"{stressor} p99 {judgement.reason}"
    c_summary, v_summary = summaries.get(container), summaries.get(vm)
    if judgement.verdict == "does not hold":
        reason += f"; the data says otherwise: the {vm} neighbour disturbs more than the "
        reason += f"{container} neighbour under the {stressor} stressor"
    elif judgement.verdict == "inconclusive" and not (_disturbs(c_summary) or _disturbs(v_summary)):
        reason += "; neither neighbour measurably slows the app (both slowdown CIs reach 1)"
    elif judgement.verdict == "inconclusive" and _disturbs(c_summary) and _disturbs(v_summary):
        reason += "; both neighbours slow the app, by amounts the data cannot tell apart"
    if uncovered:
        reason += "; stressed runs left out, stress started late: " + ", ".join(uncovered)
    return judged(claim, judgement, reason, cells, summaries)


def combined(verdicts: set[Verdict]) -> Verdict:
    if "does not hold" in verdicts:
        return "does not hold"
    return "inconclusive" if "inconclusive" in verdicts or not verdicts else "holds"


def near_saturation(samples: Samples, variants: Iterable[str]) -> list[str]:
    """Each judged variant whose neighbour runs offered more than MAX_UTILIZATION of its
    measured maximum, in words."""
    found = []
    for variant in variants:
        maximum = samples.median("requests_per_s", variant=variant, endpoint=PATH.strip("/"))
        rates = {
            s.metadata.get("rate_per_s") for s in samples.matching(LATENCY_METRIC, variant=variant)
        }
        for rate in sorted(r for r in rates if isinstance(r, int | float)):
            if maximum and rate > MAX_UTILIZATION * maximum:
                found.append(
                    f"{variant} was offered {rate:g} req/s, {rate / maximum:.0%} of its "
                    f"closed-loop {PATH} maximum ({maximum:.0f} req/s, median): its latency "
                    "measures a queue"
                )
    return found


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    unavailable = sorted(
        {f"{s.variant}: {s.value}" for s in samples.all if s.metric == "neighbour_unavailable"}
    )
    stressors = stressors_run(samples.all)
    if not stressors:
        reason = "no neighbour runs" + (": " + "; ".join(unavailable) if unavailable else "")
        return ClaimResult("N1", "inconclusive", reason)
    parts = tuple(judge_stressor(samples, s, t.n1_min_disturbance_ratio) for s in stressors)
    summary = "; ".join(f"{part.claim.removeprefix('N1 ')}: {part.verdict}" for part in parts)
    summary += ". " + "; ".join(part.summary for part in parts)
    if unavailable:
        summary += "; no neighbour run for " + "; ".join(unavailable)
    cells = {
        label.name: "; ".join(
            f"{part.claim.removeprefix('N1 ')} {part.cell(label.name)}"
            for part in parts
            if part.cell(label.name)
        )
        for label in samples.variants()
    }
    verdict = combined({part.verdict for part in parts})
    saturated = near_saturation(samples, (v for k in TEXTBOOK_KINDS if (v := samples.primary(k))))
    if saturated:
        summary = f"inconclusive, measured near saturation: {'; '.join(saturated)}. {summary}"
        verdict = "inconclusive"
    worst = min(
        (part for part in parts if part.ratio is not None),
        key=lambda part: part.ratio or 0.0,
        default=None,
    )
    return ClaimResult(
        "N1",
        verdict,
        summary,
        {name: text for name, text in cells.items() if text},
        ratio=worst.ratio if worst else None,
        ratio_ci=worst.ratio_ci if worst else None,
        summaries={
            f"{name} ({part.claim.removeprefix('N1 ')} p99 slowdown)": s
            for part in parts
            for name, s in part.summaries.items()
        },
        parts=parts,
    )


CLAIM = Claim(
    id="N1",
    statement="VMs isolate a noisy neighbour better than containers (performance isolation)",
    measured="the app's open-loop latency p50/p99 at one fixed rate (vegeta), alone (a sibling "
    "instance of the same variant idle) and with the sibling running a stressor inside its own "
    "limits and isolation boundary (CPU-bound, memory-bandwidth, fsync-heavy) on a CPU set "
    "disjoint from the app's; slowdown = stressed / baseline latency of the same repeat, "
    "n >= 5 per stressor, interleaved",
    expected="container neighbour slows the app more than a VM neighbour for CPU and memory; "
    "both suffer on the shared disk (fsync)",
    reference="Sharma et al., 'Containers and Virtual Machines at Scale: A Comparative Study', "
    "Middleware 2016: VMs isolate a noisy neighbour better for CPU and memory interference; "
    "containers and VMs both suffer from a disk-bound neighbour on a shared disk.",
    judge=judge,
    thresholds=("n1_min_disturbance_ratio",),
)
