"""R4 measured: how many instances of one variant answer and stay healthy inside one memory
budget the kernel enforces.

    python -m scripts.checks.resources.density_budget --kind container --source twinlab-dev-app \\
        --budget-mib 1536 [--max-instances 48] [--wall-clock-s 600] [--out r4.jsonl]
    python -m scripts.checks.resources.density_budget --leftovers dev [--remove]

A budget cgroup with the budget as its memory limit is made (budget_cgroup.py): Docker's
cgroup parent for containers, a libvirt resource partition for VMs. Clones of the deployed
instance (clones.py: same image or base disk, same memory limit and cpuset; own ports, own
volume or overlay) are started in it one after another. The run stops when a new instance
does not start or gives no HTTP 200 within its deadline, when an earlier one is OOM-killed,
exits or stops answering, at the max instance count, or when another start could pass the
wall-clock bound. After a stop the kernel caused, the instance started last did not fit and
is removed. The figure is how many of the others answered and stayed healthy (answering, no
OOM kill in them) through a hold of 30 s after the last start. Per instance: create call to
first 200, and the budget's memory charge (cgroup usage, page cache included: what the kernel
holds against the limit) once it answered: the curve. Everything is removed afterwards,
whatever happens.

`run()` is the API; `Tally` holds the stop rule and the count (pure: driven by events, so the
unit tests replay synthetic sequences through it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.table import Table

from components.errors import TwinlabError
from components.http_wait import wait_for_http_200
from components.naming import clone_prefix
from scripts.checks.parsers import domain_xml
from scripts.checks.parsers.proc_resources import MIB, meminfo_available_mib
from scripts.checks.resources import budget_cgroup
from scripts.checks.resources.budget_cgroup import (
    CGROUP_ROOT,
    BudgetCgroup,
    Kind,
    OomKill,
    open_kernel_log,
)
from scripts.checks.resources.clones import (
    CONTAINER_READY_TIMEOUT_S,
    VM_READY_TIMEOUT_S,
    Clone,
    Cloner,
    ContainerCloner,
    VmCloner,
    remove_clones,
    stack_of,
)
from scripts.checks.resources.density_placement import (
    BudgetedDockerEngine,
    ContainerView,
    InstanceView,
    PartitionedVirsh,
    VmView,
    check_placement_supported,
)
from scripts.checks.resources.density_watch import Watcher
from scripts.checks.resources.errors import (
    BudgetError,
    CloneError,
    DaemonUnavailableError,
)
from scripts.checks.results.run_tags import RunTags, run_tags
from scripts.checks.results.samples import Sample, Value, VariantLabel, write_samples
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.host_path import host_path
from scripts.checks.targets.libvirt_domains import DEFAULT_URI, Virsh
from scripts.termination import run_main

HOLD_S = 30.0  # the survivors must stay healthy this long after the last start
DEFAULT_WALL_CLOCK_S = 600.0
DEFAULT_MAX_INSTANCES: dict[Kind, int] = {"container": 96, "vm": 8}
READY_DEADLINE_S: dict[Kind, float] = {
    "container": CONTAINER_READY_TIMEOUT_S,
    "vm": VM_READY_TIMEOUT_S,
}
# Teardown removes this many clones at once: a removal waits on its daemon (docker kills and
# deletes a container, libvirt destroys a domain and deletes its overlay), not on this process.
REMOVE_PARALLEL = 4
WAIT_SLICE_S = 1.0  # a new instance is polled in slices; between them its process is checked
# Host memory kept free beside the budget: the daemons, the checks, the deployed pair.
HOST_RESERVE_MIB = 1024.0
MIN_INSTANCE_LIMIT_MIB = 16.0

EventKind = Literal[
    "starting", "ready", "no_answer", "start_failed", "oom_kill", "lost", "evicted", "hold", "done"
]


@dataclass(frozen=True)
class DensityEvent:
    """Progress of a run, for a progress bar or a log line."""

    kind: EventKind
    index: int  # 1-based instance number; 0 for run-wide events
    name: str
    message: str
    elapsed_s: float


ProgressCallback = Callable[[DensityEvent], None]


@dataclass
class InstanceRecord:
    """One instance of the run: when it started, whether it answered, what it cost."""

    index: int
    name: str
    started_at_s: float  # since the run began
    answering_before: int  # instances answering when it was started
    start_error: str = ""
    create_call_s: float | None = None
    ready_s: float | None = None  # create call to first HTTP 200
    no_answer_reason: str = ""
    charged_mib: float | None = None  # its own cgroup's usage once it answered
    budget_charged_mib: float | None = None  # the whole budget's usage then (the curve)
    lost_reason: str = ""
    lost_at_s: float | None = None
    evicted: bool = False  # its start exhausted the budget: removed before the hold
    lost_whole: bool = False  # lost with its main process: it holds no memory any more

    @property
    def answered(self) -> bool:
        return self.ready_s is not None

    @property
    def healthy(self) -> bool:
        return self.answered and not self.lost_reason and not self.evicted


@dataclass(frozen=True)
class RunLimits:
    max_instances: int
    wall_clock_s: float
    ready_deadline_s: float
    hold_s: float


class Tally:
    """The stop rule and the count, from the events of one run (no I/O).

    The first reason to stop wins; losses seen later still count against the figure.
    """

    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self.records: list[InstanceRecord] = []
        self.stop_reason = ""
        self.stopped_by_kernel = False
        # Stopped by the run's own bounds (max count, wall clock), not because the budget was
        # full: the count is then a lower bound of what fits.
        self.stopped_by_bound = False
        self.holding = False

    def may_start(self, elapsed_s: float) -> bool:
        if self.stop_reason:
            return False
        limits = self.limits
        if len(self.records) >= limits.max_instances:
            self.stopped_by_bound = True
            self._stop(
                f"max instance count {limits.max_instances} reached before the budget was "
                "exhausted (raise --max-instances for the budget's real capacity)"
            )
            return False
        if elapsed_s + limits.ready_deadline_s + limits.hold_s > limits.wall_clock_s:
            self.stopped_by_bound = True
            self._stop(
                f"wall-clock bound {limits.wall_clock_s:g} s: another start (deadline "
                f"{limits.ready_deadline_s:g} s + hold {limits.hold_s:g} s) could pass it "
                f"at {elapsed_s:.0f} s"
            )
            return False
        return True

    def begin(self, name: str, at_s: float) -> InstanceRecord:
        record = InstanceRecord(len(self.records) + 1, name, at_s, len(self.answering()))
        self.records.append(record)
        return record

    def start_failed(self, record: InstanceRecord, reason: str) -> None:
        record.start_error = reason
        self._stop(
            f"instance {record.index} ({record.name}) did not start: {reason}", by_kernel=True
        )

    def answered(self, record: InstanceRecord, ready_s: float) -> None:
        record.ready_s = ready_s

    def no_answer(self, record: InstanceRecord, reason: str) -> None:
        record.no_answer_reason = reason
        self._stop(
            f"instance {record.index} ({record.name}) gave no HTTP 200: {reason}", by_kernel=True
        )

    def lost(self, name: str, reason: str, at_s: float, whole: bool = False) -> None:
        """An answering instance stopped being healthy; `whole`: its main process is gone, so
        it no longer holds memory in the budget."""
        record = self.by_name(name)
        if record is None or record.lost_reason or not record.answered:
            return
        record.lost_reason, record.lost_at_s, record.lost_whole = reason, at_s, whole
        if not self.holding:
            latest = self.records[-1]
            self._stop(
                f"instance {record.index} ({name}) {reason} after instance {latest.index} "
                "was started",
                by_kernel=True,
            )

    def oom_kill(self, owner: str | None, what: str) -> None:
        """The kernel killed a task inside the budget (in instance `owner` if known): the
        budget is exhausted, whether or not the instance survives the kill (what the kill
        did to an answering instance comes as a loss)."""
        record = self.by_name(owner) if owner else None
        if not self.holding:
            where = f"instance {record.index} ({record.name})" if record else "the budget"
            self._stop(f"the kernel OOM-killed {what} in {where}", by_kernel=True)

    def hold_begins(self) -> None:
        self.holding = True

    def by_name(self, name: str) -> InstanceRecord | None:
        return next((r for r in self.records if r.name == name), None)

    def answering(self) -> list[InstanceRecord]:
        return [r for r in self.records if r.healthy]

    def healthy_count(self) -> int:
        return len(self.answering())

    def evict_last(self) -> InstanceRecord | None:
        """After a stop the kernel caused (no start, no 200, an OOM kill, a loss), one
        instance's worth did not fit. If the kernel removed a whole earlier instance (its
        process killed), room was made already; otherwise the instance started last is the
        one that did not fit: removed before the hold and never counted, so the hold tests
        whether the others fit. None when nothing is to be removed."""
        if not self.stopped_by_kernel or not self.records or self.records[-1].start_error:
            return None
        if any(r.lost_whole for r in self.records):
            return None
        self.records[-1].evicted = True
        return self.records[-1]

    def _stop(self, reason: str, by_kernel: bool = False) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
            self.stopped_by_kernel = by_kernel


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DensityResult:
    kind: Kind
    source_name: str
    budget_mib: float
    limit_mib: float  # the per-instance memory limit (the deployed one unless overridden)
    limits: RunLimits
    cgroup_version: str
    budget_cgroup: str  # its memory directory
    placement: str  # Docker cgroup parent or libvirt partition
    instances: tuple[InstanceRecord, ...]
    stop_reason: str
    budget_peak_mib: float | None
    budget_limit_hits: int
    kernel_oom_kills: tuple[str, ...]  # "task pid in cgroup", every kill inside the budget
    kernel_log: str  # "read" or why it could not be
    wall_s: float
    load_avg_start: float
    load_avg_end: float
    leftovers: tuple[str, ...] = ()  # what the cleanup could not remove
    count_is_lower_bound: bool = False  # stopped by max count or wall clock, budget not full

    @property
    def healthy_count(self) -> int:
        return sum(1 for r in self.instances if r.healthy)

    def samples(
        self, target: str, tags: RunTags, label: VariantLabel | None = None
    ) -> list[Sample]:
        """R4 samples: the count, then per instance its start time and the budget's charge,
        filed under `label` (the deployed variant; by default one named after the kind)."""
        label = label or VariantLabel(self.kind, self.kind)
        common: dict[str, Value] = {
            "source": self.source_name,
            "budget_mib": self.budget_mib,
            "limit_mib": round(self.limit_mib, 3),
            "cgroup_version": self.cgroup_version,
            "budget_cgroup": self.budget_cgroup,
            "placement": self.placement,
        }
        answered = [r for r in self.instances if r.answered]
        summary: dict[str, Value] = {
            **common,
            "method": "instances started one by one in a kernel-enforced memory budget until "
            "the kernel allowed no more; the last one removed unless the kernel killed a whole "
            f"instance itself; counted if answering and healthy {self.limits.hold_s:g} s after "
            "the last start",
            "stop_reason": self.stop_reason,
            "count_is_lower_bound": self.count_is_lower_bound,
            "attempted": len(self.instances),
            "answered": len(answered),
            # How many answered together when the last start began: what fitted before the
            # start that ended the run (the figure can be lower: the kernel may kill more).
            "answering_before_last_start": (
                self.instances[-1].answering_before if self.instances else 0
            ),
            "max_instances": self.limits.max_instances,
            "ready_deadline_s": self.limits.ready_deadline_s,
            "hold_s": self.limits.hold_s,
            "wall_clock_bound_s": self.limits.wall_clock_s,
            "wall_s": round(self.wall_s, 2),
            "budget_peak_mib": round(self.budget_peak_mib or 0.0, 3),
            "budget_limit_hits": self.budget_limit_hits,
            "kernel_oom_kills": len(self.kernel_oom_kills),
            "kernel_log": self.kernel_log,
            "load_avg_1m_start": self.load_avg_start,
            "load_avg_1m_end": self.load_avg_end,
            "leftovers": len(self.leftovers),
        }
        samples = [
            tags.sample(
                "instances_healthy_in_budget",
                self.healthy_count,
                "instances",
                target,
                label,
                "R4",
                **summary,
            )
        ]
        for record in answered:
            point: dict[str, Value] = {
                **common,
                "instance": record.name,
                "index": record.index,
                "answering_before": record.answering_before,
                "healthy_at_end": record.healthy,
                "lost_reason": record.lost_reason,
                "evicted": record.evicted,
            }
            samples.append(
                tags.sample(
                    "density_time_to_first_200_s",
                    round(record.ready_s or 0.0, 3),
                    "s",
                    target,
                    label,
                    "R4",
                    **point,
                )
            )
            if record.budget_charged_mib is not None:
                samples.append(
                    tags.sample(
                        "density_budget_charged_mib",
                        round(record.budget_charged_mib, 3),
                        "MiB",
                        target,
                        label,
                        "R4",
                        instance_charged_mib=round(record.charged_mib or 0.0, 3),
                        **point,
                    )
                )
        return samples


def validate(
    kind: str,
    budget_mib: float,
    limits: RunLimits,
    available_mib: float,
    instance_limit_mib: float | None = None,
) -> None:
    """Bad input stops the run before anything is created."""
    problems = []
    if instance_limit_mib is not None and not instance_limit_mib >= MIN_INSTANCE_LIMIT_MIB:
        problems.append(
            f"per-instance limit {instance_limit_mib:g} MiB: at least "
            f"{MIN_INSTANCE_LIMIT_MIB:g} MiB (Docker's own minimum is 6 MiB)"
        )
    if kind not in ("container", "vm"):
        problems.append(f"kind {kind!r}: choose container or vm")
    if not budget_mib > 0:
        problems.append(f"budget {budget_mib:g} MiB: must be positive")
    elif budget_mib + HOST_RESERVE_MIB > available_mib:
        problems.append(
            f"budget {budget_mib:g} MiB plus {HOST_RESERVE_MIB:g} MiB reserve exceeds the "
            f"host's available {available_mib:.0f} MiB: the host, not the budget, would run "
            "out first; lower the budget"
        )
    if limits.max_instances < 1:
        problems.append(f"max instances {limits.max_instances}: must be at least 1")
    if not limits.ready_deadline_s > 0:
        problems.append(f"ready deadline {limits.ready_deadline_s:g} s: must be positive")
    if limits.hold_s < 0:
        problems.append(f"hold {limits.hold_s:g} s: must not be negative")
    if limits.ready_deadline_s + limits.hold_s > limits.wall_clock_s:
        problems.append(
            f"wall-clock bound {limits.wall_clock_s:g} s is shorter than one instance's "
            f"deadline {limits.ready_deadline_s:g} s plus the hold {limits.hold_s:g} s"
        )
    if problems:
        raise BudgetError("density run not started: " + "; ".join(problems))


def host_available_mib(host: HostHandle | None = None) -> float:
    return meminfo_available_mib(host_path(host, "/proc/meminfo").read_text())


def run(
    kind: Kind,
    source_name: str,
    budget_mib: float,
    *,
    stack: str | None = None,
    max_instances: int | None = None,
    wall_clock_s: float = DEFAULT_WALL_CLOCK_S,
    ready_deadline_s: float | None = None,
    hold_s: float = HOLD_S,
    instance_limit_mib: float | None = None,
    on_event: ProgressCallback | None = None,
    docker_host: str | None = None,
    libvirt_uri: str = DEFAULT_URI,
    cgroup_root: Path = CGROUP_ROOT,
    host: HostHandle | None = None,
) -> DensityResult:
    """Start clones of the deployed instance `source_name` inside a `budget_mib` budget until
    the kernel allows no more (see the module's docstring). Always removes what it made.
    `instance_limit_mib` replaces the deployed per-instance memory limit (None: as deployed).
    With a stack's `host`, the budget, the clones and every reading are on that host (its
    cgroup and /proc files as HostPaths over its SSH when remote)."""
    limits = RunLimits(
        max_instances if max_instances is not None else DEFAULT_MAX_INSTANCES.get(kind, 1),
        wall_clock_s,
        ready_deadline_s if ready_deadline_s is not None else READY_DEADLINE_S.get(kind, 0.0),
        hold_s,
    )
    validate(kind, budget_mib, limits, host_available_mib(host), instance_limit_mib)
    stack = stack or stack_of(source_name)
    name = budget_cgroup.budget_name(stack, str(os.getpid()))
    layout = budget_cgroup.detect_layout(host_path(host, cgroup_root))
    placement: str
    cloner: Cloner
    view: InstanceView
    if kind == "container":
        placement = budget_cgroup.docker_cgroup_parent(name)
        engine = BudgetedDockerEngine(placement, host or docker_host, instance_limit_mib)
        check_placement_supported(kind, engine)
        cloner, view = ContainerCloner(source_name, stack, engine), ContainerView(engine)
    else:
        check_placement_supported(kind, host=host)
        placement = budget_cgroup.libvirt_partition(name)
        virsh = PartitionedVirsh(placement, host or libvirt_uri, instance_limit_mib)
        cloner, view = VmCloner(source_name, stack, virsh), VmView(virsh)
    budget = BudgetCgroup(layout, budget_cgroup.budget_dir(kind, name), int(budget_mib * MIB))
    limit_mib = instance_limit_mib if instance_limit_mib is not None else cloner.limit_mib
    return _run_in_budget(kind, source_name, cloner, view, budget, limits, limit_mib, on_event)


def _run_in_budget(
    kind: Kind,
    source_name: str,
    cloner: Cloner,
    view: InstanceView,
    budget: BudgetCgroup,
    limits: RunLimits,
    limit_mib: float,
    on_event: ProgressCallback | None,
) -> DensityResult:
    began = time.monotonic()
    host = cloner.host
    load_start = round(host.load_avg_1m(), 2)
    tally = Tally(limits)
    clones: list[Clone] = []
    kernel_log = open_kernel_log(host)
    watcher = Watcher(budget.layout, budget, kernel_log, host)

    def elapsed() -> float:
        return time.monotonic() - began

    def emit(kind_: EventKind, record: InstanceRecord | None, message: str) -> None:
        if on_event is not None:
            index, name = (record.index, record.name) if record else (0, "")
            on_event(DensityEvent(kind_, index, name, message, elapsed()))

    def apply_losses() -> None:
        watcher.check_kills()
        for owner, kill in watcher.take_kills():
            what = f"{kill.task} pid {kill.pid}"
            tally.oom_kill(owner, what)
            emit("oom_kill", tally.by_name(owner) if owner else None, f"kernel killed {what}")
        for lost_name, loss in watcher.take_losses().items():
            tally.lost(lost_name, loss.reason, loss.at - began, loss.whole)
            emit("lost", tally.by_name(lost_name), loss.reason)

    leftovers: list[str] = []
    peak: float | None = None
    limit_hits = 0
    try:
        budget.create(kind)
        watcher.start()
        while tally.may_start(elapsed()):
            record = tally.begin(cloner.next_name(), elapsed())
            emit("starting", record, f"{record.answering_before} answering so far")
            try:
                clone = cloner.start(record.name)
            except CloneError as error:
                tally.start_failed(record, _with_kill(str(error), watcher.kill_of(record.name)))
                emit("start_failed", record, record.start_error)
                break
            clones.append(clone)
            record.create_call_s = clone.create_call_s
            with host.reach(clone.url) as url:
                _await_first_200(clone, url, record, tally, view, watcher, limits, apply_losses)
            if record.answered:
                emit("ready", record, f"HTTP 200 after {record.ready_s:.2f} s")
                pid = view.main_pid(record.name)
                if pid is None:
                    why = view.why_not_running(record.name)
                    reason = f"exited right after answering ({why})"
                    tally.lost(record.name, reason, elapsed(), whole=True)
                    emit("lost", record, record.lost_reason)
                else:
                    watcher.admit(record.name, clone.url, pid)
                    record.charged_mib = _charged_mib(watcher, record.name, budget)
                record.budget_charged_mib = budget.counters().usage_mib
            else:
                emit("no_answer", record, record.no_answer_reason)
            apply_losses()
        evicted = tally.evict_last()
        if evicted is not None:
            watcher.forget(evicted.name)
            for clone in [c for c in clones if c.name == evicted.name]:
                cloner.remove(clone)
                clones.remove(clone)
            emit("evicted", evicted, "did not fit: removed before the hold")
        tally.hold_begins()
        hold_s = limits.hold_s if tally.healthy_count() else 0.0  # nothing to hold
        emit("hold", None, f"{tally.stop_reason}; holding {hold_s:g} s")
        hold_end = time.monotonic() + hold_s
        while time.monotonic() < hold_end:
            time.sleep(min(WAIT_SLICE_S, max(0.0, hold_end - time.monotonic())))
            apply_losses()
        watcher.stop()
        watcher.check_now()  # a last round after the hold, whatever the watcher's timing
        apply_losses()
        counters = budget.counters()
        peak = counters.peak_bytes / MIB if counters.peak_bytes is not None else None
        limit_hits = counters.limit_hits
    finally:
        watcher.stop()
        leftovers += _remove_all(cloner, clones)
        with contextlib.suppress(OSError):
            watcher.read_kernel_log()  # kills during teardown still belong to the budget
        leftovers += budget.remove()
        kernel_log.close()
    result = DensityResult(
        kind=kind,
        source_name=source_name,
        budget_mib=budget.limit_mib,
        limit_mib=limit_mib,
        limits=limits,
        cgroup_version=budget.layout.version,
        budget_cgroup=str(budget.memory_dir),
        placement=_placement(cloner),
        instances=tuple(tally.records),
        stop_reason=tally.stop_reason,
        budget_peak_mib=peak,
        budget_limit_hits=limit_hits,
        kernel_oom_kills=tuple(
            f"{k.task} pid {k.pid} in {k.task_memcg}" for k in watcher.kills_in_budget
        ),
        kernel_log="read" if kernel_log.problem == "" else kernel_log.problem,
        wall_s=elapsed(),
        load_avg_start=load_start,
        load_avg_end=round(host.load_avg_1m(), 2),
        leftovers=tuple(leftovers),
        count_is_lower_bound=tally.stopped_by_bound,
    )
    emit("done", None, f"{result.healthy_count} healthy; {result.stop_reason}")
    return result


def _remove_all(cloner: Cloner, clones: list[Clone]) -> list[str]:
    """Remove every clone, REMOVE_PARALLEL at a time; what could not be removed, and why."""

    def remove(clone: Clone) -> str | None:
        try:
            cloner.remove(clone)
        except (CloneError, DaemonUnavailableError) as error:
            return f"{clone.name}: {error}"
        return None

    with ThreadPoolExecutor(REMOVE_PARALLEL) as pool:
        return [problem for problem in pool.map(remove, clones) if problem]


def _placement(cloner: Cloner) -> str:
    if isinstance(cloner, ContainerCloner) and isinstance(cloner.engine, BudgetedDockerEngine):
        return f"docker cgroup parent {cloner.engine.cgroup_parent}"
    if isinstance(cloner, VmCloner) and isinstance(cloner.virsh, PartitionedVirsh):
        return f"libvirt partition {cloner.virsh.partition}"
    return "?"


def _with_kill(reason: str, kill: OomKill | None) -> str:
    return f"{reason} (kernel OOM-killed {kill.task} pid {kill.pid})" if kill else reason


def _charged_mib(watcher: Watcher, name: str, budget: BudgetCgroup) -> float | None:
    path = watcher.cgroups.get(name)
    if path is None:
        return None
    with contextlib.suppress(BudgetError):
        memory_dir = budget.layout.memory_root / path.lstrip("/")
        return budget_cgroup.read_counters(memory_dir, budget.layout.version).usage_mib
    return None


def _await_first_200(
    clone: Clone,
    url: str,  # the clone's URL as this process reaches it
    record: InstanceRecord,
    tally: Tally,
    view: InstanceView,
    watcher: Watcher,
    limits: RunLimits,
    apply_losses: Callable[[], None],
) -> None:
    """Poll the new instance in slices until its first 200 or its deadline; between slices,
    see whether its process is still there (an instance killed while booting will never
    answer: no reason to wait out the deadline) and take the watcher's losses."""
    deadline = clone.created_at + limits.ready_deadline_s
    noted = False
    while True:
        slice_end = min(deadline, time.monotonic() + WAIT_SLICE_S)
        result = wait_for_http_200(url, clone.created_at, slice_end - clone.created_at)
        if result.seconds is not None:
            tally.answered(record, result.seconds)
            return
        apply_losses()
        pid = view.main_pid(record.name)
        if pid is not None and not noted:
            noted = watcher.note_cgroup(record.name, pid) is not None
        why = view.why_not_running(record.name) if pid is None else "running"
        if why != "running":  # "running" again: the runtime restarted it; wait on
            reason = _with_kill(why, watcher.kill_of(record.name))
            tally.no_answer(record, f"stopped before answering: {reason}")
            return
        if time.monotonic() >= deadline:
            last = result.last_error or "no answer"
            tally.no_answer(record, f"none within {limits.ready_deadline_s:g} s (last: {last})")
            return


# --- leftovers -----------------------------------------------------------------------------------


def find_leftovers(
    stack: str,
    engine: DockerEngine | None = None,
    virsh: Virsh | None = None,
    cgroup_root: Path = CGROUP_ROOT,
) -> list[str]:
    """Everything a density run of `stack` could leave: clones (containers, volumes, domains,
    overlay volumes) and budget cgroups."""
    prefix = clone_prefix(stack)
    engine, virsh = engine or DockerEngine(), virsh or Virsh()
    found = [f"container {n}" for n in engine.container_names(prefix)]
    found += [f"docker volume {n}" for n in engine.volume_names(prefix)]
    found += [f"domain {n}" for n in virsh.domain_names(prefix)]
    for pool in virsh.pool_names():
        try:
            volumes = virsh.volumes(pool)
        except CloneError:  # another stack's pool went away since it was listed
            continue
        found += [f"volume {pool}/{v}" for v in volumes if v.startswith(prefix)]
    found += [f"cgroup {p}" for p in budget_cgroup.leftover_budgets(stack, cgroup_root)]
    return found


def remove_leftovers(stack: str, cgroup_root: Path = CGROUP_ROOT) -> list[str]:
    """Remove what `find_leftovers` lists; returns what could not be removed."""
    swept = remove_clones(stack)
    return swept.skipped + budget_cgroup.remove_budget_dirs(
        budget_cgroup.leftover_budgets(stack, cgroup_root)
    )


# --- command line --------------------------------------------------------------------------------


def print_result(result: DensityResult, console: Console) -> None:
    table = Table(
        "#", "instance", "answering before", "start to 200 s", "own MiB", "budget MiB", "outcome"
    )
    for r in result.instances:
        outcome = (
            r.lost_reason
            or r.start_error
            or r.no_answer_reason
            or ("did not fit: removed before the hold" if r.evicted else "")
            or ("healthy" if r.healthy else "?")
        )
        table.add_row(
            str(r.index),
            r.name,
            str(r.answering_before),
            f"{r.ready_s:.2f}" if r.ready_s is not None else "-",
            f"{r.charged_mib:.1f}" if r.charged_mib is not None else "-",
            f"{r.budget_charged_mib:.1f}" if r.budget_charged_mib is not None else "-",
            outcome,
        )
    console.print(table)
    console.print(
        f"{result.kind}: {result.healthy_count} healthy in a {result.budget_mib:g} MiB budget "
        f"(per-instance limit {result.limit_mib:g} MiB); stopped: {result.stop_reason}; "
        f"peak {result.budget_peak_mib or 0:.0f} MiB, limit hit {result.budget_limit_hits}x, "
        f"kernel OOM kills {len(result.kernel_oom_kills)}; {result.wall_s:.0f} s; load "
        f"{result.load_avg_start} -> {result.load_avg_end}",
        highlight=False,
        soft_wrap=True,
    )
    if result.leftovers:
        console.print(f"[red]not removed:[/red] {'; '.join(result.leftovers)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.checks.resources.density_budget",
        description="R4: instances started one by one inside a kernel-enforced memory budget.",
    )
    parser.add_argument("--kind", choices=("container", "vm"))
    parser.add_argument("--source", help="deployed instance to clone, e.g. twinlab-dev-app")
    parser.add_argument("--stack", help="stack name (default: from the source's name)")
    parser.add_argument("--budget-mib", type=float, default=1536.0)
    parser.add_argument("--max-instances", type=int)
    parser.add_argument("--wall-clock-s", type=float, default=DEFAULT_WALL_CLOCK_S)
    parser.add_argument("--deadline-s", type=float, help="per-instance deadline for HTTP 200")
    parser.add_argument("--hold-s", type=float, default=HOLD_S)
    parser.add_argument(
        "--instance-limit-mib", type=float, help="per-instance memory limit (default: deployed)"
    )
    parser.add_argument("--target", help="target URL to file the samples under")
    parser.add_argument("--out", type=Path, help="write the samples as JSON Lines here")
    parser.add_argument("--json", type=Path, help="write the whole result as JSON here")
    parser.add_argument("--leftovers", metavar="STACK", help="only list what runs of STACK left")
    parser.add_argument("--remove", action="store_true", help="with --leftovers: remove them")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.leftovers:
            if args.remove:
                failed = remove_leftovers(args.leftovers)
                for line in failed:
                    console.print(f"[yellow]not removed: {line}")
                return 1 if failed else 0
            found = find_leftovers(args.leftovers)
            print("\n".join(found) or "nothing left")
            return 1 if found else 0
        if not args.kind or not args.source:
            parser.error("--kind and --source are required (or --leftovers STACK)")

        def show(event: DensityEvent) -> None:
            who = f"#{event.index} {event.name}: " if event.index else ""
            console.print(f"[{event.elapsed_s:6.1f} s] {event.kind:12} {who}{event.message}")

        result = run(
            args.kind,
            args.source,
            args.budget_mib,
            stack=args.stack,
            max_instances=args.max_instances,
            wall_clock_s=args.wall_clock_s,
            ready_deadline_s=args.deadline_s,
            hold_s=args.hold_s,
            instance_limit_mib=args.instance_limit_mib,
            on_event=show,
        )
    except TwinlabError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        return 2
    print_result(result, Console() if sys.stdout.isatty() else Console(width=160))
    if args.out:
        virt_mode = "n/a"
        if args.kind == "vm":
            virt_mode = domain_xml.parse_domain(Virsh().running_domain_xml(args.source)).virt_mode
        target = (
            args.target or f"{'docker' if args.kind == 'container' else 'libvirt'}://{args.source}"
        )
        write_samples(args.out, result.samples(target, run_tags(virt_mode)))
        console.print(f"wrote samples to {args.out}")
    if args.json:
        record = asdict(result) | {"healthy_count": result.healthy_count}
        args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return 1 if result.leftovers else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
