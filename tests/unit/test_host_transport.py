"""The pieces that carry the checks to a remote host, exercised for real on this machine: the
generator wrapper script, HostPath's file operations, the thread listing, the test's bridge.
(The SSH side itself runs in tests/integration/test_nothing_local.py.)"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from scripts.checks.load.on_host import HostToolError, run_generator
from scripts.checks.load.pinning import process_threads, remote_threads
from scripts.checks.targets.host import HostHandle, local_host
from scripts.checks.targets.host_path import _path_class
from tests.integration.ssh_bridge import serve, tcp_connector, unix_connector, unix_listener

pytestmark = pytest.mark.unit


@pytest.fixture
def host() -> HostHandle:
    return local_host()


def test_generator_script_reports_cpu_affinity_and_output(host: HostHandle) -> None:
    cpus = frozenset({min(os.sched_getaffinity(0))})
    busy = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; echo oops >&2"
    run = run_generator(host, ["sh", "-c", busy], 30, cpus)
    assert (run.rc, run.stdout, run.stderr, run.killed) == (0, "done\n", "oops", False)
    assert run.affinity == cpus
    assert 0 < run.cpu_s <= run.wall_s + 0.05


def test_generator_past_its_deadline_is_killed(host: HostHandle) -> None:
    run = run_generator(host, ["sleep", "5"], 0.5)
    assert run.killed and run.wall_s < 4


def test_generator_pinned_to_a_cpu_the_host_lacks_is_refused(host: HostHandle) -> None:
    with pytest.raises(HostToolError, match="could not pin"):
        run_generator(host, ["true"], 5, frozenset({4095}))


def test_host_path_operations(tmp_path: Path, host: HostHandle) -> None:
    root = _path_class(host)(tmp_path)
    (root / "a").mkdir()
    (root / "a" / "f").write_text("limit")
    assert (root / "a" / "f").read_text() == "limit"
    listed = sorted(root.iterdir())
    assert [p.name for p in listed] == ["a"] and type(listed[0]) is type(root)
    assert listed[0].is_dir() and not listed[0].is_symlink() and listed[0].exists()
    assert not (root / "missing").exists()
    with pytest.raises(FileNotFoundError):
        (root / "missing").read_text()
    with pytest.raises(OSError, match="not empty"):
        (root / "a").rmdir()
    (root / "a" / "f").unlink()  # pathlib's own: a local file here
    (root / "a").rmdir()
    assert not (tmp_path / "a").exists()


def test_thread_listing_script_matches_the_local_reader(host: HostHandle) -> None:
    pid = os.getpid()
    local = {(t.tid, t.name, t.cpus) for t in process_threads(pid)}
    scripted = {(t.tid, t.name, t.cpus) for t in remote_threads(host, pid, qemu=False)}
    assert scripted == local


def test_bridge_relays_a_tcp_service_through_a_unix_socket(tmp_path: Path) -> None:
    service = socket.create_server(("127.0.0.1", 0))
    port = service.getsockname()[1]

    def echo_once() -> None:
        conn, _ = service.accept()
        with conn:
            conn.sendall(b"hello " + conn.recv(16))

    threading.Thread(target=echo_once, daemon=True).start()
    stop = threading.Event()
    path = str(tmp_path / "bridge.sock")
    listener = unix_listener(path)
    threading.Thread(
        target=serve, args=(listener, tcp_connector("127.0.0.1", port), stop), daemon=True
    ).start()
    with unix_connector(path)() as client:
        client.sendall(b"world")
        assert client.recv(64) == b"hello world"
    stop.set()
    listener.close()
    service.close()
