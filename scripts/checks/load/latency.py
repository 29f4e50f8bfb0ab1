"""P1 latency: every variant at the same offered rate, from vegeta's open-loop run.

After the closed-loop wrk runs (load.py) have measured each variant's maximum throughput, the
rate is set to one every variant sustains (openloop.sustainable_rate_per_s: half the slowest
variant's median req/s on the static endpoint), and each variant gets `repeats` constant-rate
runs at it, interleaved (container, VM, ..., container, VM, ...). The generator runs pinned to
the CPUs the servers do not use (pinning.choose_generator_cpus), after each container's
docker-proxy was put on its container's cpuset (pin_proxies); where the servers are still not
on one core set (an unpinned container or QEMU thread), the samples say so. The P1
verdict stays on throughput; these samples are its latency, reported beside it.

When no core is left for the generator (the servers may run on every CPU) or a variant cannot
sustain the floor rate, no run is made and one `open_loop_unavailable` sample per variant gives
the reason, so the report shows why the latency is missing instead of leaving it out quietly.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.errors import TwinlabError
from scripts.checks.load.closed_loop import HttpTarget
from scripts.checks.load.on_host import host_kernel_release
from scripts.checks.load.open_loop import OpenLoopPlan, run_open_loop, sustainable_rate_per_s
from scripts.checks.load.pinning import (
    choose_generator_cpus,
    container_cpuset,
    docker_proxy_pids,
    format_cpu_list,
    host_cpus,
    pin_process,
    process_threads,
    server_placement_problems,
)
from scripts.checks.probes.attack_surface import qemu_pids
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.host import HostHandle, local_host

# The closed-loop endpoint whose maximum sets the rate, and the path the open-loop run loads.
ENDPOINT = "static"
PATH = "/static"
REPEATS = 5  # the measurement standard's n >= 5 (stats.MIN_N)
DURATION_S = 3.0


@dataclass(frozen=True)
class Server:
    """One variant's app to load, and its instance on this host (None: named by hand)."""

    http: HttpTarget
    instance_name: str | None


RunStarted = Callable[[HttpTarget, int, int], None]  # target, rate, repeat


def server_cpus(server: Server, host: HostHandle | None = None) -> frozenset[int]:
    """The CPUs a variant's server may run on: its container's cpuset, or every thread of its
    QEMU process; all host CPUs when that cannot be told (unpinned, or named by hand)."""
    every = host_cpus(host=host)
    name = server.instance_name
    if name is None:
        return every
    if server.http.label.kind == "vm":
        cpus: set[int] = set()
        for pid in qemu_pids(name, host):
            for thread in process_threads(pid, host=host):
                cpus |= thread.cpus
        return frozenset(cpus) or every
    return container_cpuset(name, host=host) or every


def pin_proxies(servers: Sequence[Server], host: HostHandle | None = None) -> list[str]:
    """Put each container's docker-proxy (which carries every request from 127.0.0.1 to it) on
    that container's cpuset, as libvirt keeps QEMU's SLIRP thread on the VM's: both servers
    then carry their networking on their own core set. What was pinned, in words."""
    pinned = []
    for server in servers:
        if server.http.label.kind == "vm" or not server.instance_name:
            continue
        cpus = container_cpuset(server.instance_name, host=host)
        if cpus is None:
            continue  # an unpinned container: placement_notes says so
        for pid in docker_proxy_pids(_port(server.http.base_url), host=host):
            pin_process(pid, cpus, host)
            pinned.append(f"docker-proxy {pid} of {server.http.variant} on {format_cpu_list(cpus)}")
    return pinned


def generator_cpus_for(servers: Sequence[Server], host: HostHandle | None = None) -> frozenset[int]:
    """The CPUs the servers do not use, where every load generator (wrk, vegeta) runs;
    TwinlabError when no core is left for it."""
    servers_on = frozenset().union(*(server_cpus(server, host) for server in servers))
    return choose_generator_cpus(host_cpus(host=host), servers_on)


def placement_notes(servers: Sequence[Server], host: HostHandle | None = None) -> list[str]:
    """What keeps the servers off one core set (QEMU threads, docker-proxy), in words."""
    containers = [s for s in servers if s.http.label.kind != "vm" and s.instance_name]
    reference = (
        container_cpuset(containers[0].instance_name or "", host=host) if containers else None
    )
    qemu = [
        thread
        for server in servers
        if server.http.label.kind == "vm" and server.instance_name
        for pid in qemu_pids(server.instance_name, host)
        for thread in process_threads(pid, host=host)
    ]
    proxies = [
        thread
        for server in containers
        for pid in docker_proxy_pids(_port(server.http.base_url), host=host)
        for thread in process_threads(pid, qemu=False, host=host)
    ]
    return server_placement_problems(reference, qemu, proxies)


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/")[0])


def max_throughputs(closed_loop: Sequence[Sample]) -> dict[str, float]:
    """Each variant's median req/s on ENDPOINT in the closed-loop run."""
    by_variant: dict[str, list[float]] = {}
    for sample in closed_loop:
        if sample.metric == "requests_per_s" and sample.metadata.get("endpoint") == ENDPOINT:
            by_variant.setdefault(sample.variant, []).append(float(sample.value))
    return {variant: statistics.median(values) for variant, values in by_variant.items()}


def measure_latency(
    servers: Sequence[Server],
    closed_loop: Sequence[Sample],
    *,
    run_id: str,
    virt_mode: str,
    repeats: int = REPEATS,
    duration_s: float = DURATION_S,
    on_run: RunStarted | None = None,
    host: HostHandle | None = None,
) -> list[Sample]:
    """P1 latency samples (loop="open") for every server at one sustainable rate; vegeta runs
    where the servers are (on their remote `host` over SSH: load/on_host.py says why)."""
    base: dict[str, Value] = {
        "loop": "open",
        "endpoint": ENDPOINT,
        "path": PATH,
        "virt_mode": virt_mode,
        "host_kernel": host_kernel_release(host),
        "run_id": run_id,
    }
    try:
        rate = sustainable_rate_per_s(max_throughputs(closed_loop))
        servers_on = frozenset().union(*(server_cpus(server, host) for server in servers))
        generator = generator_cpus_for(servers, host)
    except TwinlabError as error:
        return [unavailable_sample(server, str(error), base) for server in servers]
    try:
        notes = placement_notes(servers, host)
    except TwinlabError as error:
        notes = [f"placement not readable: {error}"]
    plan = OpenLoopPlan(rate_per_s=rate, duration_s=duration_s)
    base |= {
        "generator_cpus": format_cpu_list(generator),
        "server_cpus": format_cpu_list(servers_on),
        "server_placement_problems": "; ".join(notes) or "none",
        "duration_s": duration_s,
        "max_workers": plan.max_workers,
    }
    samples: list[Sample] = []
    for repeat in range(repeats):
        for server in servers:
            if on_run is not None:
                on_run(server.http, rate, repeat)
            url = server.http.base_url.rstrip("/") + PATH
            run = run_open_loop(
                url, plan, generator_cpus=generator, server_cpus=servers_on, host=host
            )
            metadata: dict[str, Value] = {
                **server.http.label.metadata(),
                **base,
                "url": url,
                "repeat": repeat,
                "requests": run.report.requests,
                "rate_honoured": run.rate_honoured,
                "p99_9_resolved": run.p99_9_resolved,
                "wall_s": round(run.wall_s, 3),
                "load_avg_1m": round((host or local_host()).load_avg_1m(), 2),
            }
            label = server.http.label
            samples += [
                Sample(
                    metric,
                    value,
                    unit,
                    server.http.target,
                    label.name,
                    ("P1",),
                    metadata,
                    kind=label.kind,
                )
                for metric, value, unit in run.metrics()
            ]
    return samples


def unavailable_sample(server: Server, reason: str, base: dict[str, Value] | None = None) -> Sample:
    """The one P1 latency sample of a server that got no open-loop run, saying why."""
    base = base if base is not None else {"loop": "open", "endpoint": ENDPOINT, "path": PATH}
    label = server.http.label
    return Sample(
        "open_loop_unavailable",
        reason,
        "",
        server.http.target,
        label.name,
        ("P1",),
        {**label.metadata(), **base},
        kind=label.kind,
    )
