"""P1 latency at a fixed offered load: vegeta's open-loop, constant-rate attack on loopback.

A closed-loop tool (wrk) sends the next request when a response returns, so a slow server is
offered less load and its stalls vanish from the percentiles (coordinated omission). vegeta
instead starts requests on a fixed schedule: when every worker is busy it starts another one,
so a request's latency runs from its scheduled start. That holds while workers are not capped;
the cap here (`OpenLoopPlan.max_workers`) is the rate times the request timeout, the most
requests that can be in flight at once, so it only bounds memory and never delays a start.

Both variants get the same rate (`sustainable_rate_per_s`: half the slower variant's closed-loop
maximum), so their p50/p90/p99/p99.9 compare like for like. vegeta runs pinned with `taskset` to
CPUs apart from the servers (scripts.checks.load.pinning chooses them), and its own CPU time (wait4)
is reported, because on 2 cores the generator's cost matters.

Every run is bounded: only http:// URLs on a loopback address; rate x duration <= max_requests,
checked before anything starts; vegeta stops at its duration and is killed if it overruns.
vegeta is built from the Go module proxy by scripts/toolchain/build.sh (v12.13.0).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components.errors import TwinlabError

# One loopback rule for every load tool; NotLoopbackError is re-exported for callers.
from scripts.checks.load.closed_loop import NotLoopbackError as NotLoopbackError
from scripts.checks.load.closed_loop import loopback_base_url
from scripts.checks.load.on_host import host_tool, run_generator, work_dir, write_host_file
from scripts.checks.load.pinning import format_cpu_list, host_cpus
from scripts.checks.targets.host import HostHandle, local_host

VEGETA_VERSION = "v12.13.0"
# vegeta gets this long past its duration plus one request timeout before it is killed.
KILL_GRACE_S = 10.0
REPORT_TIMEOUT_S = 60.0
# A run honours its rate when vegeta sent within this fraction of the planned rate and count.
RATE_TOLERANCE = 0.05
PERCENT = 100.0
NS_PER_MS = 1e6


class OpenLoopError(TwinlabError):
    """The open-loop run cannot start or gave no usable result; the message names the fix."""


class VegetaMissingError(OpenLoopError):
    pass


class VegetaOutputError(OpenLoopError):
    """vegeta's report is not what the parser expects."""


# --- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenLoopPlan:
    """One constant-rate run: rate_per_s requests each second for duration_s seconds."""

    rate_per_s: int
    duration_s: float = 10.0
    timeout_s: float = 5.0  # per request
    max_requests: int = 20_000  # rate_per_s * duration_s may not exceed this

    @property
    def planned_requests(self) -> int:
        return math.ceil(self.rate_per_s * self.duration_s)

    @property
    def max_workers(self) -> int:
        # At most rate x timeout requests are in flight: each ends by its timeout.
        return math.ceil(self.rate_per_s * self.timeout_s) + 1

    @property
    def deadline_s(self) -> float:
        """Wall time after which the run counts as overrun (before the kill grace)."""
        return self.duration_s + self.timeout_s

    def problems(self) -> list[str]:
        bounds: dict[str, tuple[float, float, float]] = {
            "rate_per_s": (self.rate_per_s, 1, 10_000),
            "duration_s": (self.duration_s, 0.5, 120),
            "timeout_s": (self.timeout_s, 0.1, 60),
            "max_requests": (self.max_requests, 1, 1_000_000),
        }
        found = [
            f"{name}={value:g} is outside {low:g}..{high:g}"
            for name, (value, low, high) in bounds.items()
            if not low <= value <= high
        ]
        if not found and self.planned_requests > self.max_requests:
            found.append(
                f"rate_per_s x duration_s = {self.planned_requests} requests exceeds "
                f"max_requests={self.max_requests}; lower the rate or the duration"
            )
        return found


def sustainable_rate_per_s(
    max_throughput_per_s: Mapping[str, float], *, fraction: float = 0.5, floor_per_s: int = 10
) -> int:
    """A rate every variant sustains: `fraction` of the slowest variant's closed-loop maximum
    (req/s from wrk), rounded down, at least `floor_per_s` (enough requests for percentiles).

    OpenLoopError when the slowest variant cannot even sustain the floor.
    """
    if not max_throughput_per_s:
        raise OpenLoopError("no closed-loop throughput given: run the load check first")
    if not 0 < fraction < 1:
        raise OpenLoopError(f"fraction {fraction}: must be between 0 and 1 (a share of the max)")
    slowest, slowest_rps = min(max_throughput_per_s.items(), key=lambda item: item[1])
    rate = max(floor_per_s, math.floor(fraction * slowest_rps))
    if rate >= slowest_rps:
        raise OpenLoopError(
            f"{slowest} sustains only {slowest_rps:.3g} req/s in the closed-loop run, not more "
            f"than the floor of {floor_per_s} req/s for the open-loop run; check why it is so slow"
        )
    return rate


# --- vegeta's output ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VegetaReport:
    """`vegeta report -type=json`: counts, rates and latency percentiles of one attack."""

    requests: int
    rate_per_s: float  # requests sent per second (the offered load vegeta achieved)
    throughput_per_s: float  # successful responses per second
    success_ratio: float  # share of responses with status 200-399
    duration_s: float  # first to last request sent
    wait_s: float  # last request sent to its response
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_min_ms: float
    status_codes: Mapping[str, int]  # "0" counts requests that got no response
    errors: tuple[str, ...]  # distinct error messages

    @property
    def failed_requests(self) -> int:
        return self.requests - round(self.success_ratio * self.requests)


def parse_vegeta_json(text: str) -> VegetaReport:
    """The metrics of `vegeta report -type=json` (durations there are in nanoseconds)."""
    try:
        data = json.loads(text)
        latencies = data["latencies"]
        return VegetaReport(
            requests=int(data["requests"]),
            rate_per_s=float(data["rate"]),
            throughput_per_s=float(data["throughput"]),
            success_ratio=float(data["success"]),
            duration_s=int(data["duration"]) / 1e9,
            wait_s=int(data["wait"]) / 1e9,
            latency_mean_ms=int(latencies["mean"]) / NS_PER_MS,
            latency_p50_ms=int(latencies["50th"]) / NS_PER_MS,
            latency_p90_ms=int(latencies["90th"]) / NS_PER_MS,
            latency_p95_ms=int(latencies["95th"]) / NS_PER_MS,
            latency_p99_ms=int(latencies["99th"]) / NS_PER_MS,
            latency_max_ms=int(latencies["max"]) / NS_PER_MS,
            latency_min_ms=int(latencies["min"]) / NS_PER_MS,
            status_codes={str(k): int(v) for k, v in (data.get("status_codes") or {}).items()},
            errors=tuple(str(e) for e in data.get("errors") or ()),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise VegetaOutputError(
            f"vegeta's JSON report is unreadable ({type(error).__name__}: {error}): "
            f"{text.strip()[:200]!r}"
        ) from None


def parse_hdrplot(text: str) -> list[tuple[float, float]]:
    """`vegeta report -type=hdrplot`: (quantile, latency in ms) rows, quantile ascending."""
    rows = []
    for line in text.splitlines()[1:]:  # the first line is the header
        fields = line.split()
        if len(fields) != 4:
            continue
        try:
            rows.append((float(fields[1]), float(fields[0])))
        except ValueError:
            continue
    if not rows:
        raise VegetaOutputError(f"vegeta's hdrplot report has no rows: {text.strip()[:200]!r}")
    return rows


def latency_at_ms(rows: list[tuple[float, float]], quantile: float) -> float:
    """The latency at `quantile`, interpolated between the hdrplot rows around it (vegeta's rows
    sit at 0.998828 and 0.999023, not at 0.999)."""
    previous: tuple[float, float] | None = None
    for row_quantile, latency_ms in rows:
        if row_quantile >= quantile:
            if previous is None or row_quantile == previous[0]:
                return latency_ms
            share = (quantile - previous[0]) / (row_quantile - previous[0])
            return previous[1] + share * (latency_ms - previous[1])
        previous = (row_quantile, latency_ms)
    raise VegetaOutputError(f"vegeta's hdrplot report stops below the quantile {quantile}")


# --- running vegeta -----------------------------------------------------------------------------


def find_vegeta() -> str:
    """vegeta from the toolchain bin dir (scripts/env.sh exports it), else from PATH."""
    toolchain_bin = os.environ.get("TWINLAB_TOOLCHAIN_BIN")
    if toolchain_bin and os.access(Path(toolchain_bin) / "vegeta", os.X_OK):
        return str(Path(toolchain_bin) / "vegeta")
    found = shutil.which("vegeta")
    if found is None:
        raise VegetaMissingError(
            "vegeta not found in $TWINLAB_TOOLCHAIN_BIN or on PATH; run scripts/setup.sh "
            f"(builds vegeta {VEGETA_VERSION} from the Go module proxy), then "
            "`source scripts/env.sh`"
        )
    return found


@dataclass(frozen=True)
class OpenLoopRun:
    """One open-loop run against one URL, with the generator's own cost."""

    url: str
    plan: OpenLoopPlan
    report: VegetaReport
    latency_p99_9_ms: float  # t-digest estimate, as vegeta's other percentiles
    generator_cpus: frozenset[int]  # the affinity actually in force for vegeta
    generator_cpu_s: float  # vegeta's user + system time (wait4)
    wall_s: float

    @property
    def generator_cpu_percent(self) -> float:
        """Percent of one CPU the generator used over the run's wall time."""
        return PERCENT * self.generator_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def rate_honoured(self) -> bool:
        """vegeta sent the planned requests at the planned rate (within RATE_TOLERANCE)."""
        planned = self.plan.rate_per_s
        return (
            abs(self.report.rate_per_s - planned) <= RATE_TOLERANCE * planned
            and self.report.requests >= (1 - RATE_TOLERANCE) * self.plan.planned_requests
        )

    @property
    def p99_9_resolved(self) -> bool:
        """At least 1,000 requests: below that p99.9 is the maximum, not a percentile."""
        return self.report.requests >= 1000

    def metrics(self) -> list[tuple[str, float | int, str]]:
        """(metric, value, unit) for samples; latencies in ms."""
        report = self.report
        return [
            ("offered_rate_per_s", self.plan.rate_per_s, "req/s"),
            ("achieved_rate_per_s", round(report.rate_per_s, 3), "req/s"),
            ("success_ratio", round(report.success_ratio, 5), "ratio"),
            ("failed_requests", report.failed_requests, "requests"),
            ("latency_p50_ms", round(report.latency_p50_ms, 3), "ms"),
            ("latency_p90_ms", round(report.latency_p90_ms, 3), "ms"),
            ("latency_p99_ms", round(report.latency_p99_ms, 3), "ms"),
            ("latency_p99_9_ms", round(self.latency_p99_9_ms, 3), "ms"),
            ("load_generator_cpu_percent", round(self.generator_cpu_percent, 1), "%"),
        ]


def attack_argv(
    vegeta: str, targets: Path, results: Path, plan: OpenLoopPlan, cpus: frozenset[int]
) -> list[str]:
    return [
        "taskset",
        "--cpu-list",
        format_cpu_list(cpus),
        *vegeta_attack(vegeta, targets, results, plan),
    ]


def vegeta_attack(vegeta: str, targets: Path, results: Path, plan: OpenLoopPlan) -> list[str]:
    return [
        vegeta,
        "attack",
        f"-targets={targets}",
        "-format=http",
        f"-rate={plan.rate_per_s}/1s",
        f"-duration={plan.duration_s:g}s",
        f"-timeout={plan.timeout_s:g}s",
        f"-max-workers={plan.max_workers}",
        "-max-body=0",  # bodies are not needed: less memory and CPU in the generator
        f"-output={results}",
    ]


def _affinity_after_exec(pid: int, program: str, wait_s: float = 2.0) -> frozenset[int]:
    """The CPU affinity of `pid` once taskset has exec'd `program` (empty if it already ended)."""
    comm = Path(program).name[:15]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip() == comm:
                return frozenset(os.sched_getaffinity(pid))
        except (OSError, ProcessLookupError):
            return frozenset()
        time.sleep(0.005)
    return frozenset()


def run_open_loop(
    url: str,
    plan: OpenLoopPlan,
    *,
    generator_cpus: frozenset[int],
    server_cpus: frozenset[int] | None = None,
    kill_grace_s: float = KILL_GRACE_S,
    host: HostHandle | None = None,
) -> OpenLoopRun:
    """One constant-rate run of `plan` against `url` from vegeta pinned to `generator_cpus`,
    on this machine or on the servers' remote `host` (over its SSH: load/on_host.py).

    Refuses, before starting anything: a URL that is not http:// on loopback, a plan out of
    bounds, generator CPUs the host lacks or that overlap `server_cpus`.
    """
    loopback_base_url(url)
    problems = plan.problems()
    if problems:
        raise OpenLoopError("invalid open-loop plan: " + "; ".join(problems))
    if not generator_cpus:
        raise OpenLoopError("no CPUs given for the load generator")
    available = host_cpus(host=host)
    missing = generator_cpus - available
    if missing:
        raise OpenLoopError(
            f"generator CPUs {format_cpu_list(missing)} are not available here "
            f"(this process may use {format_cpu_list(available)})"
        )
    if server_cpus is not None and generator_cpus & server_cpus:
        raise OpenLoopError(
            f"the load generator's CPUs {format_cpu_list(generator_cpus)} overlap the servers' "
            f"{format_cpu_list(server_cpus)}; choose them with pinning.choose_generator_cpus"
        )
    if host is not None and not host.is_local:
        return _run_open_loop_on_host(host, url, plan, generator_cpus, kill_grace_s)
    vegeta = find_vegeta()
    with tempfile.TemporaryDirectory(prefix="twinlab-vegeta-") as workdir:
        targets, results = Path(workdir) / "targets.txt", Path(workdir) / "results.bin"
        targets.write_text(f"GET {url}\n", encoding="utf-8")
        argv = attack_argv(vegeta, targets, results, plan, generator_cpus)
        kill_after_s = plan.deadline_s + kill_grace_s
        with tempfile.TemporaryFile(mode="w+") as stderr:
            started = time.monotonic()
            # A session of its own, so an overrun kills vegeta and anything it started.
            process = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )
            killer = threading.Timer(kill_after_s, os.killpg, (process.pid, signal.SIGKILL))
            killer.start()
            try:
                affinity = _affinity_after_exec(process.pid, vegeta)
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                killer.cancel()
            wall_s = time.monotonic() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            stderr.seek(0)
            errors = stderr.read().strip()
        if wall_s >= kill_after_s:
            raise OpenLoopError(
                f"vegeta ran past its {kill_after_s:g} s bound and was killed: {url}"
            )
        if process.returncode != 0:
            raise OpenLoopError(
                f"vegeta attack on {url} failed (exit {process.returncode}): {errors[-300:]}"
            )
        if affinity != generator_cpus:
            raise OpenLoopError(
                f"vegeta ran on CPUs {format_cpu_list(affinity) or '(unknown)'}, not on "
                f"{format_cpu_list(generator_cpus)} as asked: is taskset working?"
            )
        report = parse_vegeta_json(_report(vegeta, results, "json"))
        p99_9 = latency_at_ms(parse_hdrplot(_report(vegeta, results, "hdrplot")), 0.999)
    return _checked(url, plan, report, p99_9, affinity, usage.ru_utime + usage.ru_stime, wall_s)


def _checked(
    url: str,
    plan: OpenLoopPlan,
    report: VegetaReport,
    p99_9: float,
    affinity: frozenset[int],
    cpu_s: float,
    wall_s: float,
) -> OpenLoopRun:
    """The run, refused when no request succeeded."""
    if report.requests == 0 or report.success_ratio == 0:
        raise OpenLoopError(
            f"no successful HTTP response from {url} ({report.requests} requests, errors: "
            f"{'; '.join(report.errors[:3]) or 'none'}); check it with curl {url!r}"
        )
    return OpenLoopRun(
        url=url,
        plan=plan,
        report=report,
        latency_p99_9_ms=p99_9,
        generator_cpus=affinity,
        generator_cpu_s=cpu_s,
        wall_s=wall_s,
    )


def _run_open_loop_on_host(
    host: HostHandle,
    url: str,
    plan: OpenLoopPlan,
    generator_cpus: frozenset[int],
    kill_grace_s: float,
) -> OpenLoopRun:
    """run_open_loop with vegeta on the remote host: a static binary, copied there if needed."""
    vegeta = host_tool(host, "vegeta", find_vegeta())
    kill_after_s = plan.deadline_s + kill_grace_s
    with work_dir(host, "twinlab-vegeta-") as workdir:
        targets, results = Path(workdir) / "targets.txt", Path(workdir) / "results.bin"
        write_host_file(host, str(targets), f"GET {url}\n")
        run = run_generator(
            host, vegeta_attack(vegeta, targets, results, plan), kill_after_s, generator_cpus
        )
        if run.killed:
            raise OpenLoopError(
                f"vegeta ran past its {kill_after_s:g} s bound on {host} and was killed: {url}"
            )
        if run.rc != 0:
            raise OpenLoopError(
                f"vegeta attack on {url} from {host} failed (exit {run.rc}): {run.stderr[-300:]}"
            )
        if run.affinity != generator_cpus:
            raise OpenLoopError(
                f"vegeta ran on CPUs {format_cpu_list(run.affinity) or '(unknown)'} of {host}, "
                f"not on {format_cpu_list(generator_cpus)} as asked: is taskset working there?"
            )
        report = parse_vegeta_json(_report(vegeta, results, "json", host))
        p99_9 = latency_at_ms(parse_hdrplot(_report(vegeta, results, "hdrplot", host)), 0.999)
    return _checked(url, plan, report, p99_9, run.affinity, run.cpu_s, run.wall_s)


def _report(vegeta: str, results: Path, kind: str, host: HostHandle | None = None) -> str:
    """`vegeta report` of a run's results, where the run was (this machine by default)."""
    where = host or local_host()
    done = where.run([vegeta, "report", f"-type={kind}", str(results)], timeout_s=REPORT_TIMEOUT_S)
    if done.returncode != 0:
        raise OpenLoopError(f"vegeta report -type={kind} failed: {done.stderr.strip()[-300:]}")
    return done.stdout
