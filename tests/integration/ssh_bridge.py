"""The one way into the confined check process of test_nothing_local: a byte relay between a
unix socket and a TCP port, one end on each side of the network namespace boundary.

    host side (the test, in the host's network):  UNIX socket  ->  127.0.0.1:2222 (twinlab sshd)
    confined side (in the private network):        127.0.0.1:2222  ->  UNIX socket

A unix socket is reached by its path, not through a network, so it crosses into the private
network namespace while nothing else does: no veth, no route, no other port. Each side relays
whole connections; the confined process sees the stack's SSH endpoint at the address the
stack's outputs name, and nothing else of this machine's network.

    python -m tests.integration.ssh_bridge tcp-to-unix 127.0.0.1:2222 /path/to/bridge.sock
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable

CHUNK_BYTES = 65536


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK_BYTES):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def _relay(client: socket.socket, connect: Callable[[], socket.socket]) -> None:
    try:
        upstream = connect()
    except OSError:
        client.close()
        return
    threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
    _pipe(client, upstream)


def serve(
    listener: socket.socket, connect: Callable[[], socket.socket], stop: threading.Event
) -> None:
    """Relay every connection accepted on `listener` to a new `connect()` until `stop`."""
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        threading.Thread(target=_relay, args=(client, connect), daemon=True).start()


def unix_listener(path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    return listener


def tcp_connector(host: str, port: int) -> Callable[[], socket.socket]:
    return lambda: socket.create_connection((host, port), timeout=10)


def unix_connector(path: str) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock

    return connect


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "tcp-to-unix":
        print(__doc__, file=sys.stderr)
        return 2
    host, port = argv[1].rsplit(":", 1)
    listener = socket.create_server((host, int(port)), backlog=64)
    print("listening", flush=True)  # the confining script waits for this line
    serve(listener, unix_connector(argv[2]), threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
