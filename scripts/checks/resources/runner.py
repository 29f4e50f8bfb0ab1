"""Resource checks R1-R4 on deployed instances, and their command line.

    python -m scripts.checks.resources.runner --stack dev [--checks r1,r2,r3,r4] [--repeats 5] \\
        [--idle-window-s 10] [--budget-mib 1536] [--out results/resources.jsonl]
    python -m scripts.checks.resources.runner --instance container:twinlab-dev-app \\
        --instance vm:twinlab-dev-vm                     # instances named by hand: KIND:NAME
    python -m scripts.checks.resources.runner --sweep dev      # remove leftover clones of stack dev

- R1 start_time.py: clones of each deployed instance, create call to first HTTP 200, the
  repeats interleaved across the variants; with a VM deployed, also clones restored from its
  memory snapshot (restored_start.py, claim S1), and each sandbox's gVisor configuration
  (sandbox_runtime.py, claim G1).
- R2 usage.py: memory charged and CPU used, 5 readings over an idle window, all instances at
  once.
- R3 sizes.py: what each stores (container image; VM base disk + kernel + initrd).
- R4 density_budget.py: for the primary container and the primary VM, how many clones answer
  and stay healthy inside one memory budget the kernel enforces.

Each instance is read and cloned by the meter of its variant's kind (meters.py). Everything
reads the host's /proc, cgroups and image files, so it runs on the host that runs the
instances. Every check returns list[Sample].
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from components.errors import TwinlabError
from scripts.checks.resources import density_budget, restored_start, sandbox_runtime
from scripts.checks.resources.budget_cgroup import Kind
from scripts.checks.resources.clones import remove_clones
from scripts.checks.resources.density_budget import DensityEvent
from scripts.checks.resources.errors import ResourceCheckError
from scripts.checks.resources.meters import METERS, DomainMeter, Instance, Meter, meter_for
from scripts.checks.resources.sizes import measure_sizes
from scripts.checks.resources.start_time import DEFAULT_REPEATS, measure_start_times_interleaved
from scripts.checks.resources.usage import IDLE_WINDOW_S, SETTLE_S, measure_footprint
from scripts.checks.results.run_tags import RunTags, run_tags
from scripts.checks.results.samples import Sample, VariantLabel, write_samples
from scripts.checks.results.stats import MIN_N
from scripts.checks.targets.deployed import read_deployed
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.libvirt_domains import DEFAULT_URI, Virsh
from scripts.termination import run_main

__all__ = ["CHECKS", "Instance", "main", "run_resource_checks"]

CHECKS = ("r1", "r2", "r3", "r4")
DEFAULT_BUDGET_MIB = 1536.0
HAND_TARGETS = {"container": "docker://{name}", "vm": "libvirt://{name}"}


def run_resource_checks(
    instances: Sequence[Instance],
    checks: tuple[str, ...] = CHECKS,
    stack: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    idle_window_s: float = IDLE_WINDOW_S,
    budget_mib: float = DEFAULT_BUDGET_MIB,
    run_id: str | None = None,
    console: Console | None = None,
    docker_host: str | None = None,
    libvirt_uri: str = DEFAULT_URI,
    settle_s: float = SETTLE_S,
    virt_mode: str | None = None,
    density: DensityBounds | None = None,
    host: HostHandle | None = None,
) -> list[Sample]:
    """The chosen checks in a fixed order (R3, R2 before any clone runs; then R1 over every
    instance, R4 over the primary container and the primary VM). With a stack's `host`, every
    reading, clone and budget is made there (over its SSH when remote)."""
    density = density or DensityBounds()
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ResourceCheckError(f"unknown checks {unknown}; choose from {list(CHECKS)}")
    if density.repeats < 1:
        raise ResourceCheckError(
            f"R4 density repeats {density.repeats}: give at least 1 run per kind"
        )
    if host is not None:
        engine, virsh = DockerEngine(host), Virsh(host)
    else:
        engine, virsh = DockerEngine(docker_host), Virsh(libvirt_uri)
    meters = [meter_for(instance, engine, virsh) for instance in instances]
    domains = [meter for meter in meters if isinstance(meter, DomainMeter)]
    tags = run_tags(virt_mode or (domains[0].facts.virt_mode if domains else "n/a"), run_id)
    samples: list[Sample] = []
    if "r3" in checks:
        samples += measure_sizes(meters, tags)
    if "r2" in checks:
        samples += measure_footprint(meters, tags, idle_window_s, console, settle_s=settle_s)
    if "r1" in checks:
        cloners, no_restore = restored_start.r1_cloners(meters, stack, virsh)
        if no_restore is not None:
            (console or Console(stderr=True)).print(f"[yellow]R1/S1:[/] {no_restore.reason}")
            samples.append(restored_start.unavailable_sample(no_restore, tags))
        samples += measure_start_times_interleaved(cloners, tags, repeats, console=console)
        samples += sandbox_runtime.runtime_samples(meters, engine, tags)
    if "r4" in checks:
        for repeat, meter in density_schedule(meters, density.repeats):
            which = f" (run {repeat}/{density.repeats})" if density.repeats > 1 else ""
            run = measure_density(meter, stack, tags, budget_mib, density, console, host, which)
            samples += [with_repeat(sample, repeat, density.repeats) for sample in run]
    return samples


def density_schedule(meters: Sequence[Meter], repeats: int) -> list[tuple[int, Meter]]:
    """(repeat, meter) in the order R4 runs them: the primary container's and the primary
    VM's runs interleaved, so a slow hour of the host falls on both kinds alike."""
    chosen = primary_meters(meters)
    return [(repeat, meter) for repeat in range(1, repeats + 1) for meter in chosen]


def with_repeat(sample: Sample, repeat: int, repeats: int) -> Sample:
    """A density run's sample, marked with which of the kind's runs it came from."""
    return dataclasses.replace(
        sample, metadata={**sample.metadata, "repeat": repeat, "repeats": repeats}
    )


@dataclass(frozen=True)
class DensityBounds:
    """How long and how far an R4 run of one kind may go (density_budget.run's bounds)."""

    wall_clock_s: float = 300.0
    # None: density_budget's default (96), past what a 1536 MiB budget holds, so the kernel
    # ends the run (measured: 24 containers start in 11 s). A lower cap makes the count a lower
    # bound, which the claim's verdict says.
    max_containers: int | None = None
    # Under TCG a VM answers in 8-20 s on a quiet host; one that needs more than this inside
    # a full budget did not fit.
    vm_ready_deadline_s: float = 90.0
    # How long the survivors must stay healthy after the last start (density_budget.HOLD_S).
    hold_s: float = density_budget.HOLD_S
    # Density runs per kind, interleaved (container, VM, container, ...). Each fills a whole
    # budget (a container and a VM run together about 175 s under TCG: the resource group took
    # 249 s with one pair, 944 s with five): `fab run-all` makes one per kind to stay under
    # 10 min and R4 judges that one with a margin; `fab resources` makes DENSITY_REPEATS, and
    # R4 then judges the ratio's CI like every other claim.
    repeats: int = 1


DENSITY_REPEATS = MIN_N  # the fewest a CI is computed from


def primary_meters(meters: Sequence[Meter]) -> list[Meter]:
    """The meter of the primary container and of the primary VM (named like the kind, else the
    first of it): R4 compares kinds, each run fills a whole budget, so one run per kind."""
    chosen = []
    for kind in ("container", "vm"):
        of_kind = [m for m in meters if m.instance.label.kind == kind]
        named = [m for m in of_kind if m.instance.label.name == kind]
        if named or of_kind:
            chosen.append((named or of_kind)[0])
    return chosen


def measure_density(
    meter: Meter,
    stack: str | None,
    tags: RunTags,
    budget_mib: float,
    bounds: DensityBounds,
    console: Console | None,
    host: HostHandle | None = None,
    which: str = "",
) -> list[Sample]:
    """R4 for one deployed instance: density_budget.run in a kernel-enforced budget."""
    instance = meter.instance
    kind: Kind = "vm" if instance.label.kind == "vm" else "container"
    out = console or Console(stderr=True)
    out.print(f"  R4 {instance.label.name}{which}: instances in a {budget_mib:g} MiB budget")

    def show(event: DensityEvent) -> None:
        if event.kind in ("ready", "no_answer", "start_failed", "oom_kill", "lost", "done"):
            where = f"#{event.index} " if event.index else ""
            out.print(f"    {event.elapsed_s:5.0f} s {where}{event.kind}: {event.message}")

    result = density_budget.run(
        kind,
        instance.name,
        budget_mib,
        stack=stack,
        max_instances=bounds.max_containers if kind == "container" else None,
        wall_clock_s=bounds.wall_clock_s,
        ready_deadline_s=bounds.vm_ready_deadline_s if kind == "vm" else None,
        hold_s=bounds.hold_s,
        on_event=show,
        host=host,
    )
    if result.leftovers:
        raise ResourceCheckError(
            f"R4 {instance.label.name}: not removed: {'; '.join(result.leftovers)}; run "
            f"`python -m scripts.checks.resources.density_budget --leftovers {stack} --remove`"
        )
    return result.samples(instance.target, tags, instance.label)


def hand_instance(spec: str) -> Instance:
    """KIND:NAME, e.g. vm:twinlab-dev-vm: an instance named by hand (variant name = kind)."""
    kind, sep, name = spec.partition(":")
    if not sep or not name or kind not in METERS:
        raise ResourceCheckError(
            f"--instance {spec!r}: expected KIND:NAME with KIND one of {sorted(METERS)}"
        )
    target = HAND_TARGETS.get(kind, "{name}").format(name=name)
    return Instance(VariantLabel(kind, kind), name, target)


def stack_instances(stack: str) -> tuple[list[Instance], HostHandle | None]:
    """The stack's instances and their host (None when they are on several: not one run)."""
    deployed = read_deployed(stack)
    instances = [
        Instance(VariantLabel(v.name, v.kind), v.instance_name, v.target) for v in deployed.variants
    ]
    hosts = {v.host for v in deployed.variants}
    return instances, deployed.host_of(deployed.variants[0]) if len(hosts) == 1 else None


def print_samples(samples: list[Sample], console: Console) -> None:
    table = Table("claim", "variant", "metric", "value", "unit", "details")
    for sample in samples:
        keys = (
            "repeat",
            "window_s",
            "raw_usage_mib",
            "guest_ram_pss_mib",
            "tcg_cache_pss_mib",
            "base_virtual_mib",
            "reading",
            "stop_reason",
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
        prog="python -m scripts.checks.resources.runner",
        description="Resource checks R1-R4 on deployed instances (run on their host).",
    )
    parser.add_argument("--stack", help="measure every variant of this deployed stack")
    parser.add_argument(
        "--instance",
        action="append",
        default=[],
        help="KIND:NAME of an instance named by hand (repeatable), e.g. vm:twinlab-dev-vm",
    )
    parser.add_argument("--checks", default=",".join(CHECKS), help="comma list of r1,r2,r3,r4")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="R1 repeats")
    parser.add_argument("--idle-window-s", type=float, default=IDLE_WINDOW_S, help="R2 window")
    parser.add_argument(
        "--settle-s", type=float, default=SETTLE_S, help="R2 quiet time before the window"
    )
    parser.add_argument("--budget-mib", type=float, default=DEFAULT_BUDGET_MIB, help="R4 budget")
    parser.add_argument(
        "--density-repeats",
        type=int,
        default=1,
        help=f"R4 runs per kind (n >= 5 gives a CI; fab resources makes {DENSITY_REPEATS})",
    )
    parser.add_argument("--out", type=Path, help="write the samples as JSON Lines here")
    parser.add_argument("--docker-host", help="Docker daemon (default: DOCKER_HOST or local)")
    parser.add_argument("--libvirt-uri", default=DEFAULT_URI, help="libvirt connection URI")
    parser.add_argument("--sweep", metavar="STACK", help="only remove leftover clones of STACK")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.sweep:
            swept = remove_clones(
                args.sweep, DockerEngine(args.docker_host), Virsh(args.libvirt_uri)
            )
            for line in swept.removed or ["no leftover clones"]:
                console.print(f"removed {line}" if swept.removed else line)
            for line in swept.skipped:
                console.print(f"[yellow]skipped: {line}")
            return 1 if swept.skipped else 0
        if bool(args.stack) == bool(args.instance):
            parser.error("give --stack STACK or --instance KIND:NAME ... (or --sweep STACK)")
        host = None
        if args.stack:
            instances, host = stack_instances(args.stack)
        else:
            instances = [hand_instance(spec) for spec in args.instance]
        checks = tuple(c.strip().lower() for c in args.checks.split(",") if c.strip())
        samples = run_resource_checks(
            instances,
            checks,
            args.stack,
            args.repeats,
            args.idle_window_s,
            args.budget_mib,
            console=console,
            docker_host=args.docker_host,
            libvirt_uri=args.libvirt_uri,
            settle_s=args.settle_s,
            density=DensityBounds(repeats=args.density_repeats),
            host=host,
        )
    except TwinlabError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        return 2
    # A table piped to a file would otherwise be cut to 80 columns.
    print_samples(samples, Console() if sys.stdout.isatty() else Console(width=160))
    if args.out:
        write_samples(args.out, samples)
        console.print(f"wrote {len(samples)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
