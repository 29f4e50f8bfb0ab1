"""R2: memory charged to each deployed instance and its CPU use over an idle window.

Each instance is read by the meter of its kind (scripts/checks/meters.py): a container by its
cgroup, a VM by its QEMU process. All instances are read over the same window; no load is sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from rich.console import Console

from scripts.checks.http_wait import progress
from scripts.checks.meters import Meter
from scripts.checks.parsers.proc_resources import cpu_percent
from scripts.checks.run_tags import RunTags
from scripts.checks.samples import Sample, Value

IDLE_WINDOW_S = 10.0
# A guest goes on starting services after its app answers, and a load run leaves work queued:
# wait this long before the window (measured: ~18 % CPU in the 5 s after the first 200 under
# TCG, ~1 % from 10 s on).
SETTLE_S = 15.0


def measure_footprint(
    meters: Sequence[Meter],
    tags: RunTags,
    window_s: float = IDLE_WINDOW_S,
    console: Console | None = None,
    settle_s: float = SETTLE_S,
) -> list[Sample]:
    """Memory charged to each instance and its CPU use over the same idle window, after
    `settle_s` of quiet (no load is sent; a container's health check keeps running, as
    deployed)."""

    def cpu_ns() -> list[int]:
        return [meter.cpu_ns() for meter in meters]

    with progress(console) as bar:
        task = bar.add_task(f"R2 settling for {settle_s:g} s (no load)", total=None)
        time.sleep(settle_s)
        bar.update(task, description=f"R2 idle CPU over {window_s:g} s (no load)")
        started = time.monotonic()
        before = cpu_ns()
        time.sleep(window_s)
        after = cpu_ns()
        elapsed = time.monotonic() - started
    load = round(os.getloadavg()[0], 2)
    samples = []
    for meter, cpu_before, cpu_after in zip(meters, before, after, strict=True):
        instance = meter.instance
        memory = meter.memory()
        cpu_s = (cpu_after - cpu_before) / 1e9
        common: dict[str, Value] = {
            "instance": instance.name,
            "limit_mib": meter.limit_mib,
            "load_avg_1m": load,
            "settle_s": settle_s,
        }
        samples.append(
            tags.sample(
                "memory_charged_mib",
                round(memory.charged_mib, 3),
                "MiB",
                instance.target,
                instance.label,
                "R2",
                **memory.metadata,
                **common,
            )
        )
        samples.append(
            tags.sample(
                "idle_cpu_percent",
                round(cpu_percent(cpu_s, elapsed), 3),
                "%",
                instance.target,
                instance.label,
                "R2",
                window_s=round(elapsed, 3),
                cpu_s=round(cpu_s, 4),
                method=meter.cpu_method,
                # A health check inside the instance is charged to it.
                health_check_interval_s=meter.health_check_interval_s,
                **common,
            )
        )
    return samples
