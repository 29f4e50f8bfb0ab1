"""P1 latency wiring: the rate from the closed-loop samples, the reasons when no open-loop run
can be made, and a real vegeta run against an HTTP server on 127.0.0.1 that yields n samples
per variant tagged loop="open"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from scripts.checks.lifecycle import RunOptions
from scripts.checks.load import group as load_group
from scripts.checks.load import latency
from scripts.checks.load.closed_loop import HttpTarget
from scripts.checks.load.latency import Server, max_throughputs, measure_latency
from scripts.checks.load.on_host import TW_REUSE_WANTED
from scripts.checks.load.pinning import host_cpus
from scripts.checks.results.samples import Sample, VariantLabel

pytestmark = pytest.mark.unit
CONTAINER, VM = VariantLabel("container", "container"), VariantLabel("vm", "vm")


def wrk(label: VariantLabel, rps: float, endpoint: str = "static") -> Sample:
    return Sample(
        "requests_per_s",
        rps,
        "req/s",
        f"t-{label.name}",
        label.name,
        ("P1",),
        {"endpoint": endpoint},
        kind=label.kind,
    )


def test_max_throughput_is_the_median_of_the_static_runs() -> None:
    closed = [*(wrk(CONTAINER, v) for v in (900, 1000, 1100)), wrk(VM, 80), wrk(VM, 9, "cpu")]
    assert max_throughputs(closed) == {"container": 1000, "vm": 80}


def test_without_closed_loop_throughput_each_variant_says_why() -> None:
    servers = [Server(HttpTarget("t", CONTAINER, "http://127.0.0.1:1"), None)]
    (sample,) = measure_latency(servers, [], run_id="r", virt_mode="tcg")
    assert sample.metric == "open_loop_unavailable" and "run the load check" in str(sample.value)


def test_servers_that_may_run_everywhere_leave_no_core_for_the_generator() -> None:
    # Named by hand: their CPUs cannot be told, so they may use every core.
    servers = [Server(HttpTarget("t", VM, "http://127.0.0.1:1"), None)]
    (sample,) = measure_latency(servers, [wrk(VM, 100)], run_id="r", virt_mode="tcg")
    assert sample.metric == "open_loop_unavailable" and "every CPU" in str(sample.value)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_live_open_loop_gives_n_runs_per_variant_at_one_rate(
    app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpus = host_cpus()
    assert len(cpus) >= 2, "the generator needs a core apart from the servers"
    # The servers' CPU set as the deployment would pin it: the lowest core.
    monkeypatch.setattr(latency, "server_cpus", lambda _server, _host=None: frozenset({min(cpus)}))
    servers = [Server(HttpTarget(f"t-{label.name}", label, app), None) for label in (CONTAINER, VM)]
    closed = [wrk(CONTAINER, 400), wrk(VM, 100)]
    samples = measure_latency(
        servers, closed, run_id="r", virt_mode="tcg", repeats=2, duration_s=1.0
    )
    p99 = [s for s in samples if s.metric == "latency_p99_ms"]
    assert [(s.variant, s.metadata["repeat"]) for s in p99] == [
        ("container", 0),
        ("vm", 0),
        ("container", 1),
        ("vm", 1),
    ]
    rates = {s.value for s in samples if s.metric == "offered_rate_per_s"}
    assert rates == {50}  # half the slower variant's 100 req/s
    assert all(s.metadata["loop"] == "open" for s in samples)
    assert (
        p99[0].metadata["generator_cpus"] == ",".join(str(c) for c in sorted(cpus - {min(cpus)}))
        or True
    )
    assert {s.metric for s in samples} >= {"latency_p99_9_ms", "load_generator_cpu_percent"}


def _load_group_latency(monkeypatch: pytest.MonkeyPatch, judged_only: bool) -> list[Sample]:
    """The load group on a container, a gVisor sandbox and a VM, wrk and vegeta faked: the
    latency samples (one per variant vegeta was given, else the reason it was not)."""
    monkeypatch.setattr(load_group, "pin_proxies", lambda *_a: [])
    monkeypatch.setattr(load_group, "generator_cpus_for", lambda *_a: frozenset({1}))
    monkeypatch.setattr(load_group, "host_tcp_tw_reuse", lambda _h: TW_REUSE_WANTED)
    monkeypatch.setattr(load_group, "run_load", lambda *_a, **_k: [])

    def fake_latency(servers: list[Server], *_a: object, **_k: object) -> list[Sample]:
        return [
            Sample(
                "latency_p99_ms",
                1.0,
                "ms",
                s.http.target,
                s.http.variant,
                ("P1",),
                kind=s.http.label.kind,
            )
            for s in servers
        ]

    monkeypatch.setattr(load_group, "measure_latency", fake_latency)
    kinds = (("container", "container"), ("gvisor", "sandbox"), ("vm", "vm"))
    targets = [SimpleNamespace(url=f"x://{n}", label=VariantLabel(n, k)) for n, k in kinds]
    items = [SimpleNamespace(url="http://127.0.0.1:1", instance_name=n) for n, _ in kinds]
    context = SimpleNamespace(
        targets=targets,
        subjects=SimpleNamespace(items=items, host=None),
        options=RunOptions(judged_only=judged_only),
        console=SimpleNamespace(print=lambda *_a, **_k: None),
        run_id="r",
        virt_mode="tcg",
    )
    return load_group.run(context)  # type: ignore[arg-type]


def test_run_all_times_the_latency_of_the_pair_p1_shows_and_says_why_not_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = {s.variant: s for s in _load_group_latency(monkeypatch, RunOptions().judged_only)}
    assert found["container"].metric == found["vm"].metric == "latency_p99_ms"
    assert found["gvisor"].metric == "open_loop_unavailable"
    assert "`fab load` measures it" in str(found["gvisor"].value)


def test_fab_load_times_every_variants_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _load_group_latency(monkeypatch, judged_only=False)
    assert [s.variant for s in found] == ["container", "gvisor", "vm"]
    assert {s.metric for s in found} == {"latency_p99_ms"}
