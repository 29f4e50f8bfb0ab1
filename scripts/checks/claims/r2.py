"""R2: containers use fewer resources (memory, CPU when idle)."""

from __future__ import annotations

import dataclasses

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import ClaimResult, Samples, ratio_claim


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    result = ratio_claim(
        "R2", samples, "memory_charged_mib", "MiB", t.r2_min_memory_ratio, vm_over_container=True
    )
    cells = dict(result.cells)
    for label in samples.variants():
        idle = samples.median("idle_cpu_percent", variant=label.name)
        if idle is not None:
            cells[label.name] = f"{cells.get(label.name, '?')}; idle CPU {idle:.2f} %"
    return dataclasses.replace(result, cells=cells)


CLAIM = Claim(
    id="R2",
    statement="Containers use fewer resources (memory, CPU when idle)",
    measured="memory charged to the cgroup that holds all of the instance, by one formula "
    "(usage minus inactive file): the container's cgroup, the VM's libvirt machine scope (QEMU "
    "with all its threads); the VM's QEMU PSS (/proc/PID/smaps) and its breakdown beside it; "
    "idle CPU over a fixed window",
    expected="container much smaller",
    reference="Firecracker: < 5 MiB memory overhead per microVM (Agache et al. 2020).",
    judge=judge,
    thresholds=("r2_min_memory_ratio",),
)
