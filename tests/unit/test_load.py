"""Load plan bounds, the loopback rule, and wrk runs: a stub wrk replaying captured output, and
one short real wrk run against an in-process HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.checks.load.closed_loop import (
    HttpTarget,
    LoadError,
    LoadPlan,
    NotLoopbackError,
    WrkMissingError,
    loopback_base_url,
    run_load,
    run_wrk,
)
from scripts.checks.load.on_host import TW_REUSE_PATH, TW_REUSE_WANTED, host_tcp_tw_reuse
from scripts.checks.results.samples import HOST_LABEL, VariantLabel
from scripts.checks.targets.host import HostHandle, SshAccess

pytestmark = pytest.mark.unit
CONTAINER, VM = VariantLabel("container", "container"), VariantLabel("vm", "vm")
WRK_DATA = Path(__file__).resolve().parent / "data" / "wrk"
LOAD_METRICS = [
    "requests_per_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "errors",
    "load_generator_cpu_percent",
]


def stub_wrk(directory: Path, capture: str, seconds: float = 0.0) -> Path:
    """An executable named wrk that prints a captured wrk output (after burning some CPU)."""
    directory.mkdir(parents=True, exist_ok=True)
    stub = directory / "wrk"
    burn = f"end=$(( $(date +%s%N) + {int(seconds * 1e9)} )); "
    burn += 'while [ "$(date +%s%N)" -lt "$end" ]; do :; done; '
    stub.write_text(f"#!/bin/sh\n{burn}cat {WRK_DATA / capture}\n", encoding="utf-8")
    stub.chmod(0o755)
    return stub


def test_default_plan_is_within_bounds_and_bad_values_are_named() -> None:
    assert LoadPlan().problems() == []
    bad = LoadPlan(duration_s=600, connections=0, endpoints=("static", "disk"))
    problems = " ".join(bad.problems())
    assert "duration_s=600" in problems and "connections=0" in problems and "disk" in problems


def test_plan_paths() -> None:
    plan = LoadPlan(cpu_n=50, io_kib=8)
    assert [plan.path(e) for e in plan.endpoints] == ["/static", "/cpu?n=50", "/io?kib=8"]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/", "http://127.0.0.2:18080", "http://[::1]:80", "http://127.0.0.1"],
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert not loopback_base_url(url).endswith("/")


@pytest.mark.parametrize(
    "url",
    ["http://10.0.2.15:8080", "http://localhost:8080", "https://127.0.0.1:8443", "http://8.8.8.8"],
)
def test_other_addresses_are_refused(url: str) -> None:
    with pytest.raises(NotLoopbackError, match="loopback only"):
        loopback_base_url(url)


def test_missing_wrk_names_the_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    target = HttpTarget("docker://app", CONTAINER, "http://127.0.0.1:18080")
    with pytest.raises(WrkMissingError, match=r"scripts/setup\.sh"):
        run_load([target], LoadPlan(), run_id="r", virt_mode="tcg")


def test_non_loopback_is_refused_before_any_load(tmp_path: Path) -> None:
    target = HttpTarget("ssh://twin@host:22", VM, "http://192.168.1.5:8080")
    with pytest.raises(NotLoopbackError):
        run_load([target], LoadPlan(), run_id="r", virt_mode="tcg")


def test_run_wrk_measures_the_generators_cpu(tmp_path: Path) -> None:
    stub = stub_wrk(tmp_path, "cpu-container.txt", seconds=0.3)
    run = run_wrk([str(stub), "http://127.0.0.1:1/cpu"], deadline_s=10)
    assert run.result.requests == 1438
    assert run.wall_s >= 0.3
    # The stub burns CPU for most of its wall time (less when the machine is busy).
    assert 0.0 < run.cpu_s <= run.wall_s + 0.05
    assert run.cpu_percent == pytest.approx(100 * run.cpu_s / run.wall_s)


def test_run_wrk_kills_an_overrun(tmp_path: Path) -> None:
    stub = stub_wrk(tmp_path, "cpu-container.txt", seconds=5)
    with pytest.raises(LoadError, match=r"past its 0\.5 s bound"):
        run_wrk([str(stub), "http://127.0.0.1:1/"], deadline_s=0.5)


def test_run_load_interleaves_targets_and_tags_samples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stub_wrk(tmp_path, "cpu-container.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    targets = [
        HttpTarget("docker://app", CONTAINER, "http://127.0.0.1:18080/"),
        HttpTarget("ssh://twin@127.0.0.1:12222", VM, "http://127.0.0.1:18081"),
    ]
    order: list[tuple[str, str, int]] = []
    plan = LoadPlan(repeats=2, warmup_s=1)
    samples = run_load(
        targets,
        plan,
        run_id="r7",
        virt_mode="tcg",
        on_run=lambda t, e, r: order.append((t.variant, e, r)),
    )
    assert order[:6] == [
        ("container", "static", -1),
        ("vm", "static", -1),
        ("container", "static", 0),
        ("vm", "static", 0),
        ("container", "static", 1),
        ("vm", "static", 1),
    ]
    assert len(samples) == 3 * 2 * 2 * len(LOAD_METRICS)
    first = samples[: len(LOAD_METRICS)]
    assert [s.metric for s in first] == LOAD_METRICS
    assert [s.unit for s in first] == ["req/s", "ms", "ms", "ms", "requests", "%"]
    assert first[0].value == pytest.approx(717.44, abs=0.01)
    assert first[0].metadata["url"] == "http://127.0.0.1:18080/static"
    assert {s.metadata["run_id"] for s in samples} == {"r7"}
    assert {s.claims for s in samples} == {("P1",)}
    assert {s.metadata["endpoint"] for s in samples} == {"static", "cpu", "io"}
    # The host's TIME_WAIT reuse setting goes with every run (README "Host networking").
    assert {s.metadata["host_tcp_tw_reuse"] for s in samples} == {
        Path(TW_REUSE_PATH).read_text(encoding="utf-8").strip()
    }


def test_only_error_responses_fail_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stub_wrk(tmp_path, "status-errors.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    target = HttpTarget("docker://app", CONTAINER, "http://127.0.0.1:18080")
    with pytest.raises(LoadError, match="no successful HTTP response"):
        run_load([target], LoadPlan(warmup_s=0), run_id="r", virt_mode="tcg")


def test_a_warm_up_without_answers_is_no_failure_a_measured_run_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stub_wrk(tmp_path, "no-answer-in-time.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    target = HttpTarget("ssh://twin@127.0.0.1:12222", VM, "http://127.0.0.1:18081")
    plan = LoadPlan(warmup_s=1, repeats=1, endpoints=("cpu",))
    warmed: list[int] = []
    with pytest.raises(LoadError, match=r"no successful HTTP response .*\(0 responses\)"):
        run_load(
            [target], plan, run_id="r", virt_mode="tcg", on_run=lambda t, e, r: warmed.append(r)
        )
    assert warmed == [-1, 0]  # the warm-up passed; the measured run failed


class Static(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"x" * 4096
        self.send_response(200 if self.path == "/static" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def static_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Static)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_wrk_run_on_loopback(static_server: str) -> None:
    plan = LoadPlan(
        duration_s=1, warmup_s=0, repeats=1, connections=2, threads=1, endpoints=("static",)
    )
    samples = run_load(
        [HttpTarget("local://", HOST_LABEL, static_server)], plan, run_id="r", virt_mode="tcg"
    )
    found = {s.metric: s.value for s in samples}
    assert float(found["requests_per_s"]) > 10
    assert found["errors"] == 0
    assert 0 < float(found["latency_p50_ms"]) <= float(found["latency_p99_ms"])
    assert float(found["load_generator_cpu_percent"]) > 0


class RemoteWithDefaultReuse(HostHandle):
    """A remote host left at Linux's default tcp_tw_reuse (2: loopback only)."""

    def read_text(self, path: str) -> str:
        self.read = path
        return "2\n"


def test_a_remote_hosts_tw_reuse_is_read_through_its_handle_and_differs() -> None:
    host = RemoteWithDefaultReuse(
        "h", "ssh://root@h", "qemu+ssh://root@h/system", SshAccess("root", "h", 22, None)
    )
    assert not host.is_local
    value = host_tcp_tw_reuse(host)
    assert host.read == TW_REUSE_PATH
    assert value == "2" and value != TW_REUSE_WANTED  # the load check warns on this
