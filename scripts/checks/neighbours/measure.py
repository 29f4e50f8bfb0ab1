"""N1, performance isolation: the app's open-loop latency alone and beside a noisy neighbour.

For each deployed variant, one sibling instance of the same variant (sibling.py) runs on a CPU
set disjoint from the app's (placement.py). Every repeat measures the app's latency with the
sibling idle ("none": the baseline), then with the sibling running each stressor
(stressors.py) in turn, the stressors' order rotated from repeat to repeat so drift touches
each alike. Each run is vegeta at one fixed rate (load/open_loop.py), so the latency counts
from each request's scheduled start (no coordinated omission). A stressed run's slowdown is its
latency over the baseline of the same repeat (neighbours/slowdown.py; the N1 judge).

Everything runs on the variants' host through its handle (targets/host.py): the sibling is
cloned by docker and virsh there, the stressors reach it through the host, vegeta runs on the
host itself (load/on_host.py says why), CPUs and the load average are the host's.

Bounded in time: `NeighbourPlan.estimated_s` says how long per variant, checked before
anything starts; each stressor exits by itself; the sibling is removed whatever happens.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from components.errors import TwinlabError
from scripts.checks.load.closed_loop import HttpTarget
from scripts.checks.load.latency import Server, server_cpus
from scripts.checks.load.open_loop import OpenLoopPlan, OpenLoopRun, run_open_loop
from scripts.checks.load.pinning import host_cpus
from scripts.checks.neighbours import placement as placing
from scripts.checks.neighbours.sibling import Neighbour, running_neighbour
from scripts.checks.neighbours.slowdown import LATENCY_METRIC
from scripts.checks.neighbours.stressors import (
    NONE,
    STRESSORS,
    WRITES_BACK,
    StressorError,
    StressorReport,
    check_stressors,
    command,
    parse_report,
)
from scripts.checks.resources.meters import Instance
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample, Value, VariantLabel
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.target import CommandResult

CLAIM = "N1"
PATH = "/static"
PERCENTILES = ("p50", "p99")
# Past the measured window, so the stress outlasts it even if vegeta ends late (its runs ended
# within 0.1 s of their duration); the way into the sibling (docker exec, SSH) comes on top.
STRESS_TAIL_S = 0.3
# The trial run of each stressor that measures its start-up delay.
TRIAL_S = 0.2
# Extra time for the stressor's command to return (docker exec, SSH) before it counts as hung.
STRESSOR_RETURN_S = 30.0

Event = Callable[[str], None]


@dataclass(frozen=True)
class NeighbourPlan:
    stressors: tuple[str, ...] = STRESSORS
    repeats: int = 5  # the measurement standard's n >= 5
    duration_s: float = 2.5  # each open-loop run: 62 requests at 25 req/s
    # One fixed offered rate for every variant, at most half of each one's /static maximum, so
    # latency shows interference, not a queue: under TCG the VM's closed-loop maximum was
    # 37-79 req/s (median 51, run 20261201T060805), and at 50 req/s its baseline p50 ranged
    # 11-75 ms against 3 ms for the container.
    rate_per_s: int = 25
    warmup_s: float = 0.5  # from starting the stressor to starting the load (at least)
    settle_s: float = 0.3  # after an fsync run, so its after-effects (writeback) pass
    same_cpus: bool = False  # negative control: the neighbour on the app's own CPUs
    # Negative control, containers only: the neighbour's CPU weight (docker --cpu-shares; the
    # deployed instances have 1024), so on the same CPUs it takes most of them.
    neighbour_cpu_shares: int | None = None

    def problems(self) -> list[str]:
        found = []
        try:
            check_stressors(self.stressors)
        except StressorError as error:
            found.append(str(error))
        if not 1 <= self.repeats <= 50:
            found.append(f"repeats={self.repeats}: must be 1..50 (5 or more for a verdict)")
        if not 0 <= self.warmup_s <= 30 or not 0 <= self.settle_s <= 30:
            found.append("warmup_s and settle_s must be 0..30")
        found += [f"open loop: {p}" for p in self.open_loop().problems()]
        return found

    def open_loop(self) -> OpenLoopPlan:
        return OpenLoopPlan(rate_per_s=self.rate_per_s, duration_s=self.duration_s)

    def estimated_s(self) -> float:
        """Seconds of measuring per variant (the sibling's start comes on top)."""
        stressed = len(self.stressors) * (self.warmup_s + self.duration_s)
        settles = self.settle_s if WRITES_BACK in self.stressors else 0.0
        return self.repeats * (self.duration_s + stressed + settles)


def schedule(stressors: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """(repeat, stressor) in run order: each repeat the baseline, then every stressor, their
    order rotated by one each repeat."""
    runs = []
    for repeat in range(repeats):
        shift = repeat % len(stressors) if stressors else 0
        rotated = [*stressors[shift:], *stressors[:shift]]
        runs += [(repeat, stressor) for stressor in (NONE, *rotated)]
    return runs


@dataclass(frozen=True)
class Subject:
    """A deployed variant: its label, instance name, target URL and app URL."""

    label: VariantLabel
    instance_name: str
    target: str
    url: str

    @property
    def instance(self) -> Instance:
        return Instance(self.label, self.instance_name, self.target)


class NeighbourError(TwinlabError):
    """A neighbour run failed (its stressor did not run); the message names the fix."""


@dataclass
class _Stress:
    """A stressor running inside the neighbour on a thread of its own."""

    neighbour: Neighbour
    stressor: str
    seconds: float
    result: CommandResult | None = None
    error: BaseException | None = None
    launched: float = 0.0
    returned: float = 0.0
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.neighbour.target.run(
                command(self.stressor, self.seconds),
                timeout_s=self.seconds + STRESSOR_RETURN_S,
            )
        except BaseException as error:  # re-raised on the main thread (report)
            self.error = error
        finally:
            self.returned = time.monotonic()

    def start(self) -> None:
        self.launched = time.monotonic()
        self.thread.start()

    def report(self) -> StressorReport:
        self.thread.join(self.seconds + STRESSOR_RETURN_S + 5)
        where = self.neighbour.clone.name
        if self.error is not None:
            raise NeighbourError(f"stressor {self.stressor} in {where}: {self.error}")
        if self.result is None:
            raise NeighbourError(f"stressor {self.stressor} in {where} did not return")
        if self.result.rc != 0:
            raise NeighbourError(
                f"stressor {self.stressor} in {where} exited {self.result.rc}: "
                f"{self.result.stderr.strip()[-300:]}"
            )
        return parse_report(self.result.stdout)


def measure_neighbours(
    subjects: Sequence[Subject],
    plan: NeighbourPlan,
    *,
    stack: str,
    host: HostHandle,
    tags: RunTags,
    on_event: Event | None = None,
) -> list[Sample]:
    """N1 samples for every subject on `host`, one variant after another (one sibling at a
    time)."""
    problems = plan.problems()
    if problems:
        raise NeighbourError("invalid neighbour plan: " + "; ".join(problems))
    say = on_event or (lambda _text: None)
    samples: list[Sample] = []
    for subject in subjects:
        samples += measure_variant(subject, plan, stack=stack, host=host, tags=tags, say=say)
    return samples


def measure_variant(
    subject: Subject,
    plan: NeighbourPlan,
    *,
    stack: str,
    host: HostHandle,
    tags: RunTags,
    say: Event,
) -> list[Sample]:
    """Every (repeat, stressor) run of `plan` for one variant beside its sibling."""
    http = HttpTarget(subject.target, subject.label, subject.url.rstrip("/"))
    try:
        app = server_cpus(Server(http, subject.instance_name), host)
        choose = placing.same_cpus if plan.same_cpus else placing.disjoint
        where = choose(host_cpus(host=host), app)
    except TwinlabError as error:
        say(f"  [yellow]no neighbour run for {subject.label.name}:[/] {error}")
        return [unavailable_sample(subject, str(error), tags)]
    base: dict[str, Value] = {
        **where.metadata(),
        "rate_per_s": plan.rate_per_s,
        "duration_s": plan.duration_s,
        "path": PATH,
    }
    say(
        f"  {subject.label.name}: neighbour on CPUs {base['neighbour_cpus']}, app on "
        f"{base['app_cpus']}, vegeta on {base['generator_cpus']}"
    )
    samples: list[Sample] = []
    shares = plan.neighbour_cpu_shares
    with running_neighbour(
        subject.instance, stack, where.neighbour, host, cpu_shares=shares
    ) as neighbour:
        warmups = _warmups(neighbour, plan)
        base |= {
            "neighbour_cpu_shares": shares or "as deployed",
            "neighbour": neighbour.clone.name,
            "neighbour_ready_s": round(neighbour.ready_s, 3),
        }
        say(
            f"  {neighbour.clone.name} answers after {neighbour.ready_s:.1f} s; warm-up per "
            "stressor " + ", ".join(f"{name} {s:.2f} s" for name, s in warmups.items())
        )
        for repeat, stressor in schedule(plan.stressors, plan.repeats):
            say(f"  {subject.label.name} run {repeat + 1}/{plan.repeats}: stressor {stressor}")
            warm = dataclasses.replace(plan, warmup_s=warmups.get(stressor, 0.0))
            samples += _one_run(subject, neighbour, host, warm, where, repeat, stressor, tags, base)
    return samples


def _warmups(neighbour: Neighbour, plan: NeighbourPlan) -> dict[str, float]:
    """Per stressor, how long to let it start before the load: the plan's warm-up, or twice
    the measured delay from launching it to its working (the way in, python3's start, its
    set-up: seconds through SSH into a guest under emulation), if longer. A short trial of each
    measures it, with the way in (an SSH session) already open, as in the runs."""
    neighbour.target.run("true", timeout_s=STRESSOR_RETURN_S)
    found = {}
    for stressor in plan.stressors:
        started = time.monotonic()
        result = neighbour.target.run(command(stressor, TRIAL_S), timeout_s=STRESSOR_RETURN_S)
        if result.rc != 0:
            raise NeighbourError(
                f"stressor {stressor} does not run in the neighbour {neighbour.clone.name}: "
                f"{result.stderr.strip()[-300:]}"
            )
        delay_s = time.monotonic() - started - parse_report(result.stdout).work_s
        found[stressor] = round(max(plan.warmup_s, 2 * delay_s), 3)
    return found


def _one_run(
    subject: Subject,
    neighbour: Neighbour,
    host: HostHandle,
    plan: NeighbourPlan,
    where: placing.Placement,
    repeat: int,
    stressor: str,
    tags: RunTags,
    base: dict[str, Value],
) -> list[Sample]:
    url = subject.url.rstrip("/") + PATH
    stress = None
    if stressor != NONE:
        stress = _Stress(neighbour, stressor, plan.warmup_s + plan.duration_s + STRESS_TAIL_S)
        stress.start()
        time.sleep(plan.warmup_s)
    started = time.monotonic()
    run = run_open_loop(url, plan.open_loop(), generator_cpus=where.generator, host=host)
    meta: dict[str, Value] = {
        **base,
        "stressor": stressor,
        "repeat": repeat,
        "requests": run.report.requests,
        "warmup_s": plan.warmup_s,
        "rate_honoured": run.rate_honoured,
        "load_avg_1m": round(host.load_avg_1m(), 2),
    }
    extra: list[Sample] = []
    if stress is not None:
        report = stress.report()
        # The stress began at the latest when it returned minus its working time (the return
        # takes a little longer still), so this bound is safe: it covered the load's start.
        began = stress.returned - report.work_s
        meta |= {
            "stress_covered_window": began <= started,
            "stress_setup_s": round(report.setup_s, 3),
        }
        extra.append(
            _sample(subject, tags, "neighbour_stressor_rate", report.rate, report.unit, meta)
        )
        if stressor == WRITES_BACK:  # cpu and memory leave nothing to finish once they exit
            time.sleep(plan.settle_s)
    return [*_latency_samples(subject, tags, run, meta), *extra]


def _latency_samples(
    subject: Subject, tags: RunTags, run: OpenLoopRun, meta: dict[str, Value]
) -> list[Sample]:
    report = run.report
    values = {"p50": report.latency_p50_ms, "p99": report.latency_p99_ms}
    samples = [
        _sample(subject, tags, LATENCY_METRIC, round(values[p], 3), "ms", meta | {"percentile": p})
        for p in PERCENTILES
    ]
    samples += [
        _sample(
            subject,
            tags,
            "neighbour_achieved_rate_per_s",
            round(report.rate_per_s, 3),
            "req/s",
            meta,
        ),
        _sample(
            subject, tags, "neighbour_success_ratio", round(report.success_ratio, 5), "ratio", meta
        ),
        _sample(
            subject,
            tags,
            "neighbour_generator_cpu_percent",
            round(run.generator_cpu_percent, 1),
            "%",
            meta,
        ),
    ]
    return samples


def _sample(
    subject: Subject,
    tags: RunTags,
    metric: str,
    value: float,
    unit: str,
    meta: dict[str, Value],
) -> Sample:
    return tags.sample(metric, value, unit, subject.target, subject.label, CLAIM, **meta)


def unavailable_sample(subject: Subject, reason: str, tags: RunTags) -> Sample:
    """The one sample of a variant that got no neighbour run, saying why (N1 names it)."""
    label = subject.label
    return Sample(
        "neighbour_unavailable",
        reason,
        "",
        subject.target,
        label.name,
        (CLAIM,),
        tags.metadata(**label.metadata()),
        kind=label.kind,
    )
