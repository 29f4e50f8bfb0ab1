"""One comparison run: every check against every deployed variant, then verdicts and the report.

Fabric tasks (fabfile.py) and the claim tests call `run_checks`; they only choose options and
print. Targets and their variants come from the stack's outputs (`read_deployed`), or are named
by hand (then their variant is given, or guessed from the URL scheme and labelled as a guess).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from components.errors import TwinlabError
from components.naming import resource_name
from components.thresholds import DEFAULTS as THRESHOLD_DEFAULTS
from components.thresholds import Thresholds
from components.virt_mode import load_record
from scripts.checks.claims import evaluate
from scripts.checks.load.closed_loop import HttpTarget, LoadPlan, run_load
from scripts.checks.load.latency import REPEATS as OPEN_LOOP_REPEATS
from scripts.checks.load.latency import Server, measure_latency
from scripts.checks.probes import attack_surface, host_baseline, run_isolation, run_os_probes
from scripts.checks.probes.weakened import WEAKENED_METADATA, weakened_container
from scripts.checks.resources.errors import InstanceNotFoundError
from scripts.checks.resources.meters import Instance
from scripts.checks.resources.runner import CHECKS as RESOURCE_CHECKS
from scripts.checks.resources.runner import DEFAULT_BUDGET_MIB, DensityBounds, run_resource_checks
from scripts.checks.resources.start_time import DEFAULT_REPEATS as DEFAULT_START_REPEATS
from scripts.checks.results.report import write_run
from scripts.checks.results.run_tags import new_run_id
from scripts.checks.results.samples import Sample, VariantLabel
from scripts.checks.results.verdicts import ClaimResult
from scripts.checks.targets.deployed import ROOT, DeployedStack
from scripts.checks.targets.host import HostHandle, local_host
from scripts.checks.targets.libvirt_domains import Virsh
from scripts.checks.targets.target import DockerTarget, Target, host_target, parse_target

CHECK_GROUPS = ("isolation", "load", "resources")
# n >= 5 per figure (stats.MIN_N); runs of 3 s keep a full run under 10 minutes on 2 cores
# under TCG (3 endpoints x 5 repeats x each variant).
RUN_ALL_LOAD = LoadPlan(duration_s=3, warmup_s=1, repeats=5)


@dataclass(frozen=True)
class RunOptions:
    groups: tuple[str, ...] = CHECK_GROUPS
    load_plan: LoadPlan = RUN_ALL_LOAD
    open_loop_repeats: int = OPEN_LOOP_REPEATS  # P1 latency at one rate, after the wrk runs
    resource_checks: tuple[str, ...] = RESOURCE_CHECKS
    start_repeats: int = DEFAULT_START_REPEATS  # R1, interleaved across the variants
    idle_window_s: float = 10.0
    density_budget_mib: float = DEFAULT_BUDGET_MIB  # R4: one kernel-enforced budget per kind
    density: DensityBounds = field(default_factory=DensityBounds)
    weakened: bool = True
    thresholds: Thresholds | None = None  # None: the stack's, else the mode's defaults
    results_dir: Path = field(default_factory=lambda: ROOT / "results")


# A short run in which every claim still gets its figures, with fewer repeats (n = 3: verdicts
# that need n >= 5 say inconclusive) and bounded R4 runs (counts are lower bounds): for
# `fab run-all --quick` and the "nothing local" test's time budget.
QUICK_REPEATS = 3
QUICK_RUN = RunOptions(
    load_plan=LoadPlan(duration_s=1, warmup_s=0, repeats=QUICK_REPEATS),
    open_loop_repeats=QUICK_REPEATS,
    start_repeats=QUICK_REPEATS,
    idle_window_s=5.0,
    density_budget_mib=1024.0,
    density=DensityBounds(
        wall_clock_s=75.0, max_containers=3, vm_ready_deadline_s=30.0, hold_s=10.0
    ),
)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    samples: list[Sample]
    results: list[ClaimResult]


@dataclass(frozen=True)
class Subject:
    """One thing to check: a target URL, its variant (None: named by hand, kind guessed from
    the URL), its app URL (for load) and, for resource checks, its container or domain name on
    this host."""

    target: str
    url: str | None = None
    instance_name: str | None = None
    label: VariantLabel | None = None
    host: HostHandle | None = None  # from the stack: where it runs (None: named by hand)

    def parsed(self) -> Target:
        return parse_target(self.target, self.label, self.host)


@dataclass(frozen=True)
class Subjects:
    items: tuple[Subject, ...]
    stack: str | None = None
    app_version: str = "?"
    virt_mode: str | None = None
    weakened_targets: tuple[str, ...] = ()
    thresholds: Thresholds | None = None

    @classmethod
    def of_stack(cls, deployed: DeployedStack) -> Subjects:
        return cls(
            tuple(
                Subject(
                    v.target,
                    v.url,
                    v.instance_name,
                    VariantLabel(v.name, v.kind),
                    deployed.host_of(v),
                )
                for v in deployed.variants
            ),
            stack=deployed.stack,
            app_version=deployed.app_version,
            virt_mode=deployed.virt_mode,
            thresholds=deployed.thresholds,
        )

    @property
    def host(self) -> HostHandle:
        """The host the subjects run on (one per run; this machine for targets named by
        hand). Every check reaches it through this handle."""
        hosts = {id(s.host): s.host for s in self.items if s.host is not None}
        if len(hosts) > 1:
            raise TwinlabError("one run checks the variants of one host; run each host apart")
        return next(iter(hosts.values()), None) or local_host()

    def container(self) -> Subject | None:
        """The primary container-kind subject: named like its kind, else the first."""
        containers = [s for s in self.items if s.parsed().kind == "container"]
        named = [s for s in containers if s.label is not None and s.label.name == "container"]
        chosen = named or containers
        return chosen[0] if chosen else None


def _virt_mode(subjects: Subjects) -> str:
    if subjects.virt_mode in ("kvm", "tcg"):
        return subjects.virt_mode
    record = load_record()
    return record.mode if record else "tcg"


def run_checks(
    subjects: Subjects,
    options: RunOptions,
    console: Console | None = None,
) -> RunOutcome:
    """Run the chosen check groups against the subjects and write the run directory."""
    console = console or Console(stderr=True)
    require_instances(subjects)
    run_id = new_run_id()
    virt_mode = _virt_mode(subjects)
    samples: list[Sample] = []
    targets = [subject.parsed() for subject in subjects.items]
    container = subjects.container()
    # A container weakened by hand is filed under the container variant it weakens.
    weak_label = container.parsed().label if container is not None else None
    weakened = [parse_target(url, weak_label) for url in subjects.weakened_targets]
    try:
        if "isolation" in options.groups:
            samples += _isolation(subjects, targets, weakened, run_id, virt_mode, options, console)
            samples += _attack_surface(subjects, targets, console)
        if "load" in options.groups:
            samples += _load(subjects, targets, run_id, virt_mode, options, console)
        if "resources" in options.groups:
            samples += _resources(subjects, run_id, options, console)
    finally:
        for target in [*targets, *weakened]:
            target.close()
    thresholds = (
        options.thresholds
        or subjects.thresholds
        or THRESHOLD_DEFAULTS["kvm" if virt_mode == "kvm" else "tcg"]
    )
    results = evaluate(samples, thresholds)
    metadata = {
        "run_id": run_id,
        "virt_mode": virt_mode,
        "host_kernel": platform.release(),
        "app_version": subjects.app_version,
        "stack": subjects.stack or "(targets named by hand)",
        "groups": ",".join(options.groups),
        "variants": ",".join(f"{t.variant}:{t.kind}" for t in targets),
    }
    run_dir = write_run(options.results_dir / run_id, samples, results, metadata)
    _link_latest(run_dir)
    return RunOutcome(run_dir, samples, results)


class InstanceMissingError(TwinlabError):
    """A stack's container or domain was removed or stopped outside Pulumi (drift)."""


def require_instances(subjects: Subjects) -> None:
    """Name a stack's container or domain that is gone behind Pulumi's back (drift), and the
    way back, before the probes fail on an unreachable target with a vaguer message."""
    if subjects.stack is None:
        return
    gone = [f"{what} ({where})" for what, where in _drifted(subjects)]
    if gone:
        stack = subjects.stack
        raise InstanceMissingError(
            f"stack {stack}: {'; '.join(gone)}, changed outside Pulumi; run "
            f"`pulumi refresh --stack {stack}` then `pulumi up --stack {stack}` to recreate it"
        )


def _drifted(subjects: Subjects) -> Iterator[tuple[str, str]]:
    for subject in subjects.items:
        name, where = subject.instance_name, subject.target.split("?")[0]
        if not name:
            continue
        target = subject.parsed()
        host = subject.host or local_host()
        if isinstance(target, DockerTarget):
            done = host.docker(["inspect", "--type", "container", "-f", "{{.Id}}", name])
            if done.returncode != 0 and "No such container" in done.stderr:
                yield f"container {name!r} no longer exists", where
            continue
        try:
            state = "is " + Virsh(host).domain_state(name)
        except InstanceNotFoundError:
            state = "no longer exists"
        except TwinlabError:
            continue  # libvirtd unreachable: the probes report that themselves
        if state != "is running":
            yield f"libvirt domain {name!r} {state}", where


def _load(
    subjects: Subjects,
    targets: Sequence[Target],
    run_id: str,
    virt_mode: str,
    options: RunOptions,
    console: Console,
) -> list[Sample]:
    https = [
        HttpTarget.of(target, subject.url)
        for target, subject in zip(targets, subjects.items, strict=True)
        if subject.url
    ]
    if not https:
        raise TwinlabError("load: no target has an app URL (give --http with --target)")
    console.print(f"[bold]load[/] (P1): {options.load_plan}")
    closed = run_load(
        https,
        options.load_plan,
        run_id=run_id,
        virt_mode=virt_mode,
        host=subjects.host,
        on_run=lambda http, endpoint, repeat: console.print(
            f"  wrk {http.variant} {endpoint} " + ("warm-up" if repeat < 0 else f"run {repeat + 1}")
        ),
    )
    console.print("[bold]latency[/] (P1): open loop (vegeta) at one rate for every variant")
    servers = [
        Server(http, subject.instance_name)
        for http, subject in zip(https, [s for s in subjects.items if s.url], strict=True)
    ]
    opened = measure_latency(
        servers,
        closed,
        run_id=run_id,
        virt_mode=virt_mode,
        repeats=options.open_loop_repeats,
        on_run=lambda http, rate, repeat: console.print(
            f"  vegeta {http.variant} {rate} req/s run {repeat + 1}"
        ),
        host=subjects.host,
    )
    for sample in opened:
        if sample.metric == "open_loop_unavailable":
            console.print(f"  [yellow]no open-loop run for {sample.variant}:[/] {sample.value}")
    return closed + opened


def _resources(
    subjects: Subjects, run_id: str, options: RunOptions, console: Console
) -> list[Sample]:
    instances = [
        Instance(s.label, s.instance_name, s.target)
        for s in subjects.items
        if s.instance_name and s.label is not None
    ]
    if not instances:
        raise TwinlabError(
            "resource checks need the deployed instances by name: run them on a stack "
            "(--stack) rather than on targets named by hand"
        )
    console.print("[bold]resources[/] (R1-R4): " + ", ".join(i.label.name for i in instances))
    return run_resource_checks(
        instances,
        options.resource_checks,
        stack=subjects.stack,
        repeats=options.start_repeats,
        idle_window_s=options.idle_window_s,
        budget_mib=options.density_budget_mib,
        density=options.density,
        run_id=run_id,
        console=console,
        virt_mode=_virt_mode(subjects),
        host=subjects.host,
    )


def _isolation(
    subjects: Subjects,
    targets: Sequence[Target],
    weakened: Sequence[Target],
    run_id: str,
    virt_mode: str,
    options: RunOptions,
    console: Console,
) -> list[Sample]:
    samples: list[Sample] = []

    def started(target: Target, probe: str) -> None:
        console.print(f"  probe {target.url.split('?')[0]} {probe}")

    with host_baseline(subjects.host) as baseline:
        console.print("[bold]OS probes[/] (A1, A2, U1)")
        samples += run_os_probes(
            targets, run_id=run_id, virt_mode=virt_mode, baseline=baseline, on_probe=started
        )
        console.print("[bold]isolation probes[/] (I1, I2, I3)")
        weak_metadata = {target.url: WEAKENED_METADATA for target in weakened}
        container = subjects.container()
        if not options.weakened or container is None or subjects.stack is None:
            return samples + run_isolation(
                [*targets, *weakened],
                run_id=run_id,
                virt_mode=virt_mode,
                baseline=baseline,
                target_metadata=weak_metadata,
                on_probe=started,
            )
        host = subjects.host
        image = _container_image(container.target.removeprefix("docker://").split("?")[0], host)
        name = resource_name(subjects.stack, "weakened")
        with weakened_container(name, image, host) as weak:
            console.print(f"  weakened container {weak.name}: {weak.flags}")
            weak_target = parse_target(weak.target, container.parsed().label, container.host)
            samples += run_isolation(
                [*targets, *weakened, weak_target],
                run_id=run_id,
                virt_mode=virt_mode,
                baseline=baseline,
                target_metadata={**weak_metadata, weak.target: WEAKENED_METADATA},
                on_probe=started,
            )
    return samples


def _attack_surface(
    subjects: Subjects, targets: Sequence[Target], console: Console
) -> list[Sample]:
    """Issue 11 item 4: the host kernel functions each variant's app requests reach (ftrace),
    or "not measurable on this host" with the reason. Needs the app URL and instance name."""
    host = subjects.host
    chosen = [
        attack_surface.Subject(
            target,
            _host_pids(target, subject.instance_name, host),
            subject.url + "/healthz",
            host,
        )
        for subject, target in zip(subjects.items, targets, strict=True)
        if subject.url is not None and subject.instance_name is not None
    ]
    if not chosen:
        return []
    console.print("[bold]host-kernel attack surface[/] (ftrace)")
    return attack_surface.attack_surface(host_target(host), chosen)


def _host_pids(target: Target, instance: str, host: HostHandle) -> Callable[[], list[int]]:
    if target.kind != "vm":  # a container or sandbox: the processes of its Docker container
        return lambda: attack_surface.container_pids(instance, host)
    return lambda: attack_surface.qemu_pids(instance, host)


def _container_image(container_name: str, host: HostHandle) -> str:
    done = host.docker(["inspect", "-f", "{{.Config.Image}}", container_name], timeout_s=30)
    return done.stdout.strip() or container_name


def _link_latest(run_dir: Path) -> None:
    """results/latest -> the newest run, replaced atomically."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)
