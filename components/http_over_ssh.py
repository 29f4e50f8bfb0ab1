"""HTTP to a remote host's loopback through its SSH, for `pulumi up`'s readiness wait.

The apps publish their ports on 127.0.0.1 of the host they run on; when that host is reached
over SSH (ssh:// Docker host, qemu+ssh:// libvirt URI), this machine's 127.0.0.1 has nothing
there, so each attempt of the wait is a GET through a direct-tcpip channel of one SSH
connection to the host (the same endpoint, key and known_hosts as the providers:
components/remote_ssh.py). A channel the host refuses (the port not open yet) is an attempt
that failed, as a refused connection is here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import paramiko

from components import outputs
from components.remote_ssh import CONNECT_TIMEOUT_S, known_hosts_path

STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3})")
HEAD_LIMIT_BYTES = 4096


class HttpOverSsh:
    """One SSH connection to a host; `status` GETs a URL of that host's loopback through it."""

    def __init__(self, ssh: Mapping[str, Any]) -> None:
        self.client = paramiko.SSHClient()
        key_path = str(ssh.get(outputs.SSH_KEY_PATH) or "") or None
        if key_path is not None:
            self.client.load_host_keys(str(known_hosts_path()))
            self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:  # the user's own SSH setup
            self.client.load_system_host_keys()
        self.where = f"{ssh[outputs.SSH_USER]}@{ssh[outputs.SSH_HOST]}:{ssh[outputs.SSH_PORT]}"
        try:
            self.client.connect(
                str(ssh[outputs.SSH_HOST]),
                port=int(ssh[outputs.SSH_PORT]),
                username=str(ssh[outputs.SSH_USER]),
                key_filename=key_path,
                allow_agent=key_path is None,
                look_for_keys=key_path is None,
                timeout=CONNECT_TIMEOUT_S,
                banner_timeout=CONNECT_TIMEOUT_S,
                auth_timeout=CONNECT_TIMEOUT_S,
            )
        except (paramiko.SSHException, OSError) as error:
            self.client.close()
            raise ConnectionError(
                f"cannot reach {self.where} over SSH to wait for the app ({error})"
            ) from None

    def status(self, url: str, timeout_s: float) -> int:
        """The HTTP status of a GET of `url` (http://127.0.0.1:PORT/PATH on the host)."""
        parts = urlsplit(url)
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError(f"the SSH connection to {self.where} is gone")
        try:
            channel = transport.open_channel(
                "direct-tcpip",
                (parts.hostname or "127.0.0.1", parts.port or 80),
                ("127.0.0.1", 0),
                timeout=timeout_s,
            )
        except paramiko.ChannelException as error:  # nothing listens there (yet)
            raise ConnectionRefusedError(f"{error.text} on {self.where}") from None
        except paramiko.SSHException as error:
            raise ConnectionError(str(error)) from None
        try:
            channel.settimeout(timeout_s)
            path = parts.path or "/"
            channel.sendall(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode("ascii"))
            head = b""
            while b"\r\n" not in head and len(head) < HEAD_LIMIT_BYTES:
                chunk = channel.recv(1024)
                if not chunk:
                    break
                head += chunk
        finally:
            channel.close()
        match = STATUS_RE.match(head)
        if match is None:
            raise ConnectionResetError(f"no HTTP status line from {url} on {self.where}")
        return int(match[1])

    def __enter__(self) -> HttpOverSsh:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _trace: TracebackType | None,
    ) -> None:
        self.client.close()
