"""R2: memory charged to each deployed instance and its CPU use over an idle window.

Container: cgroup memory as `docker stats` shows it (raw usage in metadata) and cgroup CPU time.
VM: the QEMU process's PSS (split into guest RAM, TCG code cache and the rest) and its CPU
time. Both instances are read over the same window; no load is sent.
"""

from __future__ import annotations

import os
import time

from rich.console import Console

from scripts.checks import footprint
from scripts.checks.docker_engine import DockerEngine
from scripts.checks.http_wait import progress
from scripts.checks.instance_pair import Deployed
from scripts.checks.libvirt_domains import Virsh
from scripts.checks.parsers.docker_inspect import parse_container
from scripts.checks.parsers.domain_xml import parse_domain
from scripts.checks.parsers.proc_resources import cpu_percent
from scripts.checks.run_tags import RunTags
from scripts.checks.samples import Sample, Value, Variant

IDLE_WINDOW_S = 10.0
# A guest goes on starting services after its app answers, and a load run leaves work queued:
# wait this long before the window (measured: ~18 % CPU in the 5 s after the first 200 under
# TCG, ~1 % from 10 s on).
SETTLE_S = 15.0


def measure_footprint(
    pair: Deployed,
    tags: RunTags,
    window_s: float = IDLE_WINDOW_S,
    engine: DockerEngine | None = None,
    virsh: Virsh | None = None,
    console: Console | None = None,
    settle_s: float = SETTLE_S,
) -> list[Sample]:
    """Memory charged to each instance and its CPU use over the same idle window, after
    `settle_s` of quiet (no load is sent; the container's health check keeps running, as
    deployed)."""
    engine = engine or DockerEngine()
    virsh = virsh or Virsh()
    container = parse_container(engine.running_container(pair.container_name))
    vm = parse_domain(virsh.running_domain_xml(pair.vm_name))
    qemu_pid = virsh.qemu_pid(pair.vm_name)

    def cpu_ns() -> dict[str, int]:
        return {
            "container": footprint.container_cpu_ns(container.pid),
            "vm": footprint.qemu_cpu_ns(qemu_pid),
        }

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
    memory = {
        "container": footprint.container_memory(container.pid),
        "vm": footprint.qemu_memory(qemu_pid, guest_memory_mib=vm.memory_mib),
    }
    limits = {"container": container.memory_limit_mib, "vm": vm.memory_mib}
    # The container's health check runs inside it, so its CPU is charged to the container.
    health = {"container": container.health_check_interval_s, "vm": 0.0}
    targets = {"container": pair.container_target, "vm": pair.vm_target}
    names = {"container": pair.container_name, "vm": pair.vm_name}
    variants: tuple[Variant, ...] = ("container", "vm")
    samples = []
    for variant in variants:
        cpu_s = (after[variant] - before[variant]) / 1e9
        common: dict[str, Value] = {
            "instance": names[variant],
            "limit_mib": limits[variant],
            "load_avg_1m": load,
            "settle_s": settle_s,
        }
        samples.append(
            tags.sample(
                "memory_charged_mib",
                round(memory[variant].charged_mib, 3),
                "MiB",
                targets[variant],
                variant,
                "R2",
                **memory[variant].metadata,
                **common,
            )
        )
        samples.append(
            tags.sample(
                "idle_cpu_percent",
                round(cpu_percent(cpu_s, elapsed), 3),
                "%",
                targets[variant],
                variant,
                "R2",
                window_s=round(elapsed, 3),
                cpu_s=round(cpu_s, 4),
                method="cgroup cpuacct" if variant == "container" else "QEMU utime+stime",
                health_check_interval_s=health[variant],
                **common,
            )
        )
    return samples
