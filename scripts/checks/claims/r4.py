"""R4: many more containers than VMs fit on one host."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import ClaimResult, Samples, Verdict, summary_cells

METRIC = "instances_healthy_in_budget"
# One density run per kind (n=1: each run fills a whole memory budget, minutes under TCG), so
# there is no interval: the counts decide only when their ratio is this many times past the
# threshold (or under it), else the verdict is inconclusive. 2x stands in for the spread a
# repeat could show (start order, page cache, a slow boot at the deadline).
SINGLE_RUN_MARGIN = 2.0


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    cells, summaries = summary_cells(samples, METRIC, "instances")
    for sample in samples.all:
        if sample.metric == METRIC and sample.metadata.get("stop_reason"):
            budget = sample.metadata.get("budget_mib")
            cells[sample.variant] = (
                f"{sample.value} healthy"
                + (f" in {budget:g} MiB" if isinstance(budget, float | int) else "")
                + f" (n=1; stopped: {sample.metadata['stop_reason']})"
            )
    container_name, vm_name = samples.primary("container"), samples.primary("vm")
    container = samples.numbers(METRIC, variant=container_name) if container_name else []
    vm = samples.numbers(METRIC, variant=vm_name) if vm_name else []
    if not container or not vm:
        return ClaimResult("R4", "inconclusive", f"{METRIC}: no density run of both kinds", cells)
    threshold = t.r4_min_density_ratio
    c_count, v_count = container[-1], vm[-1]
    n_note = (
        f"n=1 density run per kind (no CI): holds/does not hold only past {SINGLE_RUN_MARGIN:g}x "
        f"the threshold {threshold:g} either way"
    )
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
    ratio = c_count / v_count
    # A run stopped by its own bounds (max count, wall clock) before the budget was full counts
    # a lower bound: a lower-bound container count can still show "holds", never "does not".
    c_bound = lower_bound(samples, container_name)
    v_bound = lower_bound(samples, vm_name)
    verdict: Verdict
    if ratio >= SINGLE_RUN_MARGIN * threshold and not v_bound:
        verdict, where = "holds", f"at least {SINGLE_RUN_MARGIN:g}x the threshold"
    elif ratio <= threshold / SINGLE_RUN_MARGIN and not c_bound:
        verdict, where = "does not hold", f"at most 1/{SINGLE_RUN_MARGIN:g} of the threshold"
    else:
        verdict, where = "inconclusive", "too close to the threshold for one run"
    bounds = [str(name) for name, bound in ((container_name, c_bound), (vm_name, v_bound)) if bound]
    if bounds:
        n_note += f"; lower bound (run stopped before the budget was full): {', '.join(bounds)}"
        if verdict == "inconclusive":
            where = "a lower-bound count cannot decide it"
    return ClaimResult(
        "R4",
        verdict,
        f"{METRIC} {container_name}/{vm_name} = {c_count:g}/{v_count:g} = {ratio:.3g}: {where} "
        f"{threshold:g}; {n_note}",
        cells,
        ratio=ratio,
        summaries=summaries,
    )


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
