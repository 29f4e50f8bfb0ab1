"""R1: how long an instance takes from its create call to its first HTTP 200.

Measured on clones of the deployed instance (clones.py), one after another, each removed before
the next starts; with several variants the repeats are interleaved (container, VM, container,
...). The clone's storage (fresh volume / qcow2 overlay) is made before the clock
starts, for both variants alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import Progress

from components.http_wait import POLL_INTERVAL_S, wait_for_http_200
from scripts.checks.resources.clones import Clone, Cloner
from scripts.checks.resources.errors import ReadinessTimeoutError, ResourceCheckError
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample
from scripts.checks.targets.http_wait import progress
from scripts.checks.targets.libvirt_domains import kvm_device_problem

# The measurement standard's n >= 5 (stats.MIN_N): fewer gives an inconclusive verdict.
DEFAULT_REPEATS = 5
START_DEFINITION = "create call to first HTTP 200 on /healthz (clone of the deployed instance)"


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
    return measure_start_times_interleaved([(cloner, target)], tags, repeats, timeout_s, console)


def measure_start_times_interleaved(
    cloners: Sequence[tuple[Cloner, str]],
    tags: RunTags,
    repeats: int = DEFAULT_REPEATS,
    timeout_s: float | None = None,
    console: Console | None = None,
) -> list[Sample]:
    """`repeats` starts of every (cloner, target), interleaved: container, VM, container, VM,
    ..., so a drift of the machine's load touches every variant alike. One clone at a time,
    each removed before the next starts, also on errors."""
    if repeats < 1:
        raise ResourceCheckError(f"repeats must be at least 1, got {repeats}")
    problems = {
        id(cloner): kvm_device_problem() if cloner.kind == "vm" and cloner.host.is_local else None
        for cloner, _ in cloners
    }
    for problem in sorted({p for p in problems.values() if p}):
        (console or Console(stderr=True)).print(f"[yellow]warning:[/yellow] {problem}")
    samples = []
    with progress(console) as bar:
        for repeat in range(1, repeats + 1):
            for cloner, target in cloners:
                label = f"R1 {cloner.variant} {repeat}/{repeats}"
                timeout = timeout_s or cloner.ready_timeout_s
                clone, waited = _timed_clone(cloner, bar, label, timeout)
                samples.append(
                    tags.sample(
                        "time_to_first_response_s",
                        round(waited, 4),
                        "s",
                        target,
                        cloner.label,
                        "R1",
                        repeat=repeat,
                        order="interleaved" if len(cloners) > 1 else "sequential",
                        clone=clone.name,
                        source=cloner.source_name,
                        definition=START_DEFINITION,
                        create_call_s=round(clone.create_call_s, 4),
                        storage_prepare_s=round(clone.storage_prepare_s, 4),
                        poll_interval_s=POLL_INTERVAL_S,
                        libvirt_reprobes_qemu=problems[id(cloner)] is not None,
                        load_avg_1m=round(cloner.host.load_avg_1m(), 2),
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
        with cloner.host.reach(clone.url) as url:
            waited = wait_for_http_200(url, clone.created_at, timeout_s, show)
    finally:
        cloner.remove(clone)
    if waited.seconds is None:
        bar.update(task, description=f"{label}: {name} gave no HTTP 200 in {timeout_s:g} s")
        raise ReadinessTimeoutError(
            f"{cloner.variant} clone {name} of {cloner.source_name} gave no HTTP 200 within "
            f"{timeout_s:g} s (last: {waited.last_error}); the clone was removed: check the "
            f"deployed {cloner.source_name} (docker logs / virsh console), or raise the timeout"
        )
    bar.update(task, description=f"{label}: {name} answered HTTP 200 after {waited.seconds:.2f} s")
    return clone, waited.seconds
