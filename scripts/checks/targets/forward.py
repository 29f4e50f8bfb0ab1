"""A local TCP port forwarded to a port on a remote host's loopback, over its SSH transport.

Fabric's own forward_local stops accepting for good when one channel cannot open (as every
poll does while a clone boots: its port is closed), relays 1 KiB at a time and waits up to 1 s
per tunnel to stop; the waits for a first HTTP 200 poll every 50 ms, so this forwarder refuses
one connection when its channel cannot open (the client sees a reset and polls again), relays
64 KiB at a time, and stops at once.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko

CHUNK_BYTES = 65536
ACCEPT_POLL_S = 0.05
CHANNEL_OPEN_TIMEOUT_S = 5.0


def _relay(client: socket.socket, channel: paramiko.Channel, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            ends: list[socket.socket | paramiko.Channel] = [client, channel]
            readable, _, _ = select.select(ends, [], [], ACCEPT_POLL_S * 4)
            if client in readable:
                data = client.recv(CHUNK_BYTES)
                if not data:
                    break
                channel.sendall(data)
            if channel in readable:
                data = channel.recv(CHUNK_BYTES)
                if not data:
                    break
                client.sendall(data)
    except OSError:
        pass
    finally:
        channel.close()
        client.close()


def _accept_loop(
    listener: socket.socket,
    transport: paramiko.Transport,
    remote_port: int,
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            client, peer = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            channel = transport.open_channel(
                "direct-tcpip", ("127.0.0.1", remote_port), peer, timeout=CHANNEL_OPEN_TIMEOUT_S
            )
        except (paramiko.SSHException, OSError):
            client.close()  # the port is closed there (yet): the client sees it and retries
            continue
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_relay, args=(client, channel, stop), daemon=True).start()


@contextmanager
def forwarded_port(transport: paramiko.Transport, remote_port: int) -> Iterator[int]:
    """A port on this machine's 127.0.0.1 that reaches 127.0.0.1:remote_port over `transport`,
    for the duration of the block."""
    stop = threading.Event()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(ACCEPT_POLL_S)
    thread = threading.Thread(
        target=_accept_loop, args=(listener, transport, remote_port, stop), daemon=True
    )
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        listener.close()
