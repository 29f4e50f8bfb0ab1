"""Clone names and the HTTP readiness wait the resource checks share (against a tiny local
server on 127.0.0.1; no daemons)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from components.http_wait import wait_for_http_200
from scripts.checks.resources import footprint
from scripts.checks.resources.clones import Clone, Cloner

pytestmark = pytest.mark.unit


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


def test_clone_names_take_the_lowest_free_index() -> None:
    assert FakeCloner([]).next_name() == "twinlab-dev-clone-1"
    existing = ["twinlab-dev-clone-1", "twinlab-dev-clone-1-vda.qcow2", "twinlab-dev-clone-3"]
    assert FakeCloner(existing).next_name() == "twinlab-dev-clone-2"


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
