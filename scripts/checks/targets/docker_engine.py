"""A small Docker Engine API client over the daemon's socket (stdlib only).

The resource checks need the API, not the CLI: a clone is created from the exact Config and
HostConfig that `docker inspect` shows, which only POST /containers/create accepts as is.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import paramiko

from components.errors import TwinlabError
from scripts.checks.parsers.start_marks import split_log_frames
from scripts.checks.resources.errors import (
    CloneError,
    DaemonUnavailableError,
    InstanceNotFoundError,
    InstanceNotRunningError,
)
from scripts.checks.targets.host import HostHandle

DEFAULT_HOST = "unix:///var/run/docker.sock"
TIMEOUT_S = 60.0
START_HINT = "start dockerd (scripts/setup.sh)"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class _ChannelReader(io.RawIOBase):
    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.channel.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ChannelSocket:
    """What http.client needs of a socket (sendall, makefile, settimeout, close) over an SSH
    channel; makefile gives a real buffered reader (streamed responses use read1)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def sendall(self, data: bytes) -> None:
        self.channel.sendall(data)

    def makefile(self, *_args: Any, **_kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_ChannelReader(self.channel))

    def settimeout(self, timeout_s: float | None) -> None:
        self.channel.settimeout(timeout_s)

    def close(self) -> None:
        self.channel.close()


class _DialStdioConnection(http.client.HTTPConnection):
    """HTTP to a remote host's Docker daemon over its SSH: `docker system dial-stdio` on the
    host relays one channel to its daemon socket (what the docker CLI does for ssh:// hosts)."""

    def __init__(self, handle: HostHandle, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.handle = handle

    def connect(self) -> None:
        transport = self.handle.connection().client.get_transport()
        if transport is None:
            raise OSError(f"no SSH transport to {self.handle}")
        channel = transport.open_session(timeout=self.timeout)
        channel.settimeout(self.timeout)
        channel.exec_command("docker system dial-stdio")
        self.sock = _ChannelSocket(channel)


class DockerEngine:
    """The Docker daemon at `host`: a URL (unix:// or tcp://; default DOCKER_HOST or the local
    socket), or a stack host's handle (its daemon socket, over its SSH when remote)."""

    def __init__(self, host: str | HostHandle | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.handle = host if isinstance(host, HostHandle) else None
        if isinstance(host, HostHandle):
            host = host.docker_host
        self.host = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        self.timeout_s = timeout_s
        parts = urlsplit(self.host)
        self._parts = parts
        self._api_prefix: str | None = None
        # Over SSH each new connection is a new `docker system dial-stdio` on the host (a
        # session, tenths of a second): connections are kept and reused (HTTP keep-alive), so
        # a timed create-and-start (R1) costs round trips, not sessions.
        self._keeps_connections = self.handle is not None and not self.handle.is_local
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()
        if self._keeps_connections:
            return
        if parts.scheme not in ("unix", "tcp"):
            raise DaemonUnavailableError(
                f"Docker host {self.host}: the resource checks read the host's /proc and cgroups, "
                "so they run on the Docker host itself (unix:// or tcp://127.0.0.1)"
            )

    def _connection(self) -> http.client.HTTPConnection:
        if self.handle is not None and not self.handle.is_local:
            return _DialStdioConnection(self.handle, self.timeout_s)
        if self._parts.scheme == "unix":
            return _UnixConnection(self._parts.path, self.timeout_s)
        return http.client.HTTPConnection(
            self._parts.hostname or "127.0.0.1", self._parts.port or 2375, timeout=self.timeout_s
        )

    def _unavailable(self, error: Exception) -> DaemonUnavailableError:
        return DaemonUnavailableError(
            f"the Docker daemon at {self.host} does not answer ({error}); {START_HINT}"
        )

    def _raw(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        pooled = self._take_idle()
        connection = pooled or self._connection()
        reusable = False
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            reusable = self._keeps_connections and not response.will_close
        except (OSError, http.client.HTTPException, TwinlabError) as error:
            if pooled is not None:  # an idle connection the daemon closed: once more, anew
                connection.close()
                return self._raw(method, path, body)
            raise self._unavailable(error) from None
        finally:
            if reusable:
                with self._idle_lock:
                    self._idle.append(connection)
            else:
                connection.close()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return response.status, decoded

    def _take_idle(self) -> http.client.HTTPConnection | None:
        with self._idle_lock:
            return self._idle.pop() if self._idle else None

    def api_prefix(self) -> str:
        """/vX.Y of the daemon's own API version, so old and new daemons both accept requests."""
        if self._api_prefix is None:
            status, version = self._raw("GET", "/version")
            if status != 200 or not isinstance(version, dict):
                raise DaemonUnavailableError(f"the Docker daemon at {self.host} answered {status}")
            self._api_prefix = f"/v{version['ApiVersion']}"
        return self._api_prefix

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        url = self.api_prefix() + path + (f"?{urlencode(query)}" if query else "")
        return self._raw(method, url, body)

    @staticmethod
    def message(answer: Any) -> str:
        if isinstance(answer, dict):
            return str(answer.get("message", answer))
        return str(answer)

    # --- containers -----------------------------------------------------------------------

    def inspect_container(self, name: str) -> dict[str, Any]:
        status, answer = self.call("GET", f"/containers/{quote(name)}/json")
        if status == 404:
            raise InstanceNotFoundError(
                f"no container named {name!r} on {self.host}; deploy the stack (pulumi up) "
                "or list containers with `docker ps -a`"
            )
        if status != 200:
            raise CloneError(f"docker inspect {name}: {self.message(answer)}")
        return dict(answer)

    def running_container(self, name: str) -> dict[str, Any]:
        inspect = self.inspect_container(name)
        if not (inspect.get("State") or {}).get("Running"):
            raise InstanceNotRunningError(
                f"container {name!r} is not running; start it with `docker start {name}`"
            )
        return inspect

    def create_container(self, name: str, body: dict[str, Any]) -> str:
        status, answer = self.call("POST", "/containers/create", body, {"name": name})
        if status != 201:
            raise CloneError(f"creating container {name}: {self.message(answer)}")
        return str(answer["Id"])

    def start_container(self, container_id: str) -> None:
        status, answer = self.call("POST", f"/containers/{container_id}/start")
        if status not in (204, 304):
            raise CloneError(f"starting container {container_id[:12]}: {self.message(answer)}")

    def remove_container(self, name_or_id: str) -> None:
        """Force-remove (stops it first); a container already gone is fine."""
        status, answer = self.call(
            "DELETE", f"/containers/{quote(name_or_id)}", query={"force": "1", "v": "1"}
        )
        if status not in (204, 404):
            raise CloneError(f"removing container {name_or_id}: {self.message(answer)}")

    def log_lines(self, container_id: str, deadline: float, follow: bool = True) -> Iterator[str]:
        """The container's stdout and stderr lines from its start (no TTY: multiplexed frames);
        with `follow`, as they are written, until `deadline` (time.monotonic()) or its end.
        One streaming request: nothing is polled."""
        query = urlencode({"stdout": "1", "stderr": "1", "follow": "1" if follow else "0"})
        connection = self._connection()
        try:
            connection.request("GET", f"{self.api_prefix()}/containers/{container_id}/logs?{query}")
            response = connection.getresponse()
            if response.status != 200:
                raise CloneError(
                    f"docker logs {container_id[:12]}: {self.message(response.read().decode())}"
                )
            frames, pending = b"", b""
            while (remaining := deadline - time.monotonic()) > 0:
                if connection.sock is not None:
                    connection.sock.settimeout(remaining)
                try:
                    chunk = response.read1(65536)
                except TimeoutError:
                    return
                if not chunk:
                    break
                payloads, frames = split_log_frames(frames + chunk)
                *lines, pending = (pending + b"".join(payloads)).split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            raise self._unavailable(error) from None
        finally:
            connection.close()

    def container_names(self, prefix: str) -> list[str]:
        """Names of all containers (running or not) starting with `prefix`."""
        filters = json.dumps({"name": [f"^/{prefix}"]})
        status, answer = self.call(
            "GET", "/containers/json", query={"all": "1", "filters": filters}
        )
        if status != 200:
            raise CloneError(f"listing containers: {self.message(answer)}")
        names = [str(name).lstrip("/") for item in answer for name in item.get("Names", [])]
        return sorted(name for name in names if name.startswith(prefix))

    # --- images and volumes --------------------------------------------------------------

    def inspect_image(self, ref: str) -> dict[str, Any]:
        status, answer = self.call("GET", f"/images/{quote(ref)}/json")
        if status == 404:
            raise InstanceNotFoundError(
                f"no image {ref!r} on {self.host}; build it (python -m workloads.images build)"
            )
        if status != 200:
            raise CloneError(f"docker image inspect {ref}: {self.message(answer)}")
        return dict(answer)

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        status, answer = self.call("POST", "/volumes/create", {"Name": name, "Labels": labels})
        if status != 201:
            raise CloneError(f"creating volume {name}: {self.message(answer)}")

    def remove_volume(self, name: str) -> None:
        status, answer = self.call("DELETE", f"/volumes/{quote(name)}", query={"force": "1"})
        if status not in (204, 404):
            raise CloneError(f"removing volume {name}: {self.message(answer)}")

    def volume_names(self, prefix: str) -> list[str]:
        filters = json.dumps({"name": [prefix]})
        status, answer = self.call("GET", "/volumes", query={"filters": filters})
        if status != 200:
            raise CloneError(f"listing volumes: {self.message(answer)}")
        names = [str(item["Name"]) for item in (answer or {}).get("Volumes") or []]
        return sorted(name for name in names if name.startswith(prefix))
