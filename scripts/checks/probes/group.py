"""The isolation check group: OS probes (A1 A2 U1), isolation and misconfiguration probes
(I1 I2 I3) on every target, a weakened control container, and the host-kernel attack surface."""

from __future__ import annotations

from collections.abc import Callable

from components.naming import resource_name
from scripts.checks.lifecycle import RunContext
from scripts.checks.probes import attack_surface, host_baseline, run_isolation, run_os_probes
from scripts.checks.probes.weakened import WEAKENED_METADATA, weakened_container
from scripts.checks.results.samples import Sample
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.target import Target, host_target, parse_target


def run(context: RunContext) -> list[Sample]:
    return _probes(context) + _attack_surface(context)


def _probes(context: RunContext) -> list[Sample]:
    subjects, options, console = context.subjects, context.options, context.console
    targets, weakened = context.targets, context.weakened
    samples: list[Sample] = []

    def started(target: Target, probe: str) -> None:
        console.print(f"  probe {target.url.split('?')[0]} {probe}")

    host = subjects.host  # the baseline, the weakened control and the tracer are there
    with host_baseline(host) as baseline:
        console.print("[bold]OS probes[/] (A1, A2, U1)")
        samples += run_os_probes(
            targets,
            run_id=context.run_id,
            virt_mode=context.virt_mode,
            baseline=baseline,
            on_probe=started,
        )
        console.print("[bold]isolation probes[/] (I1, I2, I3)")
        weak_metadata = {target.url: WEAKENED_METADATA for target in weakened}
        container = subjects.container()
        if not options.weakened or container is None or subjects.stack is None:
            return samples + run_isolation(
                [*targets, *weakened],
                run_id=context.run_id,
                virt_mode=context.virt_mode,
                baseline=baseline,
                target_metadata=weak_metadata,
                on_probe=started,
            )
        image = _container_image(container.target.removeprefix("docker://").split("?")[0], host)
        name = resource_name(subjects.stack, "weakened")
        with weakened_container(name, image, host) as weak:
            console.print(f"  weakened container {weak.name}: {weak.flags}")
            weak_target = parse_target(weak.target, container.parsed().label, container.host)
            samples += run_isolation(
                [*targets, *weakened, weak_target],
                run_id=context.run_id,
                virt_mode=context.virt_mode,
                baseline=baseline,
                target_metadata={
                    **weak_metadata,
                    weak.target: {**WEAKENED_METADATA, "weakening": weak.flags},
                },
                on_probe=started,
            )
    return samples


def _attack_surface(context: RunContext) -> list[Sample]:
    """Issue 11 item 4: the host kernel functions each variant's app requests reach (ftrace),
    or "not measurable on this host" with the reason. Needs the app URL and instance name."""
    host = context.subjects.host
    chosen = [
        attack_surface.Subject(
            target,
            _host_pids(target, subject.instance_name, host),
            subject.url + "/healthz",
            host,
        )
        for subject, target in zip(context.subjects.items, context.targets, strict=True)
        if subject.url is not None and subject.instance_name is not None
    ]
    if not chosen:
        return []
    context.console.print("[bold]host-kernel attack surface[/] (ftrace)")
    return attack_surface.attack_surface(host_target(host), chosen)


def _host_pids(target: Target, instance: str, host: HostHandle) -> Callable[[], list[int]]:
    if target.kind != "vm":  # a container or sandbox: the processes of its Docker container
        return lambda: attack_surface.container_pids(instance, host)
    return lambda: attack_surface.qemu_pids(instance, host)


def _container_image(container_name: str, host: HostHandle) -> str:
    done = host.docker(["inspect", "-f", "{{.Config.Image}}", container_name], timeout_s=30)
    return done.stdout.strip() or container_name
