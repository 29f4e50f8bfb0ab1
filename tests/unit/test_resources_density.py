"""Density planning and results, clone naming, and the HTTP 200 wait (against a tiny local
server on 127.0.0.1; no daemons)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from components.http_wait import WaitResult, wait_for_http_200
from scripts.checks import footprint
from scripts.checks.clones import Clone, Cloner
from scripts.checks.density import HOST_RESERVE_MIB, density_samples, planned_instances
from scripts.checks.resource_errors import BudgetError
from scripts.checks.run_tags import RunTags

pytestmark = pytest.mark.unit

TAGS = RunTags("tcg", "6.1.0-test", "run-1")


class FakeCloner(Cloner):
    kind = "vm"
    ready_timeout_s = 1.0

    def __init__(self, existing: list[str]) -> None:
        super().__init__("twinlab-dev-vm", None, None)
        self.existing = existing

    @property
    def limit_mib(self) -> float:
        return 512.0

    def existing_names(self) -> list[str]:
        return self.existing

    def start(self, name: str) -> Clone:
        raise NotImplementedError

    def remove(self, clone: Clone) -> None:
        raise NotImplementedError

    def memory(self, clone: Clone) -> footprint.MemoryReading:
        raise NotImplementedError


def test_planned_instances() -> None:
    assert planned_instances(1536, 512, 20000) == 3
    assert planned_instances(2000, 512, 20000) == 3
    with pytest.raises(BudgetError, match="below the memory limit of twinlab-x-vm"):
        planned_instances(256, 512, 20000, "twinlab-x-vm")
    with pytest.raises(BudgetError, match="no memory limit"):
        planned_instances(1536, 0, 20000)
    with pytest.raises(BudgetError, match="available"):
        planned_instances(1536, 512, 1536 + HOST_RESERVE_MIB - 1)


def test_clone_names_take_the_lowest_free_index() -> None:
    assert FakeCloner([]).next_name() == "twinlab-dev-clone-1"
    existing = ["twinlab-dev-clone-1", "twinlab-dev-clone-1-vda.qcow2", "twinlab-dev-clone-3"]
    assert FakeCloner(existing).next_name() == "twinlab-dev-clone-2"


def test_density_samples() -> None:
    waits = {
        "c1": WaitResult(40.0, 100, ""),
        "c2": WaitResult(55.5, 120, ""),
        "c3": WaitResult(None, 300, "timed out"),
    }
    samples = density_samples(
        FakeCloner([]),
        "ssh://twin@127.0.0.1:2222",
        TAGS,
        budget_mib=1536,
        attempted=3,
        deadline_s=360,
        waits=waits,
        charged={"c1": 200.0, "c2": 300.0},
        start_errors=[],
    )
    ready, fit = samples
    assert (ready.metric, ready.value, ready.unit, ready.claims) == (
        "instances_ready",
        2,
        "instances",
        ("R4",),
    )
    assert ready.metadata["attempted"] == 3
    assert ready.metadata["budget_mib"] == 1536 and ready.metadata["limit_mib"] == 512
    assert ready.metadata["memory_charged_mib_mean"] == 250.0
    assert ready.metadata["slowest_ready_s"] == 55.5
    assert ready.metadata["virt_mode"] == "tcg" and ready.metadata["run_id"] == "run-1"
    assert (fit.metric, fit.value) == ("instances_fit", 6)  # 1536 // 250


def test_density_samples_when_nothing_got_ready() -> None:
    samples = density_samples(
        FakeCloner([]), "t", TAGS, 1536, 3, 360, {}, {}, ["creating twinlab-dev-clone-1: oom"]
    )
    assert [s.value for s in samples] == [0, 0]
    assert samples[0].metadata["start_errors"] == 1


class _Flaky(http.server.BaseHTTPRequestHandler):
    ready_at = 0.0

    def do_GET(self) -> None:
        status = 200 if time.monotonic() >= self.ready_at else 503
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_wait_for_http_200_counts_from_the_create_call(server: http.server.HTTPServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    started = time.monotonic()
    _Flaky.ready_at = started + 0.3
    seen: list[str] = []
    result = wait_for_http_200(url, started, 5.0, lambda _s, last: seen.append(last))
    assert result.seconds is not None and 0.3 <= result.seconds < 0.6
    assert result.attempts >= 3 and "HTTP 503" in seen


def test_wait_for_http_200_gives_up_at_the_timeout(server: http.server.HTTPServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    _Flaky.ready_at = time.monotonic() + 60
    started = time.monotonic()
    result = wait_for_http_200(url, started, 0.3)
    assert result.seconds is None and result.last_error == "HTTP 503"
    assert time.monotonic() - started < 1.0
