"""The WSGI app, called directly (no server)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from workloads.app import webapp
from workloads.app.gunicorn_conf import workers_from_env


def call(path: str, query: str = "", method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"] = status
        captured["headers"] = dict(headers)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    body = b"".join(webapp.application(environ, start_response))
    headers = captured["headers"]
    assert isinstance(headers, dict)
    assert headers["Content-Length"] == str(len(body))
    return str(captured["status"]), headers, body


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TWINLAB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_healthz() -> None:
    assert call("/healthz")[0::2] == ("200 OK", b"ok\n")


def test_static_page_is_about_4_kib_of_html() -> None:
    status, headers, body = call("/static")
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/html")
    assert len(body) == 4096
    assert body == (Path(webapp.__file__).parent / "static" / "index.html").read_bytes()


def test_cpu_is_deterministic_and_depends_on_n() -> None:
    first = json.loads(call("/cpu", "n=5")[2])
    again = json.loads(call("/cpu", "n=5")[2])
    other = json.loads(call("/cpu", "n=6")[2])
    assert first == again
    assert first["n"] == 5 and len(first["digest"]) == 64
    assert other["digest"] != first["digest"]


@pytest.mark.parametrize(
    "query",
    ["", "n=", "n=abc", "n=0", "n=-3", f"n={webapp.CPU_ROUNDS_MAX + 1}", "n=1&n=2", "n=1.5"],
)
def test_cpu_rejects_bad_n(query: str) -> None:
    status, _, body = call("/cpu", query)
    assert status == "400 Bad Request"
    assert b"n must be an integer from 1 to" in body


def test_io_writes_fsyncs_and_removes(data_dir: Path) -> None:
    status, headers, body = call("/io", "kib=100")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    result = json.loads(body)
    assert result["kib"] == 100
    assert result["fsync_s"] >= 0 and result["write_s"] >= 0
    assert list(data_dir.iterdir()) == []


def test_io_writes_exactly_k_kib(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real_fsync = os.fsync

    def fsync_and_measure(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_measure)
    call("/io", "kib=70")
    assert sizes == [70 * 1024]


@pytest.mark.parametrize("query", ["", "kib=0", f"kib={webapp.IO_KIB_MAX + 1}", "kib=x"])
def test_io_rejects_bad_kib(query: str) -> None:
    status, _, body = call("/io", query)
    assert status == "400 Bad Request"
    assert b"kib must be an integer" in body


def test_io_without_a_writable_data_dir_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINLAB_DATA_DIR", str(tmp_path / "missing"))
    status, _, body = call("/io", "kib=1")
    assert status == "503 Service Unavailable"
    assert b"TWINLAB_DATA_DIR" in body


def test_info_names_app_and_version_from_file() -> None:
    result = json.loads(call("/info")[2])
    version_file = Path(webapp.__file__).parent / "VERSION"
    assert result["app"] == "twinlab-webapp"
    assert result["version"] == version_file.read_text().strip()
    assert set(result) == {"app", "version", "hostname", "pid", "python"}


def test_unknown_path_is_404() -> None:
    assert call("/nope")[0] == "404 Not Found"


def test_post_is_405_with_allow() -> None:
    status, headers, _ = call("/healthz", method="POST")
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(("raw", "expected"), [(None, 2), ("", 2), ("1", 1), ("8", 8)])
def test_workers_from_env(raw: str | None, expected: int) -> None:
    assert workers_from_env(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "two", "65"])
def test_workers_from_env_rejects_bad_values(raw: str) -> None:
    with pytest.raises(SystemExit, match="TWINLAB_WORKERS"):
        workers_from_env(raw)


def test_when_ready_notifies_systemd_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from workloads.app.gunicorn_conf import when_ready

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        when_ready(object())
        assert listener.recv(64) == b"READY=1"


def test_when_ready_is_a_no_op_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.app.gunicorn_conf import when_ready

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    when_ready(object())
