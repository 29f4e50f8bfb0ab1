"""R1: how long an instance takes from its create call to its first HTTP 200, and its stages.

Measured on clones of the deployed instance (clones.py), one after another, each removed before
the next starts; with several variants the repeats are interleaved (container, VM, container,
...). The clone's storage (fresh volume / qcow2 overlay) is made before the clock
starts, for both variants alike.

The poller is not the observer of "listening": it sends its first request only once the app's
own listening mark has appeared (start_watch.py reads it passively from the container's log
stream or the VM's serial console), so no request goes through docker-proxy or QEMU's user
network while the instance's network is still being set up (polling then was seen to move a
container's first 200 from ~0.6 s to ~1.15 s). First 200 thus includes the mark's way to the
host (a log stream; a console line), the gunicorn worker's accept and one request. An instance
without marks (a restored VM already listens) is polled from the create call, and its samples
say so. Each stage is a sample `start_stage_s` (seconds since the create call, metadata stage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress

from components.http_wait import POLL_INTERVAL_S, wait_for_http_200
from scripts.checks.resources.clones import Clone, Cloner
from scripts.checks.resources.errors import ReadinessTimeoutError, ResourceCheckError
from scripts.checks.resources.start_watch import CONTAINER_STAGES, VM_STAGES
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample
from scripts.checks.targets.http_wait import progress
from scripts.checks.targets.libvirt_domains import kvm_device_problem

# The measurement standard's n >= 5 (stats.MIN_N): fewer gives an inconclusive verdict.
DEFAULT_REPEATS = 5
START_DEFINITION = (
    "create call to first HTTP 200 on /healthz (clone of the deployed instance); polled from "
    "the app's own listening mark on"
)
STAGE_DEFINITION = "seconds from the create call to the stage (start_watch.py)"
POLL_FROM_MARK = "the app's listening mark"
POLL_FROM_CREATE = "the create call (no listening mark from this instance)"


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
                start = _timed_clone(cloner, bar, label, timeout)
                common = {
                    "repeat": repeat,
                    "order": "interleaved" if len(cloners) > 1 else "sequential",
                    "clone": start.clone.name,
                    "source": cloner.source_name,
                    "start_method": cloner.start_method,
                    "load_avg_1m": round(cloner.host.load_avg_1m(), 2),
                }
                samples.append(
                    tags.sample(
                        "time_to_first_response_s",
                        round(start.first_200_s, 4),
                        "s",
                        target,
                        cloner.label,
                        "R1",
                        **common,
                        definition=START_DEFINITION,
                        create_call_s=round(start.clone.create_call_s, 4),
                        storage_prepare_s=round(start.clone.storage_prepare_s, 4),
                        poll_interval_s=POLL_INTERVAL_S,
                        poll_started_at=POLL_FROM_MARK
                        if start.polled_from_mark
                        else POLL_FROM_CREATE,
                        libvirt_reprobes_qemu=problems[id(cloner)] is not None,
                    )
                )
                samples += [
                    tags.sample(
                        "start_stage_s",
                        round(seconds, 4),
                        "s",
                        target,
                        cloner.label,
                        "R1",
                        **common,
                        stage=stage,
                        stage_index=index,
                        definition=STAGE_DEFINITION,
                    )
                    for index, (stage, seconds) in enumerate(start.stages.items())
                ]
    return samples


@dataclass(frozen=True)
class TimedStart:
    clone: Clone
    first_200_s: float
    polled_from_mark: bool
    stages: dict[str, float]  # stage -> seconds since the create call, in stage order


def ordered_stages(kind: str, seen: dict[str, float], first_200_s: float) -> dict[str, float]:
    """The stages seen, in the order of the kind's stage list, first_200 last."""
    order = VM_STAGES if kind == "vm" else CONTAINER_STAGES
    found = {**seen, "first_200": first_200_s}
    return {stage: found[stage] for stage in order if stage in found}


def _timed_clone(cloner: Cloner, bar: Progress, label: str, timeout_s: float) -> TimedStart:
    """Start one clone, wait for its listening mark, then for its first 200, remove it."""
    name = cloner.next_name()
    task = bar.add_task(f"{label}: creating {name}")

    def show(_elapsed: float, last: str) -> None:
        bar.update(task, description=f"{label}: {name} waiting for HTTP 200 ({last})")

    clone = cloner.start(name)
    try:
        watch = clone.watch
        if watch.has_listening_mark:
            bar.update(task, description=f"{label}: {name} waiting for the app's listening mark")
            if watch.wait_listening(clone.created_at + timeout_s) is None:
                raise ReadinessTimeoutError(
                    f"{cloner.variant} clone {name} of {cloner.source_name} wrote no listening "
                    f"mark within {timeout_s:g} s (the app's when_ready line, "
                    "workloads/app/gunicorn_conf.py); the clone was removed: check the deployed "
                    f"{cloner.source_name} (docker logs / virsh console), or raise the timeout"
                )
        with cloner.host.reach(clone.url) as url:
            waited = wait_for_http_200(url, clone.created_at, timeout_s, show)
        stages = watch.stages() if waited.seconds is not None else {}
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
    return TimedStart(
        clone,
        waited.seconds,
        watch.has_listening_mark,
        ordered_stages(cloner.kind, stages, waited.seconds),
    )
