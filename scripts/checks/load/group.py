"""The load check group (P1): closed-loop throughput with wrk, then open-loop latency with
vegeta at one rate for the primary container and VM (`fab load`: for every variant)."""

from __future__ import annotations

from components.errors import TwinlabError
from scripts.checks.lifecycle import RunContext
from scripts.checks.load.closed_loop import HttpTarget, run_load
from scripts.checks.load.latency import (
    Server,
    generator_cpus_for,
    measure_latency,
    pin_proxies,
    unavailable_sample,
)
from scripts.checks.load.on_host import TW_REUSE_WANTED, host_tcp_tw_reuse
from scripts.checks.results.samples import Sample, textbook_pair


def run(context: RunContext) -> list[Sample]:
    options, console = context.options, context.console
    with_url = [
        (target, subject)
        for target, subject in zip(context.targets, context.subjects.items, strict=True)
        if subject.url
    ]
    if not with_url:
        raise TwinlabError("load: no target has an app URL (give --http with --target)")
    https = [HttpTarget.of(target, subject.url) for target, subject in with_url if subject.url]
    servers = [
        Server(http, subject.instance_name)
        for http, (_, subject) in zip(https, with_url, strict=True)
    ]
    host = context.subjects.host  # the generators run there (load/on_host.py says why)
    # A fair race: each server's networking on its own core set, the generator on the rest.
    for pinned in pin_proxies(servers, host):
        console.print(f"  pinned {pinned}")
    try:
        generator: frozenset[int] | None = generator_cpus_for(servers, host)
    except TwinlabError as error:
        generator = None
        console.print(f"  [yellow]wrk unpinned:[/] {error}")
    console.print(f"[bold]load[/] (P1): {options.load_plan}")
    tw_reuse = host_tcp_tw_reuse(host)
    if tw_reuse != TW_REUSE_WANTED:
        console.print(
            f"  [yellow]net.ipv4.tcp_tw_reuse = {tw_reuse} on the servers' host:[/] under load "
            "the containers' port proxy can run out of ephemeral ports and their throughput "
            f"fall 3-4x for tens of seconds; scripts/setup.sh sets it to {TW_REUSE_WANTED}"
        )
    closed = run_load(
        https,
        options.load_plan,
        run_id=context.run_id,
        virt_mode=context.virt_mode,
        on_run=lambda http, endpoint, repeat: console.print(
            f"  wrk {http.variant} {endpoint} " + ("warm-up" if repeat < 0 else f"run {repeat + 1}")
        ),
        generator_cpus=generator,
        host=host,
    )
    wanted = textbook_pair(server.http.label for server in servers)
    timed = [s for s in servers if not options.judged_only or s.http.label.name in wanted]
    left_out = [
        unavailable_sample(
            server,
            "P1 judges throughput and shows the primary container's and VM's latency, so "
            "this variant's was left out of run-all (about 15 s); `fab load` measures it",
        )
        for server in servers
        if server not in timed
    ]
    names = ", ".join(server.http.variant for server in timed)
    console.print(f"[bold]latency[/] (P1): open loop (vegeta) at one rate for {names}")
    opened = left_out + measure_latency(
        timed,
        closed,
        run_id=context.run_id,
        virt_mode=context.virt_mode,
        repeats=options.open_loop_repeats,
        on_run=lambda http, rate, repeat: console.print(
            f"  vegeta {http.variant} {rate} req/s run {repeat + 1}"
        ),
        host=host,
    )
    for sample in opened:
        if sample.metric == "open_loop_unavailable":
            console.print(f"  [yellow]no open-loop run for {sample.variant}:[/] {sample.value}")
    return closed + opened
