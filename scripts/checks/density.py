"""R4: how many instances of each variant fit in a memory budget, at the deployed limit.

N = budget // per-instance limit clones are started one after another (VMs then boot in
parallel), and those answering HTTP 200 before a deadline are counted (`instances_ready`).
The memory each ready clone is actually charged is measured too, so the report can also say
how many would fit by real footprint rather than by reservation (`instances_fit` =
budget // mean charged). Bounded in time and always cleaned up.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from components.http_wait import WaitResult, wait_for_http_200
from scripts.checks.clones import Clone, Cloner
from scripts.checks.http_wait import progress
from scripts.checks.parsers.proc_resources import meminfo_available_mib
from scripts.checks.resource_errors import BudgetError, CloneError
from scripts.checks.run_tags import RunTags
from scripts.checks.samples import Sample

DEFAULT_BUDGET_MIB = 1536
# How long all clones of one kind get to answer; a kind not listed gets the VM's.
DEADLINE_S = {"container": 60.0, "vm": 360.0}
# Host memory kept free beside the budget: the daemons, the checks, the deployed pair.
HOST_RESERVE_MIB = 1024


def planned_instances(
    budget_mib: float, limit_mib: float, available_mib: float, instance: str = "the instance"
) -> int:
    """How many instances to start; BudgetError when the budget cannot be honoured."""
    if limit_mib <= 0:
        raise BudgetError(
            f"{instance} has no memory limit; density needs the per-instance limit "
            "(twinlab:memoryMib)"
        )
    count = int(budget_mib // limit_mib)
    if count < 1:
        raise BudgetError(
            f"budget {budget_mib:g} MiB is below the memory limit of {instance} "
            f"({limit_mib:g} MiB); raise the budget"
        )
    if count * limit_mib + HOST_RESERVE_MIB > available_mib:
        raise BudgetError(
            f"{count} x {limit_mib:g} MiB plus {HOST_RESERVE_MIB} MiB reserve exceeds the "
            f"host's available {available_mib:.0f} MiB; lower the budget"
        )
    return count


def host_available_mib() -> float:
    return meminfo_available_mib(Path("/proc/meminfo").read_text())


def measure_density(
    cloner: Cloner,
    target: str,
    tags: RunTags,
    budget_mib: float = DEFAULT_BUDGET_MIB,
    deadline_s: float | None = None,
    console: Console | None = None,
) -> list[Sample]:
    limit = cloner.limit_mib
    attempted = planned_instances(budget_mib, limit, host_available_mib(), cloner.source_name)
    if deadline_s is None:
        deadline_s = DEADLINE_S.get(cloner.kind, max(DEADLINE_S.values()))
    clones: list[Clone] = []
    start_errors: list[str] = []
    waits: dict[str, WaitResult] = {}
    charged: dict[str, float] = {}
    with progress(console) as bar:
        first_created = time.monotonic()
        deadline = first_created + deadline_s
        try:
            tasks, labels = {}, {}
            for index in range(attempted):
                name = cloner.next_name()
                labels[name] = f"R4 {cloner.variant} {index + 1}/{attempted} {name}"
                tasks[name] = bar.add_task(f"{labels[name]}: starting")
                try:
                    clones.append(cloner.start(name))
                except CloneError as error:  # not fitting is a result, not a failure
                    start_errors.append(str(error))
                    bar.update(tasks[name], description=f"{labels[name]}: did not start")

            def wait(clone: Clone) -> WaitResult:
                label = labels[clone.name]

                def show(_elapsed: float, last: str) -> None:
                    bar.update(tasks[clone.name], description=f"{label}: waiting ({last})")

                result = wait_for_http_200(
                    clone.url, clone.created_at, deadline - clone.created_at, show
                )
                outcome = (
                    f"no HTTP 200 by the {deadline_s:g} s deadline"
                    if result.seconds is None
                    else f"HTTP 200 after {result.seconds:.2f} s"
                )
                bar.update(tasks[clone.name], description=f"{label}: {outcome}")
                return result

            with ThreadPoolExecutor(max_workers=max(1, len(clones))) as pool:
                for clone, result in zip(clones, pool.map(wait, clones), strict=True):
                    waits[clone.name] = result
            for clone in clones:
                if waits[clone.name].seconds is not None:
                    charged[clone.name] = cloner.memory(clone).charged_mib
        finally:
            for clone in clones:
                cloner.remove(clone)
    return density_samples(
        cloner, target, tags, budget_mib, attempted, deadline_s, waits, charged, start_errors
    )


def density_samples(
    cloner: Cloner,
    target: str,
    tags: RunTags,
    budget_mib: float,
    attempted: int,
    deadline_s: float,
    waits: dict[str, WaitResult],
    charged: dict[str, float],
    start_errors: list[str],
) -> list[Sample]:
    ready_s = [w.seconds for w in waits.values() if w.seconds is not None]
    footprints = list(charged.values())
    mean_mib = statistics.mean(footprints) if footprints else 0.0
    metadata = tags.metadata(
        **cloner.label.metadata(),
        source=cloner.source_name,
        budget_mib=budget_mib,
        limit_mib=cloner.limit_mib,
        attempted=attempted,
        deadline_s=deadline_s,
        start_errors=len(start_errors),
        first_start_error=start_errors[0] if start_errors else "",
        slowest_ready_s=round(max(ready_s), 3) if ready_s else 0.0,
        memory_charged_mib_mean=round(mean_mib, 3),
        memory_charged_mib_max=round(max(footprints), 3) if footprints else 0.0,
        memory_charged_mib_total=round(sum(footprints), 3),
    )
    fit = int(budget_mib // mean_mib) if mean_mib > 0 else 0
    label = cloner.label
    return [
        Sample(
            "instances_ready",
            len(ready_s),
            "instances",
            target,
            label.name,
            ("R4",),
            metadata,
            kind=label.kind,
        ),
        Sample(
            "instances_fit",
            fit,
            "instances",
            target,
            label.name,
            ("R4",),
            {**metadata, "method": "budget_mib // mean memory charged per ready instance"},
            kind=label.kind,
        ),
    ]
