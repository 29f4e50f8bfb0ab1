"""R2: memory charged to each deployed instance and its CPU use over an idle window.

Each instance is read by the meter of its kind (scripts/checks/resources/meters.py): a
container by its cgroup, a VM by its QEMU process. All instances are read over the same
window, in READINGS slices (a memory reading and the CPU used per slice); no load is sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from rich.console import Console

from scripts.checks.parsers.proc_resources import cpu_percent
from scripts.checks.resources.errors import ResourceCheckError
from scripts.checks.resources.footprint import MemoryReading
from scripts.checks.resources.meters import Meter
from scripts.checks.results.memory_breakdown import PART_METRIC
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.http_wait import progress

IDLE_WINDOW_S = 10.0
# A guest goes on starting services after its app answers, and a load run leaves work queued:
# wait this long before the window (measured: ~18 % CPU in the 5 s after the first 200 under
# TCG, ~1 % from 10 s on).
SETTLE_S = 15.0
# Readings of each figure over the window: the measurement standard's n >= 5 (stats.MIN_N).
READINGS = 5


def measure_footprint(
    meters: Sequence[Meter],
    tags: RunTags,
    window_s: float = IDLE_WINDOW_S,
    console: Console | None = None,
    settle_s: float = SETTLE_S,
    readings: int = READINGS,
) -> list[Sample]:
    """Memory charged to each instance and its CPU use over the same idle window, after
    `settle_s` of quiet (no load is sent; a container's health check keeps running, as
    deployed). The window is cut into `readings` equal slices: one memory reading at the start
    of each slice and the CPU used over each, so both figures are distributions of `readings`
    values (median, CI and range in the report)."""
    if readings < 1:
        raise ResourceCheckError(f"readings must be at least 1, got {readings}")

    def cpu_ns() -> list[int]:
        return [meter.cpu_ns() for meter in meters]

    slice_s = window_s / readings
    memory: list[list[MemoryReading]] = [[] for _ in meters]
    cpu_slices: list[list[tuple[float, float]]] = [[] for _ in meters]  # (cpu s, wall s)
    with progress(console) as bar:
        task = bar.add_task(f"R2 settling for {settle_s:g} s (no load)", total=None)
        time.sleep(settle_s)
        for reading in range(readings):
            bar.update(
                task,
                description=f"R2 reading {reading + 1}/{readings}: memory, then idle CPU over "
                f"{slice_s:g} s (no load)",
            )
            for index, meter in enumerate(meters):
                memory[index].append(meter.memory())
            started, before = time.monotonic(), cpu_ns()
            time.sleep(slice_s)
            after, elapsed = cpu_ns(), time.monotonic() - started
            for index, (cpu_before, cpu_after) in enumerate(zip(before, after, strict=True)):
                cpu_slices[index].append(((cpu_after - cpu_before) / 1e9, elapsed))
    load = round(os.getloadavg()[0], 2)
    samples = []
    for index, meter in enumerate(meters):
        instance = meter.instance
        common: dict[str, Value] = {
            "instance": instance.name,
            "limit_mib": meter.limit_mib,
            "load_avg_1m": load,
            "settle_s": settle_s,
            "readings": readings,
            # n counts readings of this one instance, not instances (clones would each need
            # settle_s of quiet first: minutes more per run).
            "readings_of": "one instance",
        }
        for reading, (charged, (cpu_s, elapsed)) in enumerate(
            zip(memory[index], cpu_slices[index], strict=True)
        ):
            samples.append(
                tags.sample(
                    "memory_charged_mib",
                    round(charged.charged_mib, 3),
                    "MiB",
                    instance.target,
                    instance.label,
                    "R2",
                    **charged.metadata,
                    **common,
                    reading=reading,
                )
            )
            # What the figure is made of (a VM's guest RAM, TCG cache, QEMU): the stacked bar.
            samples += [
                tags.sample(
                    PART_METRIC,
                    round(mib, 3),
                    "MiB",
                    instance.target,
                    instance.label,
                    "R2",
                    part=part,
                    **common,
                    reading=reading,
                )
                for part, mib in charged.parts_mib.items()
            ]
            samples.append(
                tags.sample(
                    "idle_cpu_percent",
                    round(cpu_percent(cpu_s, elapsed), 3),
                    "%",
                    instance.target,
                    instance.label,
                    "R2",
                    window_s=round(elapsed, 3),
                    whole_window_s=window_s,
                    cpu_s=round(cpu_s, 4),
                    method=meter.cpu_method,
                    # A health check inside the instance is charged to it.
                    health_check_interval_s=meter.health_check_interval_s,
                    **common,
                    reading=reading,
                )
            )
    return samples
