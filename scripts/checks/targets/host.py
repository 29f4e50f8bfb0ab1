"""One handle per host of a stack: how every check reaches that host.

Built from the stack's `hosts` output (components/hosts.py). A local host runs commands as local
subprocesses and reads files directly (as fast as before); a remote host runs them over one SSH
connection (Fabric), so no local `docker` or `virsh` binary, daemon socket, /proc or cgroup file
is used for it, and an app port bound on its loopback is reached through an SSH forward.

TWINLAB_HOSTS_AS_LOCAL=1 makes every host read as local: the negative control of the "nothing
local" test (tests/integration/test_nothing_local.py), where that must fail.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fabric
import paramiko

from components import outputs
from components.errors import TwinlabError
from components.hosts import SINGLE_HOST, host_output
from components.remote_ssh import CONNECT_TIMEOUT_S, known_hosts_path
from scripts.checks.targets.forward import forwarded_port

AS_LOCAL_ENV = "TWINLAB_HOSTS_AS_LOCAL"
LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"
LOCAL_LIBVIRT_URI = "qemu:///system"
DEFAULT_TIMEOUT_S = 60.0
# Free ports on a remote host: random candidates below the usual ephemeral range, checked with
# ss (iproute2, on every Debian) rather than bound, as nothing of twinlab runs there.
FREE_PORT_SCRIPT = (
    'for p in $(shuf -i 20000-32000 -n 50); do ss -Hltn "sport = :$p" | grep -q . || '
    "{ echo $p; exit 0; }; done; exit 1"
)


class HostUnreachableError(TwinlabError):
    """A host of the stack (its SSH endpoint, or a tool on it) cannot be used."""


@dataclass(frozen=True)
class SshAccess:
    user: str
    host: str
    port: int
    key_path: str | None  # None: the user's own SSH setup (agent, default keys)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(eq=False)
class HostHandle:
    """A host the checks reach: locally, or over SSH. Every check goes through its methods."""

    name: str
    docker_host: str
    libvirt_uri: str
    ssh: SshAccess | None = None
    _connection: fabric.Connection | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_local(self) -> bool:
        return self.ssh is None

    def __str__(self) -> str:
        return self.name if self.ssh is None else f"{self.name} ({self.ssh})"

    # --- commands ------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on the host; a non-zero exit is a result. A missing tool, a timeout or a
        lost host raise HostUnreachableError naming the host."""
        argv = list(argv)
        if self.ssh is None:
            try:
                return subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=timeout_s,
                    input=input_text,
                    stdin=None if input_text is not None else subprocess.DEVNULL,
                )
            except OSError as error:  # missing, or not executable
                raise HostUnreachableError(
                    f"host {self}: cannot reach {argv[0]} here ({error.strerror}); "
                    "run scripts/setup.sh"
                ) from None
            except subprocess.TimeoutExpired:
                raise HostUnreachableError(
                    f"host {self}: {shlex.join(argv)[:80]} gave no answer within {timeout_s:g} s"
                ) from None
        return self._run_remote(argv, timeout_s, input_text)

    def _run_remote(
        self, argv: list[str], timeout_s: float, input_text: str | None
    ) -> subprocess.CompletedProcess[str]:
        """One exec channel on the host's connection (lighter than a Fabric runner: no stdin
        relay threads, input sent at once)."""
        command = shlex.join(argv)
        try:
            transport = self.connection().client.get_transport()
            if transport is None:
                raise paramiko.SSHException("no transport")
            channel = transport.open_session(timeout=CONNECT_TIMEOUT_S)
        except (paramiko.SSHException, OSError) as error:
            self.close()
            raise HostUnreachableError(f"host {self}: SSH connection lost ({error})") from None
        try:
            channel.settimeout(timeout_s)
            channel.exec_command(command)
            if input_text is not None:
                channel.sendall(input_text.encode())
            channel.shutdown_write()
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            rc = channel.recv_exit_status()
        except TimeoutError:
            raise HostUnreachableError(
                f"host {self}: {command[:80]} gave no answer within {timeout_s:g} s"
            ) from None
        except (paramiko.SSHException, OSError) as error:
            raise HostUnreachableError(f"host {self}: {command[:80]} failed ({error})") from None
        finally:
            channel.close()
        if rc == 127 and "not found" in stderr:
            raise HostUnreachableError(f"host {self}: {argv[0]} is not installed there")
        return subprocess.CompletedProcess(argv, rc, stdout, stderr)

    def open_stream(self, argv: Sequence[str]) -> paramiko.Channel:
        """A remote command whose output is read as it comes (a console log followed): the
        channel, for the caller to read and close."""
        transport = self.connection().client.get_transport()
        if transport is None:
            raise HostUnreachableError(f"host {self}: SSH connection lost")
        channel: paramiko.Channel = transport.open_session(timeout=CONNECT_TIMEOUT_S)
        channel.exec_command(shlex.join(argv))
        return channel

    def docker(
        self, argv: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this host's daemon: run on the host itself when remote."""
        endpoint = [] if self.ssh is not None else ["-H", self.docker_host]
        return self.run(["docker", *endpoint, *argv], timeout_s=timeout_s)

    def virsh(
        self, argv: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """virsh against this host's libvirtd: run on the host itself when remote."""
        return self.run(["virsh", "-q", "-c", self.virsh_uri, *argv], timeout_s=timeout_s)

    @property
    def virsh_uri(self) -> str:
        """The libvirt URI as seen from where virsh runs: on a remote host, its own socket."""
        if self.ssh is None:
            return self.libvirt_uri
        query = parse_qsl(urlsplit(self.libvirt_uri).query)
        sockets = [(key, value) for key, value in query if key == "socket"]
        return LOCAL_LIBVIRT_URI + (f"?{urlencode(sockets, safe='/')}" if sockets else "")

    def read_text(self, path: str) -> str:
        """A file of the host (/proc, cgroup files); FileNotFoundError when it is absent."""
        if self.ssh is None:
            with open(path, encoding="utf-8", errors="replace") as source:
                return source.read()
        done = self.run(["cat", "--", path])
        if done.returncode != 0:
            raise FileNotFoundError(f"host {self}: {path}: {done.stderr.strip()}")
        return done.stdout

    def free_port(self) -> int:
        """A TCP port free on the host's 127.0.0.1 now (below the ephemeral range there)."""
        if self.ssh is None:
            return free_local_port()
        done = self.run(["sh", "-c", FREE_PORT_SCRIPT])
        if done.returncode != 0 or not done.stdout.strip().isdigit():
            raise HostUnreachableError(f"host {self}: no free 127.0.0.1 port ({done.stderr})")
        return int(done.stdout.strip())

    def load_avg_1m(self) -> float:
        """The host's 1-minute load average (recorded with timings)."""
        if self.ssh is None:
            return os.getloadavg()[0]
        return float(self.read_text("/proc/loadavg").split()[0])

    # --- HTTP to the host's loopback --------------------------------------------------------

    @contextmanager
    def forward(self, remote_port: int) -> Iterator[int]:
        """A local port that reaches 127.0.0.1:remote_port on the host (the same port when the
        host is local; an SSH forward otherwise)."""
        if self.ssh is None:
            yield remote_port
            return
        transport = self.connection().client.get_transport()
        if transport is None:
            raise HostUnreachableError(f"host {self}: SSH connection lost")
        with forwarded_port(transport, remote_port) as local_port:
            yield local_port

    @contextmanager
    def reach(self, url: str) -> Iterator[str]:
        """`url` (http://127.0.0.1:PORT/... on the host) as this process reaches it: the same
        URL on a local host, through an SSH forward of PORT otherwise."""
        parts = urlsplit(url)
        if self.ssh is None or parts.port is None:
            yield url
            return
        with self.forward(parts.port) as local_port:
            yield urlunsplit(parts._replace(netloc=f"127.0.0.1:{local_port}"))

    # --- the SSH connection ---------------------------------------------------------------

    def connection(self) -> fabric.Connection:
        """The host's open SSH connection (one per handle, shared by threads)."""
        if self.ssh is None:
            raise HostUnreachableError(f"host {self.name} is local: it has no SSH connection")
        with self._lock:
            if self._connection is None or not self._connection.is_connected:
                self._connection = self._open()
            return self._connection

    def _open(self) -> fabric.Connection:
        assert self.ssh is not None
        connect_kwargs: dict[str, Any] = {
            "banner_timeout": CONNECT_TIMEOUT_S,
            "auth_timeout": CONNECT_TIMEOUT_S,
        }
        if self.ssh.key_path:
            connect_kwargs |= {
                "key_filename": self.ssh.key_path,
                "allow_agent": False,
                "look_for_keys": False,
            }
        connection = fabric.Connection(
            self.ssh.host,
            user=self.ssh.user,
            port=self.ssh.port,
            connect_timeout=CONNECT_TIMEOUT_S,
            connect_kwargs=connect_kwargs,
            config=fabric.Config(ssh_config=paramiko.SSHConfig()),
        )
        if self.ssh.key_path:
            # twinlab's own known_hosts, as for the providers (components/remote_ssh.py).
            connection.client.load_host_keys(str(known_hosts_path()))
            connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            connection.open()
        except (paramiko.SSHException, OSError) as error:
            connection.close()
            raise HostUnreachableError(
                f"host {self.name}: cannot connect over SSH to {self.ssh} ({error}); is its sshd "
                "running (scripts/remote_access.sh for the `remote` stack)?"
            ) from None
        return connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def free_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def forced_local() -> bool:
    return os.environ.get(AS_LOCAL_ENV, "") not in ("", "0")


def local_host(name: str = SINGLE_HOST) -> HostHandle:
    """This machine, with its default daemons (targets named by hand, tools run by hand)."""
    return HostHandle(
        name,
        os.environ.get("DOCKER_HOST") or LOCAL_DOCKER_HOST,
        os.environ.get("LIBVIRT_DEFAULT_URI") or LOCAL_LIBVIRT_URI,
    )


def host_handle(name: str, item: Mapping[str, Any]) -> HostHandle:
    """One entry of the `hosts` output as a handle (as local when TWINLAB_HOSTS_AS_LOCAL=1)."""
    ssh = item.get(outputs.HOST_SSH)
    if forced_local():
        return HostHandle(name, LOCAL_DOCKER_HOST, LOCAL_LIBVIRT_URI)
    access = None
    if ssh:
        access = SshAccess(
            user=str(ssh[outputs.SSH_USER]),
            host=str(ssh[outputs.SSH_HOST]),
            port=int(ssh[outputs.SSH_PORT]),
            key_path=os.path.expanduser(str(ssh.get(outputs.SSH_KEY_PATH) or "")) or None,
        )
    return HostHandle(
        name, str(item[outputs.HOST_DOCKER_HOST]), str(item[outputs.HOST_LIBVIRT_URI]), access
    )


def host_handles(raw: Mapping[str, Any]) -> dict[str, HostHandle]:
    """Every host of a stack, from its outputs. A stack deployed before the `hosts` output
    existed has its one host rebuilt from `dockerHost`/`libvirtUri`."""
    hosts = raw.get(outputs.HOSTS)
    if isinstance(hosts, dict) and hosts:
        return {name: host_handle(name, item) for name, item in hosts.items()}
    item = host_output(
        str(raw.get(outputs.DOCKER_HOST) or LOCAL_DOCKER_HOST),
        str(raw.get(outputs.LIBVIRT_URI) or LOCAL_LIBVIRT_URI),
        None,
        str(raw.get(outputs.VIRT_MODE) or "tcg"),
    )
    return {SINGLE_HOST: host_handle(SINGLE_HOST, item)}
