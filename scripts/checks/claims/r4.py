"""R4: many more containers than VMs fit on one host."""

from __future__ import annotations

import dataclasses
import statistics

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.samples import Sample
from scripts.checks.results.stats import MIN_N, judge_ratio
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    Verdict,
    judged,
    summary_cells,
)

METRIC = "instances_healthy_in_budget"
# `fab run-all` makes one density run per kind (each fills a whole memory budget, minutes under
# TCG), so there is no interval: the counts decide only when their ratio is this many times past
# the threshold (or under it), else the verdict is inconclusive. 2x stands in for the spread a
# repeat could show (start order, page cache, a slow boot at the deadline). With n >= MIN_N runs
# a kind (`fab resources`), the ratio's CI decides, as for every other claim.
SINGLE_RUN_MARGIN = 2.0


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    cells, summaries = summary_cells(samples, METRIC, "instances")
    cells.update(run_cells(samples, cells))
    container_name, vm_name = samples.primary("container"), samples.primary("vm")
    container = samples.numbers(METRIC, variant=container_name) if container_name else []
    vm = samples.numbers(METRIC, variant=vm_name) if vm_name else []
    if not container or not vm:
        return ClaimResult("R4", "inconclusive", f"{METRIC}: no density run of both kinds", cells)
    threshold = t.r4_min_density_ratio
    repeated = len(container) >= MIN_N and len(vm) >= MIN_N
    n_note = (
        f"n={len(container)}/{len(vm)} density runs per kind"
        if repeated
        else f"n={len(container)}/{len(vm)} density runs per kind (fewer than {MIN_N}: no CI): "
        f"holds/does not hold only past {SINGLE_RUN_MARGIN:g}x the threshold {threshold:g} "
        f"either way; `fab resources` makes {MIN_N}"
    )
    c_count, v_count = statistics.median(container), statistics.median(vm)
    if v_count == 0 or c_count == 0:
        none = vm_name if v_count == 0 else container_name
        return ClaimResult(
            "R4",
            "inconclusive",
            f"no {none} instance stayed healthy in the budget: the ratio is undefined; raise the "
            f"budget (RunOptions.density_budget_mib); {n_note}",
            cells,
            summaries=summaries,
        )
    # A run stopped by its own bounds (max count, wall clock) before the budget was full counts
    # a lower bound: a lower-bound container count can still show "holds", never "does not".
    c_bound = lower_bound(samples, container_name)
    v_bound = lower_bound(samples, vm_name)
    bounds = [str(name) for name, bound in ((container_name, c_bound), (vm_name, v_bound)) if bound]
    if bounds:
        n_note += f"; lower bound (run stopped before the budget was full): {', '.join(bounds)}"
    if repeated:
        judgement = judge_ratio(
            container,
            vm,
            threshold,
            "at least",
            MIN_N,
            a_name=str(container_name),
            b_name=str(vm_name),
        )
        verdict: Verdict = judgement.verdict
        reason = f"{METRIC} {judgement.reason}; {n_note}"
        if (verdict == "holds" and v_bound) or (verdict == "does not hold" and c_bound):
            verdict, reason = "inconclusive", f"{reason}; a lower-bound count cannot decide it"
        return dataclasses.replace(
            judged("R4", judgement, reason, cells, summaries), verdict=verdict
        )
    ratio = c_count / v_count
    if ratio >= SINGLE_RUN_MARGIN * threshold and not v_bound:
        verdict, where = "holds", f"at least {SINGLE_RUN_MARGIN:g}x the threshold"
    elif ratio <= threshold / SINGLE_RUN_MARGIN and not c_bound:
        verdict, where = "does not hold", f"at most 1/{SINGLE_RUN_MARGIN:g} of the threshold"
    elif bounds:
        verdict, where = "inconclusive", "a lower-bound count cannot decide it"
    else:
        verdict, where = "inconclusive", f"too close to the threshold for {len(container)} run(s)"
    return ClaimResult(
        "R4",
        verdict,
        f"{METRIC} {container_name}/{vm_name} = {c_count:g}/{v_count:g} = {ratio:.3g}: {where} "
        f"{threshold:g}; {n_note}",
        cells,
        ratio=ratio,
        summaries=summaries,
    )


def run_cells(samples: Samples, cells: dict[str, str]) -> dict[str, str]:
    """Each variant's count with its budget and why its last run stopped: one run gives the
    count alone, several their distribution (summary_cells' text)."""
    runs: dict[str, list[Sample]] = {}
    for sample in samples.all:
        if sample.metric == METRIC and sample.metadata.get("stop_reason"):
            runs.setdefault(sample.variant, []).append(sample)
    out = {}
    for variant, found in runs.items():
        last = found[-1]
        budget = last.metadata.get("budget_mib")
        in_budget = f" in {budget:g} MiB" if isinstance(budget, float | int) else ""
        stopped = f"stopped: {last.metadata['stop_reason']}"
        if len(found) == 1:
            out[variant] = f"{last.value} healthy{in_budget} (n=1; {stopped})"
        else:
            out[variant] = f"healthy{in_budget}: {cells.get(variant, '?')}; last run {stopped}"
    return out


def lower_bound(samples: Samples, variant: str | None) -> bool:
    return any(
        s.metric == METRIC and s.variant == variant and s.metadata.get("count_is_lower_bound")
        for s in samples.all
    )


CLAIM = Claim(
    id="R4",
    statement="Many more containers than VMs fit on one host",
    measured="instances of each kind started one by one inside one memory budget the kernel "
    "enforces (a parent cgroup with memory.max), with the deployed per-instance limit, until one "
    "does not answer or an earlier one is OOM-killed; counted if healthy 30 s after the last start",
    expected="container count much higher",
    reference="Firecracker: up to 150 microVMs started per second per host; LightVM: thousands "
    "per server.",
    judge=judge,
    thresholds=("r4_min_density_ratio",),
)
