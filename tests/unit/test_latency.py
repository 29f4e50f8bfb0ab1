"""P1 latency wiring: the rate from the closed-loop samples, the reasons when no open-loop run
can be made, and a real vegeta run against an HTTP server on 127.0.0.1 that yields n samples
per variant tagged loop="open"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.checks.load import latency
from scripts.checks.load.closed_loop import HttpTarget
from scripts.checks.load.latency import Server, max_throughputs, measure_latency
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
