"""Open-loop load with vegeta: the plan's bounds, the rate both variants sustain, the parsers on
captured vegeta reports, and real runs of vegeta against an HTTP server on 127.0.0.1 that show
the rate is honoured (even by a server that cannot keep up), the percentiles come out, the
generator runs on the CPUs asked for, non-loopback is refused and the bound stops a run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.checks.load.open_loop import (
    NotLoopbackError,
    OpenLoopError,
    OpenLoopPlan,
    OpenLoopRun,
    VegetaMissingError,
    VegetaOutputError,
    latency_at_ms,
    parse_hdrplot,
    parse_vegeta_json,
    run_open_loop,
    sustainable_rate_per_s,
)
from scripts.checks.load.pinning import host_cpus

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data" / "vegeta"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def generator_cpu() -> frozenset[int]:
    """The highest CPU this process may use: on 2 cores, core 1 (the servers' side is 0)."""
    return frozenset({max(host_cpus())})


# --- plan and rate ------------------------------------------------------------------------------


def test_default_plan_is_within_bounds() -> None:
    plan = OpenLoopPlan(rate_per_s=100)
    assert plan.problems() == []
    assert (plan.planned_requests, plan.max_workers, plan.deadline_s) == (1000, 501, 15.0)


def test_plan_bounds_are_named() -> None:
    problems = " ".join(OpenLoopPlan(rate_per_s=0, duration_s=600, timeout_s=0).problems())
    assert "rate_per_s=0" in problems and "duration_s=600" in problems
    assert "timeout_s=0" in problems


def test_plan_over_the_request_bound_is_refused() -> None:
    plan = OpenLoopPlan(rate_per_s=500, duration_s=60, max_requests=20_000)
    assert plan.problems() == [
        "rate_per_s x duration_s = 30000 requests exceeds max_requests=20000; "
        "lower the rate or the duration"
    ]
    with pytest.raises(OpenLoopError, match="exceeds max_requests"):
        run_open_loop("http://127.0.0.1:1/", plan, generator_cpus=generator_cpu())


def test_rate_is_half_the_slower_variants_max() -> None:
    assert sustainable_rate_per_s({"container": 1310.0, "vm": 141.0}) == 70
    assert sustainable_rate_per_s({"container": 1310.0, "vm": 141.0}, fraction=0.25) == 35


def test_rate_has_a_floor() -> None:
    assert sustainable_rate_per_s({"container": 900.0, "vm": 14.0}) == 10
    assert sustainable_rate_per_s({"container": 900.0, "vm": 14.0}, floor_per_s=5) == 7


def test_rate_floor_a_variant_cannot_sustain_is_refused() -> None:
    with pytest.raises(OpenLoopError, match=r"vm sustains only 8 req/s"):
        sustainable_rate_per_s({"container": 900.0, "vm": 8.0})
    with pytest.raises(OpenLoopError, match="run the load check first"):
        sustainable_rate_per_s({})
    with pytest.raises(OpenLoopError, match="fraction"):
        sustainable_rate_per_s({"vm": 100.0}, fraction=1.5)


# --- parsers on captured vegeta reports ----------------------------------------------------------


def test_parse_json_report_of_a_clean_run() -> None:
    report = parse_vegeta_json(read("ok.json"))
    assert report.requests == 1000
    assert report.success_ratio == 1.0 and report.failed_requests == 0
    assert report.status_codes == {"200": 1000}
    assert report.errors == ()
    assert report.rate_per_s == pytest.approx(100.0, rel=0.01)
    assert (
        0
        < report.latency_min_ms
        <= report.latency_p50_ms
        <= report.latency_p90_ms
        <= report.latency_p95_ms
        <= report.latency_p99_ms
        <= report.latency_max_ms
    )
    assert report.duration_s == pytest.approx(9.99, abs=0.02)


def test_parse_json_report_of_a_server_whose_backlog_overflowed() -> None:
    # python -m http.server (listen backlog 5) at 100 req/s on a busy machine: some connects
    # were refused, some waited for a SYN retransmit (1 s); the tail shows it.
    report = parse_vegeta_json(read("backlog-overflow.json"))
    assert report.requests == 1000 and report.status_codes == {"0": 11, "200": 989}
    assert report.success_ratio == 0.989 and report.failed_requests == 11
    assert "connection refused" in report.errors[0]
    assert report.latency_p50_ms < 2 and report.latency_p99_ms > 1000
    rows = parse_hdrplot(read("backlog-overflow.hdrplot.txt"))
    assert report.latency_p99_ms < latency_at_ms(rows, 0.999) <= report.latency_max_ms


def test_parse_json_report_of_a_refused_port() -> None:
    report = parse_vegeta_json(read("refused.json"))
    assert report.requests == 20 and report.success_ratio == 0.0
    assert report.failed_requests == 20
    assert report.status_codes == {"0": 20}
    assert len(report.errors) == 1 and "connection refused" in report.errors[0]


def test_parse_json_report_of_server_errors() -> None:
    report = parse_vegeta_json(read("status-500.json"))
    assert report.status_codes == {"500": 20}
    assert report.success_ratio == 0.0
    assert report.errors == ("500 Internal Server Error",)


@pytest.mark.parametrize("text", ["", "not json", '{"requests": 3}', "[]"])
def test_bad_json_report_is_named(text: str) -> None:
    with pytest.raises(VegetaOutputError, match="JSON report is unreadable"):
        parse_vegeta_json(text)


def test_parse_hdrplot_and_read_p99_9() -> None:
    rows = parse_hdrplot(read("ok.hdrplot.txt"))
    assert rows[0][0] == 0.0 and rows[-1][0] == 1.0
    assert [q for q, _ in rows] == sorted(q for q, _ in rows)
    report = parse_vegeta_json(read("ok.json"))
    p99_9 = latency_at_ms(rows, 0.999)
    assert report.latency_p99_ms <= p99_9 <= report.latency_max_ms
    assert latency_at_ms(rows, 0.5) == pytest.approx(report.latency_p50_ms, rel=1e-3)


def test_hdrplot_without_rows_is_named() -> None:
    with pytest.raises(VegetaOutputError, match="no rows"):
        parse_hdrplot("Value(ms)  Percentile  TotalCount  1/(1-Percentile)\n")
    with pytest.raises(VegetaOutputError, match="stops below"):
        latency_at_ms([(0.0, 1.0), (0.5, 2.0)], 0.999)


def test_latency_between_rows_is_interpolated() -> None:
    rows = [(0.0, 1.0), (0.99, 10.0), (0.9990, 20.0), (0.9995, 30.0), (1.0, 40.0)]
    assert latency_at_ms(rows, 0.999) == 20.0
    assert latency_at_ms(rows, 0.99925) == pytest.approx(25.0)
    assert latency_at_ms(rows, 0.0) == 1.0


# --- refusals before anything starts -------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://10.0.2.15:8080/", "http://localhost:8080/", "https://127.0.0.1:8443/"]
)
def test_non_loopback_is_refused(url: str) -> None:
    with pytest.raises(NotLoopbackError, match="loopback only"):
        run_open_loop(url, OpenLoopPlan(rate_per_s=10), generator_cpus=generator_cpu())


def test_generator_on_the_servers_cpus_is_refused() -> None:
    cpus = generator_cpu()
    with pytest.raises(OpenLoopError, match="overlap the servers'"):
        run_open_loop(
            "http://127.0.0.1:1/", OpenLoopPlan(10), generator_cpus=cpus, server_cpus=cpus
        )


def test_generator_cpus_the_host_lacks_are_refused() -> None:
    with pytest.raises(OpenLoopError, match="not available here"):
        run_open_loop("http://127.0.0.1:1/", OpenLoopPlan(10), generator_cpus=frozenset({4096}))


def test_missing_vegeta_names_the_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TWINLAB_TOOLCHAIN_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VegetaMissingError, match=r"scripts/setup\.sh"):
        run_open_loop("http://127.0.0.1:1/", OpenLoopPlan(10), generator_cpus=generator_cpu())


def test_an_overrunning_generator_is_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stub = tmp_path / "vegeta"
    stub.write_text("#!/bin/sh\nexec sleep 30\n", encoding="utf-8")
    stub.chmod(0o755)
    monkeypatch.setenv("TWINLAB_TOOLCHAIN_BIN", str(tmp_path))
    plan = OpenLoopPlan(rate_per_s=10, duration_s=0.5, timeout_s=0.1)
    started = time.monotonic()
    with pytest.raises(OpenLoopError, match=r"ran past its 1\.1 s bound and was killed"):
        run_open_loop("http://127.0.0.1:1/", plan, generator_cpus=generator_cpu(), kill_grace_s=0.5)
    assert time.monotonic() - started < 10


# --- real vegeta against a local server ----------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(0.03)
        status = 500 if self.path.startswith("/fail") else 200
        body = b"ok\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def serve(server: HTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app() -> Iterator[str]:
    """A threaded python http.server on 127.0.0.1 that answers at once."""
    yield from serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


class SerialServer(HTTPServer):
    request_queue_size = 256  # queued connections wait instead of being refused


@pytest.fixture
def serial_app() -> Iterator[str]:
    """One request at a time: /slow takes 30 ms, so it serves at most about 33 req/s."""
    yield from serve(SerialServer(("127.0.0.1", 0), Handler))


def test_live_run_honours_the_rate_and_reports_percentiles(app: str) -> None:
    plan = OpenLoopPlan(rate_per_s=50, duration_s=2.0, timeout_s=2.0)
    cpus = generator_cpu()
    run = run_open_loop(f"{app}/static", plan, generator_cpus=cpus)
    report = run.report
    assert run.rate_honoured, (report.rate_per_s, report.requests)
    assert report.requests == plan.planned_requests == 100
    assert report.rate_per_s == pytest.approx(50, rel=0.05)
    assert report.success_ratio == 1.0 and report.status_codes == {"200": 100}
    assert (
        0
        < report.latency_p50_ms
        <= report.latency_p90_ms
        <= report.latency_p99_ms
        <= run.latency_p99_9_ms
        <= report.latency_max_ms
    )
    assert not run.p99_9_resolved  # 100 requests: p99.9 is the maximum
    assert run.generator_cpus == cpus
    assert 0 < run.generator_cpu_s < run.wall_s
    assert 0 < run.generator_cpu_percent < 100
    assert plan.duration_s <= run.wall_s < plan.deadline_s
    names = [name for name, _, _ in run.metrics()]
    assert "latency_p99_9_ms" in names and "load_generator_cpu_percent" in names


def test_live_run_keeps_its_schedule_when_the_server_falls_behind(serial_app: str) -> None:
    # Offered 50 req/s to a server that manages about 33: an open-loop generator still sends
    # 50 per second (a closed-loop one would slow down to 33), and the queue shows in the tail.
    plan = OpenLoopPlan(rate_per_s=50, duration_s=2.0, timeout_s=5.0)
    run = run_open_loop(f"{serial_app}/slow", plan, generator_cpus=generator_cpu())
    assert run.rate_honoured, (run.report.rate_per_s, run.report.requests)
    assert run.report.success_ratio == 1.0
    assert run.report.latency_p50_ms >= 30
    # 100 requests at 30 ms each take 3 s; sent over 2 s, the last ones wait about a second.
    assert run.report.latency_p99_ms > 500
    assert run.report.throughput_per_s < 40


def test_live_run_counts_server_errors(app: str) -> None:
    plan = OpenLoopPlan(rate_per_s=20, duration_s=1.0, timeout_s=2.0)
    with pytest.raises(OpenLoopError, match="no successful HTTP response"):
        run_open_loop(f"{app}/fail", plan, generator_cpus=generator_cpu())


def test_live_run_stops_at_its_duration(app: str) -> None:
    plan = OpenLoopPlan(rate_per_s=40, duration_s=1.0, timeout_s=1.0)
    started = time.monotonic()
    run = run_open_loop(f"{app}/static", plan, generator_cpus=generator_cpu())
    assert time.monotonic() - started < plan.deadline_s + 5  # reports included
    assert run.report.requests <= plan.planned_requests
    assert run.wall_s < plan.deadline_s


def test_cpu_percent_accounts_for_wall_time() -> None:
    # A generator that used 0.5 s of CPU over 2 s used 25 % of one CPU.
    run = OpenLoopRun(
        url="http://127.0.0.1:1/",
        plan=OpenLoopPlan(10),
        report=parse_vegeta_json(read("ok.json")),
        latency_p99_9_ms=1.0,
        generator_cpus=frozenset({1}),
        generator_cpu_s=0.5,
        wall_s=2.0,
    )
    assert run.generator_cpu_percent == 25.0
