"""P1 load: wrk (Debian's package) on the host against each target's HTTP URL on loopback.

Bounded in time and load: LoadPlan limits duration, connections, threads and the request
timeout, and wrk is killed if it overruns. Per endpoint: one warm-up run per target
(discarded), then `repeats` measured runs, interleaving the targets so a drift of the machine's
load touches both alike. wrk's own CPU time (user + sys from wait4) over wall time is reported
as load_generator_cpu_percent (percent of one CPU; up to threads * 100), because on a 2-core
machine the generator's cost matters. In a run (load/group.py) wrk runs pinned to the cores the
servers do not use, the same as vegeta, and each container's docker-proxy is first put on its
container's cpuset (latency.pin_proxies), as libvirt keeps QEMU's networking on the VM's.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from components.errors import TwinlabError
from scripts.checks.load.on_host import (
    host_kernel_release,
    host_tcp_tw_reuse,
    host_tool,
    run_generator,
    work_dir,
    write_host_file,
)
from scripts.checks.parsers.wrk import WrkOutputError, WrkResult, parse_wrk_output
from scripts.checks.results.samples import Sample, Value, VariantLabel
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.target import Target

# Prints wrk's summary as one JSON line (see parsers.wrk); durations in microseconds.
SUMMARY_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'TWINLAB_WRK {"duration_us":%d,"requests":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"latency_mean_us":%.1f,"latency_max_us":%d,"latency_p50_us":%d,' ..
    '"latency_p90_us":%d,"latency_p99_us":%d}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99)))
end
"""
ENDPOINT_PATHS = {"static": "/static", "cpu": "/cpu?n={cpu_n}", "io": "/io?kib={io_kib}"}
# wrk gets this long past its duration and request timeout before it is killed.
WRK_GRACE_S = 10.0
PERCENT = 100.0


class LoadError(TwinlabError):
    """The load run cannot start or gave no usable result; the message names the fix."""


class WrkMissingError(LoadError):
    pass


class NotLoopbackError(LoadError):
    pass


@dataclass(frozen=True)
class LoadPlan:
    duration_s: int = 10
    warmup_s: int = 2
    connections: int = 8
    threads: int = 2
    timeout_s: int = 5
    repeats: int = 3
    cpu_n: int = 200
    io_kib: int = 64
    endpoints: tuple[str, ...] = ("static", "cpu", "io")

    def problems(self) -> list[str]:
        bounds = {
            "duration_s": (self.duration_s, 1, 120),
            "warmup_s": (self.warmup_s, 0, 30),
            "connections": (self.connections, 1, 256),
            "threads": (self.threads, 1, min(16, self.connections)),
            "timeout_s": (self.timeout_s, 1, 60),
            "repeats": (self.repeats, 1, 20),
            "cpu_n": (self.cpu_n, 1, 100_000),
            "io_kib": (self.io_kib, 1, 16_384),
        }
        found = [
            f"{name}={value} is outside {low}..{high}"
            for name, (value, low, high) in bounds.items()
            if not low <= value <= high
        ]
        unknown = [name for name in self.endpoints if name not in ENDPOINT_PATHS]
        if unknown or not self.endpoints:
            found.append(f"endpoints {list(self.endpoints)}: choose from {list(ENDPOINT_PATHS)}")
        return found

    def path(self, endpoint: str) -> str:
        return ENDPOINT_PATHS[endpoint].format(cpu_n=self.cpu_n, io_kib=self.io_kib)


@dataclass(frozen=True)
class HttpTarget:
    """Where load goes: the target it measures (URL and variant) and the app's loopback URL."""

    target: str
    label: VariantLabel
    base_url: str

    @classmethod
    def of(cls, target: Target, base_url: str) -> HttpTarget:
        return cls(target.url, target.label, base_url)

    @property
    def variant(self) -> str:
        return self.label.name


def loopback_base_url(url: str) -> str:
    """`url` without a trailing slash if it is http:// on a loopback IP; NotLoopbackError else."""
    parts = urlsplit(url)
    fix = "publish the app on 127.0.0.1 and point the load at http://127.0.0.1:PORT"
    try:
        loopback = parts.hostname is not None and ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise NotLoopbackError(f"refusing to load {url!r}: load goes to loopback only; {fix}")
    return url.rstrip("/")


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkMissingError("wrk not found on PATH; run scripts/setup.sh (installs Debian's wrk)")
    return wrk


def wrk_argv(
    wrk: str,
    script: Path,
    url: str,
    plan: LoadPlan,
    duration_s: int,
    cpus: frozenset[int] | None = None,
) -> list[str]:
    """wrk's command line; on `cpus` (taskset) when given, the cores apart from the servers."""
    pin = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus)))] if cpus else []
    return [
        *pin,
        wrk,
        f"--threads={plan.threads}",
        f"--connections={plan.connections}",
        f"--duration={duration_s}s",
        f"--timeout={plan.timeout_s}s",
        "--latency",
        f"--script={script}",
        url,
    ]


@dataclass(frozen=True)
class WrkRun:
    result: WrkResult
    cpu_s: float  # wrk's user + system time
    wall_s: float

    @property
    def cpu_percent(self) -> float:
        return PERCENT * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def run_wrk(argv: list[str], deadline_s: float) -> WrkRun:
    """Run wrk, measuring its CPU time with wait4; kill it if it runs past deadline_s."""
    with tempfile.TemporaryFile(mode="w+") as output:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        killer = threading.Timer(deadline_s, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall_s = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    if wall_s >= deadline_s:
        raise LoadError(f"wrk ran past its {deadline_s:g} s bound and was killed: {argv[-1]}")
    try:
        result = parse_wrk_output(text)
    except WrkOutputError as error:
        raise LoadError(f"wrk against {argv[-1]} failed: {error}; is the app up?") from None
    return WrkRun(result, usage.ru_utime + usage.ru_stime, wall_s)


def run_wrk_on_host(
    host: HostHandle, argv: list[str], deadline_s: float, cpus: frozenset[int] | None = None
) -> WrkRun:
    """wrk run on a remote host itself (load/on_host.py says why), pinned to `cpus` there, its
    CPU from `times`."""
    run = run_generator(host, argv, deadline_s, cpus)
    if run.killed:
        raise LoadError(f"wrk ran past its {deadline_s:g} s bound on {host} and was killed")
    try:
        result = parse_wrk_output(run.stdout + run.stderr)
    except WrkOutputError as error:
        raise LoadError(
            f"wrk on {host} against {argv[-1]} failed: {error}; is the app up?"
        ) from None
    return WrkRun(result, run.cpu_s, run.wall_s)


def samples_of(run: WrkRun, http: HttpTarget, metadata: dict[str, Value]) -> list[Sample]:
    result = run.result
    values: list[tuple[str, Value, str]] = [
        ("requests_per_s", round(result.requests_per_s, 2), "req/s"),
        ("latency_p50_ms", round(result.latency_p50_ms, 3), "ms"),
        ("latency_p90_ms", round(result.latency_p90_ms, 3), "ms"),
        ("latency_p99_ms", round(result.latency_p99_ms, 3), "ms"),
        ("errors", result.errors, "requests"),
        ("load_generator_cpu_percent", round(run.cpu_percent, 1), "%"),
    ]
    label = http.label
    tagged = {**label.metadata(), **metadata}
    return [
        Sample(metric, value, unit, http.target, label.name, ("P1",), tagged, kind=label.kind)
        for metric, value, unit in values
    ]


RunStarted = Callable[[HttpTarget, str, int], None]  # target, endpoint, repeat (-1: warm-up)


def run_load(
    targets: Sequence[HttpTarget],
    plan: LoadPlan,
    *,
    run_id: str,
    virt_mode: str,
    on_run: RunStarted | None = None,
    generator_cpus: frozenset[int] | None = None,
    host: HostHandle | None = None,
) -> list[Sample]:
    """P1 samples: for each endpoint, repeat and target, one sample per load metric; wrk on
    `generator_cpus` when given (None: wherever the scheduler puts it, and the samples say so),
    where the targets' app ports are: on this machine, or on their remote `host` over SSH."""
    problems = plan.problems()
    if problems:
        raise LoadError("invalid load plan: " + "; ".join(problems))
    base_urls = {http.target: loopback_base_url(http.base_url) for http in targets}
    remote = host if host is not None and not host.is_local else None
    wrk = find_wrk() if remote is None else host_tool(remote, "wrk")
    samples: list[Sample] = []
    with work_dir(remote, "twinlab-wrk-") as workdir:
        script = Path(workdir) / "summary.lua"
        if remote is None:
            script.write_text(SUMMARY_LUA, encoding="utf-8")
        else:
            write_host_file(remote, str(script), SUMMARY_LUA)

        def measure(http: HttpTarget, endpoint: str, repeat: int, duration_s: int) -> WrkRun:
            if on_run is not None:
                on_run(http, endpoint, repeat)
            url = base_urls[http.target] + plan.path(endpoint)
            deadline_s = duration_s + plan.timeout_s + WRK_GRACE_S
            if remote is None:
                argv = wrk_argv(wrk, script, url, plan, duration_s, generator_cpus)
                run = run_wrk(argv, deadline_s)
            else:  # pinned by the wrapper on the host
                argv = wrk_argv(wrk, script, url, plan, duration_s)
                run = run_wrk_on_host(remote, argv, deadline_s, generator_cpus)
            # A warm-up shorter than one slow response (a VM's CPU endpoint under TCG on a busy
            # host) completes none: that is no failure. Only error answers are, or a measured
            # run without a single answer.
            answered_nothing = run.result.requests == 0 and repeat >= 0
            if answered_nothing or run.result.status_errors == run.result.requests > 0:
                raise LoadError(
                    f"{http.target}: no successful HTTP response from {url} "
                    f"({run.result.requests} responses); check it with curl {url!r}"
                )
            return run

        kernel_release = host_kernel_release(remote)
        tw_reuse = host_tcp_tw_reuse(remote)
        for endpoint in plan.endpoints:
            if plan.warmup_s > 0:
                for http in targets:
                    measure(http, endpoint, -1, plan.warmup_s)
            for repeat in range(plan.repeats):
                for http in targets:
                    run = measure(http, endpoint, repeat, plan.duration_s)
                    metadata: dict[str, Value] = {
                        "endpoint": endpoint,
                        "path": plan.path(endpoint),
                        "url": base_urls[http.target] + plan.path(endpoint),
                        "repeat": repeat,
                        "duration_s": plan.duration_s,
                        "warmup_s": plan.warmup_s,
                        "connections": plan.connections,
                        "threads": plan.threads,
                        "timeout_s": plan.timeout_s,
                        "requests": run.result.requests,
                        "wall_s": round(run.wall_s, 3),
                        "generator_cpus": ",".join(map(str, sorted(generator_cpus)))
                        if generator_cpus
                        else "unpinned",
                        "virt_mode": virt_mode,
                        "host_kernel": kernel_release,
                        "host_tcp_tw_reuse": tw_reuse,
                        "run_id": run_id,
                    }
                    samples.extend(samples_of(run, http, metadata))
    return samples
