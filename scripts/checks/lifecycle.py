"""One lifecycle for the check groups.

The runner (runall.py) builds one RunContext per run; each group is a module with
`run(context) -> list[Sample]` (probes/group.py, load/group.py, resources/group.py); the runner
then stamps the run's metadata (run id, virtualization mode, host kernel) on every sample, so a
group never decides what a run is, and no sample of a run can disagree with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from components.thresholds import Thresholds
from scripts.checks.load.closed_loop import LoadPlan
from scripts.checks.load.latency import REPEATS as OPEN_LOOP_REPEATS
from scripts.checks.neighbours.measure import NeighbourPlan
from scripts.checks.resources.runner import CHECKS as RESOURCE_CHECKS
from scripts.checks.resources.runner import DEFAULT_BUDGET_MIB, DensityBounds
from scripts.checks.resources.start_time import DEFAULT_REPEATS as DEFAULT_START_REPEATS
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.deployed import ROOT
from scripts.checks.targets.subjects import Subjects
from scripts.checks.targets.target import Target

# n >= 5 per figure (stats.MIN_N); 2 s runs (3 endpoints x 5 repeats x each variant): each
# second cut here is 45 s of `fab run-all`, and with the host's ephemeral ports no longer
# exhausted (README, host networking) a 2 s closed-loop run held 40-180 requests for a VM under
# TCG and 600-2,200 for a container (the test command's runs of 2026-12-01).
RUN_ALL_LOAD = LoadPlan(duration_s=2, warmup_s=1, repeats=5)


@dataclass(frozen=True)
class RunOptions:
    groups: tuple[str, ...] | None = None  # None: every group, in the runner's order
    load_plan: LoadPlan = RUN_ALL_LOAD
    open_loop_repeats: int = OPEN_LOOP_REPEATS  # P1 latency at one rate, after the wrk runs
    resource_checks: tuple[str, ...] = RESOURCE_CHECKS
    start_repeats: int = DEFAULT_START_REPEATS  # R1, interleaved across the variants
    idle_window_s: float = 10.0
    density_budget_mib: float = DEFAULT_BUDGET_MIB  # R4: one kernel-enforced budget per kind
    density: DensityBounds = field(default_factory=DensityBounds)
    weakened: bool = True
    # N1: the app beside a noisy sibling (3 stressors x 5 repeats x 2.5 s per variant)
    neighbours: NeighbourPlan = field(default_factory=NeighbourPlan)
    # Where a claim compares only the primary container and VM (P1's latency, N1), measure
    # only them: another variant's rows there (a gVisor sandbox's) are shown, never judged,
    # and cost about 90 s a run. `fab run-all` leaves them out to stay under 10 min and says
    # so in the claims' reasons; `fab load` and `fab neighbours` measure every variant.
    judged_only: bool = True
    thresholds: Thresholds | None = None  # None: the stack's, else the mode's defaults
    results_dir: Path = field(default_factory=lambda: ROOT / "results")


# A short run in which every claim of the isolation, load, resources and neighbours groups
# still gets its figures, with fewer repeats (n = 3: verdicts that need n >= 5 say
# inconclusive), bounded R4 runs (counts are lower bounds) and N1 with the CPU stressor alone:
# `fab run-all --quick` and the "nothing local" test.
QUICK_REPEATS = 3
QUICK_RUN = RunOptions(
    groups=("isolation", "load", "resources", "neighbours"),
    load_plan=LoadPlan(duration_s=1, warmup_s=0, repeats=QUICK_REPEATS),
    open_loop_repeats=QUICK_REPEATS,
    start_repeats=QUICK_REPEATS,
    idle_window_s=5.0,
    density_budget_mib=1024.0,
    density=DensityBounds(
        wall_clock_s=75.0, max_containers=3, vm_ready_deadline_s=30.0, hold_s=10.0
    ),
    neighbours=NeighbourPlan(stressors=("cpu",), repeats=QUICK_REPEATS, duration_s=1.5),
)


@dataclass(frozen=True)
class RunContext:
    """What every group of one run shares: the subjects and their opened targets, the run's
    identity, the options and where progress goes."""

    subjects: Subjects
    targets: Sequence[Target]  # one per subject, in the same order
    weakened: Sequence[Target]  # containers weakened by hand (I3)
    run_id: str
    virt_mode: str  # "kvm" | "tcg"
    options: RunOptions
    console: Console


CheckGroup = Callable[[RunContext], list[Sample]]


def stamp(samples: Sequence[Sample], run_metadata: Mapping[str, Value]) -> list[Sample]:
    """Every sample with the run's metadata; the run's values win over a group's."""
    return [
        dataclasses.replace(sample, metadata={**sample.metadata, **run_metadata})
        for sample in samples
    ]
