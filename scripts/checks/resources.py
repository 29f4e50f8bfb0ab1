"""Resource checks R1-R3 on a deployed container and VM (R4 lives in density.py).

- R1 `measure_start_times`: clones of the deployed instance, create call to first HTTP 200.
- R2 `measure_footprint`: memory charged now and CPU used over an idle window, both at once.
- R3 `measure_sizes`: container image vs VM base disk + kernel + initrd.

Everything reads the host's /proc, cgroups and image files, so it runs on the host that runs
the instances. Each function returns list[Sample]; names and units are those of metrics.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from components.errors import TwinlabError
from scripts.checks import footprint
from scripts.checks.clones import (
    POLL_INTERVAL_S,
    Clone,
    Cloner,
    ContainerCloner,
    VmCloner,
    progress,
    remove_clones,
    wait_for_http_200,
)
from scripts.checks.density import DEFAULT_BUDGET_MIB, measure_density
from scripts.checks.docker_engine import DockerEngine
from scripts.checks.libvirt_domains import Virsh, disk_chain, kvm_device_problem
from scripts.checks.parsers.docker_inspect import parse_container
from scripts.checks.parsers.domain_xml import DomainFacts, parse_domain
from scripts.checks.parsers.proc_resources import MIB, cpu_percent
from scripts.checks.resource_errors import ReadinessTimeoutError, ResourceCheckError
from scripts.checks.run_tags import RunTags, run_tags
from scripts.checks.samples import Sample, Value, Variant, write_samples

DEFAULT_REPEATS = 3
IDLE_WINDOW_S = 10.0
START_DEFINITION = "create call to first HTTP 200 on /healthz (clone of the deployed instance)"


@dataclass(frozen=True)
class Deployed:
    """The deployed pair, by instance name, and the target URLs their samples are filed under
    (the stack outputs' `target`)."""

    container_name: str
    vm_name: str
    container_target: str
    vm_target: str


def deployed(
    container_name: str,
    vm_name: str,
    container_target: str | None = None,
    vm_target: str | None = None,
    virsh: Virsh | None = None,
    ssh_user: str = "twin",
    guest_ssh_port: int = 22,
) -> Deployed:
    """Fill in default targets: docker://NAME, and ssh://USER@127.0.0.1:PORT read from the
    domain's SSH forward (what the stack outputs as `target`)."""
    if vm_target is None:
        facts = parse_domain((virsh or Virsh()).running_domain_xml(vm_name))
        port = facts.host_port_for(guest_ssh_port)
        vm_target = f"ssh://{ssh_user}@127.0.0.1:{port}" if port else f"libvirt://{vm_name}"
    return Deployed(
        container_name, vm_name, container_target or f"docker://{container_name}", vm_target
    )


def _sample(
    metric: str,
    value: float | int,
    unit: str,
    target: str,
    variant: Variant,
    claim: str,
    tags: RunTags,
    **metadata: Value,
) -> Sample:
    return Sample(metric, value, unit, target, variant, (claim,), tags.metadata(**metadata))


# --- R1 -----------------------------------------------------------------------------------------


def measure_start_times(
    cloner: Cloner,
    target: str,
    tags: RunTags,
    repeats: int = DEFAULT_REPEATS,
    timeout_s: float | None = None,
    console: Console | None = None,
) -> list[Sample]:
    """`repeats` clones one after another; each timed from its create call to its first 200.

    The clone's storage (fresh volume / qcow2 overlay) is made before the clock starts, for
    both variants alike. Every clone is removed before the next starts, also on errors.
    """
    if repeats < 1:
        raise ResourceCheckError(f"repeats must be at least 1, got {repeats}")
    timeout = timeout_s or cloner.ready_timeout_s
    problem = kvm_device_problem() if cloner.variant == "vm" else None
    if problem:
        (console or Console(stderr=True)).print(f"[yellow]warning:[/yellow] {problem}")
    samples = []
    with progress(console) as bar:
        for repeat in range(1, repeats + 1):
            label = f"R1 {cloner.variant} {repeat}/{repeats}"
            clone, waited = _timed_clone(cloner, bar, label, timeout)
            samples.append(
                _sample(
                    "time_to_first_response_s",
                    round(waited, 4),
                    "s",
                    target,
                    cloner.variant,
                    "R1",
                    tags,
                    repeat=repeat,
                    clone=clone.name,
                    source=cloner.source_name,
                    definition=START_DEFINITION,
                    create_call_s=round(clone.create_call_s, 4),
                    storage_prepare_s=round(clone.storage_prepare_s, 4),
                    poll_interval_s=POLL_INTERVAL_S,
                    libvirt_reprobes_qemu=problem is not None,
                    load_avg_1m=round(os.getloadavg()[0], 2),
                )
            )
    return samples


def _timed_clone(
    cloner: Cloner, bar: Progress, label: str, timeout_s: float
) -> tuple[Clone, float]:
    """Start one clone, wait for its first 200, remove it; the seconds from its create call."""
    name = cloner.next_name()
    task = bar.add_task(f"{label}: creating {name}")

    def show(_elapsed: float, last: str) -> None:
        bar.update(task, description=f"{label}: {name} waiting for HTTP 200 ({last})")

    clone = cloner.start(name)
    try:
        waited = wait_for_http_200(clone.url, clone.created_at, timeout_s, show)
    finally:
        cloner.remove(clone)
    if waited.seconds is None:
        bar.update(task, description=f"{label}: {name} gave no HTTP 200 in {timeout_s:g} s")
        raise ReadinessTimeoutError(
            f"{cloner.variant} clone {name} of {cloner.source_name} gave no HTTP 200 within "
            f"{timeout_s:g} s (last: {waited.last_error}); see docker logs or "
            f"/var/log/libvirt/qemu/{name}.log, or raise the timeout"
        )
    bar.update(task, description=f"{label}: {name} answered HTTP 200 after {waited.seconds:.2f} s")
    return clone, waited.seconds


# --- R2 -----------------------------------------------------------------------------------------


def measure_footprint(
    pair: Deployed,
    tags: RunTags,
    window_s: float = IDLE_WINDOW_S,
    engine: DockerEngine | None = None,
    virsh: Virsh | None = None,
    console: Console | None = None,
) -> list[Sample]:
    """Memory charged to each instance and its CPU use over the same idle window (no load is
    sent; the container's health check keeps running, as deployed)."""
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
        bar.add_task(f"R2 idle CPU over {window_s:g} s (no load)", total=None)
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
        }
        samples.append(
            _sample(
                "memory_charged_mib",
                round(memory[variant].charged_mib, 3),
                "MiB",
                targets[variant],
                variant,
                "R2",
                tags,
                **memory[variant].metadata,
                **common,
            )
        )
        samples.append(
            _sample(
                "idle_cpu_percent",
                round(cpu_percent(cpu_s, elapsed), 3),
                "%",
                targets[variant],
                variant,
                "R2",
                tags,
                window_s=round(elapsed, 3),
                cpu_s=round(cpu_s, 4),
                method="cgroup cpuacct" if variant == "container" else "QEMU utime+stime",
                health_check_interval_s=health[variant],
                **common,
            )
        )
    return samples


# --- R3 -----------------------------------------------------------------------------------------


def vm_disk_sizes(facts: DomainFacts, virsh: Virsh) -> dict[str, float]:
    """MiB of the VM's base image (actual allocation and virtual size), kernel and initrd, and
    the instance's own overlay. The base is the bottom of the root disk's backing chain."""
    if not facts.disks:
        raise ResourceCheckError(f"domain {facts.name!r} has no disk")
    chain = disk_chain(virsh.disk_path(facts.disks[0]))
    base, overlay = chain[-1], chain[0]
    files = {"kernel": facts.kernel, "initrd": facts.initrd}
    sizes = {
        "base_actual_mib": base.actual_size_bytes / MIB,
        "base_virtual_mib": base.virtual_size_bytes / MIB,
        "overlay_actual_mib": overlay.actual_size_bytes / MIB if len(chain) > 1 else 0.0,
    }
    for key, path in files.items():
        sizes[f"{key}_mib"] = os.stat(path).st_size / MIB if path else 0.0
    return sizes


def measure_sizes(
    pair: Deployed,
    tags: RunTags,
    engine: DockerEngine | None = None,
    virsh: Virsh | None = None,
) -> list[Sample]:
    engine = engine or DockerEngine()
    virsh = virsh or Virsh()
    container = parse_container(engine.inspect_container(pair.container_name))
    image = engine.inspect_image(container.image_id)
    vm = parse_domain(virsh.running_domain_xml(pair.vm_name))
    disk = vm_disk_sizes(vm, virsh)
    vm_total = disk["base_actual_mib"] + disk["kernel_mib"] + disk["initrd_mib"]
    return [
        _sample(
            "image_size_mib",
            round(int(image["Size"]) / MIB, 3),
            "MiB",
            pair.container_target,
            "container",
            "R3",
            tags,
            what="container image (docker image inspect .Size)",
            image=",".join(image.get("RepoTags") or [container.image_id]),
            layers=len((image.get("RootFS") or {}).get("Layers") or []),
        ),
        _sample(
            "image_size_mib",
            round(vm_total, 3),
            "MiB",
            pair.vm_target,
            "vm",
            "R3",
            tags,
            what="VM base disk (qcow2 actual allocation) + kernel + initrd",
            **{key: round(value, 3) for key, value in disk.items()},
        ),
    ]


def cloners(
    pair: Deployed,
    stack: str | None = None,
    engine: DockerEngine | None = None,
    virsh: Virsh | None = None,
) -> tuple[ContainerCloner, VmCloner]:
    return (
        ContainerCloner(pair.container_name, stack, engine),
        VmCloner(pair.vm_name, stack, virsh),
    )


# --- all of them, and the command line ----------------------------------------------------------

CHECKS = ("r1", "r2", "r3", "r4")


def run_resource_checks(
    pair: Deployed,
    checks: tuple[str, ...] = CHECKS,
    stack: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    idle_window_s: float = IDLE_WINDOW_S,
    budget_mib: float = DEFAULT_BUDGET_MIB,
    run_id: str | None = None,
    console: Console | None = None,
) -> list[Sample]:
    """The chosen checks in a fixed order (R3, R2 before any clone runs; then R1, R4)."""
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ResourceCheckError(f"unknown checks {unknown}; choose from {list(CHECKS)}")
    engine, virsh = DockerEngine(), Virsh()
    vm = parse_domain(virsh.running_domain_xml(pair.vm_name))
    tags = run_tags(vm.virt_mode, run_id)
    samples: list[Sample] = []
    if "r3" in checks:
        samples += measure_sizes(pair, tags, engine, virsh)
    if "r2" in checks:
        samples += measure_footprint(pair, tags, idle_window_s, engine, virsh, console)
    if "r1" in checks or "r4" in checks:
        container_cloner, vm_cloner = cloners(pair, stack, engine, virsh)
        targets = ((container_cloner, pair.container_target), (vm_cloner, pair.vm_target))
        for cloner, target in targets:
            if "r1" in checks:
                samples += measure_start_times(cloner, target, tags, repeats, console=console)
        for cloner, target in targets:
            if "r4" in checks:
                samples += measure_density(cloner, target, tags, budget_mib, console=console)
    return samples


def print_samples(samples: list[Sample], console: Console) -> None:
    table = Table("claim", "variant", "metric", "value", "unit", "details")
    for sample in samples:
        keys = (
            "repeat",
            "window_s",
            "raw_usage_mib",
            "guest_ram_pss_mib",
            "tcg_code_cache_pss_mib",
            "base_virtual_mib",
            "attempted",
            "memory_charged_mib_mean",
            "slowest_ready_s",
        )
        details = ", ".join(f"{k}={sample.metadata[k]}" for k in keys if k in sample.metadata)
        table.add_row(
            ",".join(sample.claims),
            sample.variant,
            sample.metric,
            str(sample.value),
            sample.unit,
            details,
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.checks.resources",
        description="Resource checks R1-R4 on a deployed container and VM (run on their host).",
    )
    parser.add_argument("--container", help="deployed container name, e.g. twinlab-dev-app")
    parser.add_argument("--vm", help="deployed libvirt domain name, e.g. twinlab-dev-vm")
    parser.add_argument("--stack", help="stack name for clone names (default: from the names)")
    parser.add_argument("--checks", default=",".join(CHECKS), help="comma list of r1,r2,r3,r4")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="R1 repeats")
    parser.add_argument("--idle-window-s", type=float, default=IDLE_WINDOW_S, help="R2 window")
    parser.add_argument("--budget-mib", type=float, default=DEFAULT_BUDGET_MIB, help="R4 budget")
    parser.add_argument("--container-target", help="target URL to file container samples under")
    parser.add_argument("--vm-target", help="target URL to file VM samples under")
    parser.add_argument("--out", type=Path, help="write the samples as JSON Lines here")
    parser.add_argument("--sweep", metavar="STACK", help="only remove leftover clones of STACK")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.sweep:
            swept = remove_clones(args.sweep)
            for line in swept.removed or ["no leftover clones"]:
                console.print(f"removed {line}" if swept.removed else line)
            for line in swept.skipped:
                console.print(f"[yellow]skipped: {line}")
            return 1 if swept.skipped else 0
        if not args.container or not args.vm:
            parser.error("--container and --vm are required (or --sweep STACK)")
        pair = deployed(args.container, args.vm, args.container_target, args.vm_target)
        checks = tuple(c.strip().lower() for c in args.checks.split(",") if c.strip())
        samples = run_resource_checks(
            pair,
            checks,
            args.stack,
            args.repeats,
            args.idle_window_s,
            args.budget_mib,
            console=console,
        )
    except TwinlabError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        return 2
    # A table piped to a file would otherwise be cut to 80 columns.
    print_samples(samples, Console() if sys.stdout.isatty() else Console(width=160))
    if args.out:
        write_samples(args.out, samples)
        console.print(f"wrote {len(samples)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
