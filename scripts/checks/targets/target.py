"""Targets: run one shell command inside a container, a VM or on the host, named by URL.

    docker://NAME[?host=ssh://user@host|tcp://127.0.0.1:2375]   docker exec (the CLI on PATH)
    ssh://user@host[:port][?key=/path/to/key][&wait=SECONDS]    Fabric (Paramiko); root: sudo -n
    local://                                                    this machine; root: sudo -n

A target's variant (name and kind) comes from the stack outputs and is passed to
`parse_target`; a target named by hand without one gets the kind its transport usually carries,
labelled as a guess (a docker:// target may as well be a sandboxed container).

wait= is how long an SSH connection is retried while the VM's sshd starts (default 20 s).
Every probe is written once against `Target.run`; adding a transport is one class plus one line
in TRANSPORTS. Failures to reach a target raise a TargetError subclass whose one-line message
names the target and what to do.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar
from urllib.parse import SplitResult, parse_qs, urlsplit

import fabric
import invoke
import paramiko

from components.errors import TwinlabError
from scripts.checks.results.samples import HOST_LABEL, VariantLabel
from scripts.checks.targets.host import HostHandle, HostUnreachableError

DEFAULT_TIMEOUT_S = 30.0
# Paramiko's transport thread logs every failed handshake with a traceback (many while a VM
# boots); the TargetError raised here already says what went wrong.
logging.getLogger("paramiko.transport").propagate = False
logging.getLogger("paramiko.transport").addHandler(logging.NullHandler())
SSH_CONNECT_TIMEOUT_S = 10
# A VM answers HTTP before its sshd is up (the app starts first): connecting retries this long.
SSH_READY_WAIT_S = 20.0
SSH_READY_WAIT_MAX_S = 600.0
SSH_RETRY_INTERVAL_S = 0.5


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class TargetError(TwinlabError):
    """A target cannot be reached or used; the message names it and the fix."""


class BadTargetUrlError(TargetError):
    pass


class TargetUnreachableError(TargetError):
    pass


class ContainerNotFoundError(TargetError):
    pass


class ContainerNotRunningError(TargetError):
    pass


class RootUnavailableError(TargetError):
    pass


class CommandTimeoutError(TargetError):
    pass


class ToolMissingError(TargetError):
    pass


def short(cmd: str, limit: int = 60) -> str:
    one_line = " ".join(cmd.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


class Target(ABC):
    """Somewhere to run shell commands (POSIX sh) as its default user or as root."""

    # The kind a target of this transport is guessed to be when named by hand.
    guessed_kind: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = VariantLabel(f"{self.guessed_kind}?", self.guessed_kind, guessed=True)

    @property
    def variant(self) -> str:
        return self.label.name

    @property
    def kind(self) -> str:
        return self.label.kind

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, parts: SplitResult) -> Target:
        """Build the target from its parsed URL; raise BadTargetUrlError naming the fix."""

    @abstractmethod
    def run(
        self, cmd: str, *, root: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> CommandResult:
        """Run `cmd` with sh -c; a non-zero rc is a result, not an error."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most transports hold nothing
        """Release connections; the target may be used again afterwards (it reconnects)."""

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def run_subprocess(argv: list[str], url: str, cmd: str, timeout_s: float) -> CommandResult:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ToolMissingError(
            f"{url}: {argv[0]} not found on PATH; run scripts/setup.sh"
        ) from None
    except subprocess.TimeoutExpired:
        raise CommandTimeoutError(
            f"{url}: command timed out after {timeout_s:g} s: {short(cmd)}"
        ) from None
    return CommandResult(done.returncode, done.stdout, done.stderr)


def single_query(url: str, parts: SplitResult, allowed: set[str]) -> dict[str, str]:
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadTargetUrlError(
            f"{url}: unknown query parameter {unknown[0]!r}; allowed: {sorted(allowed)}"
        )
    return {name: values[-1] for name, values in query.items()}


# Daemon-side failures of `docker exec` start with these; the command's own stderr does not.
DOCKER_DAEMON_DOWN = "Cannot connect to the Docker daemon"
DOCKER_DAEMON_ERROR = "Error response from daemon:"


class DockerTarget(Target):
    guessed_kind = "container"

    def __init__(self, url: str, name: str, docker_host: str | None) -> None:
        super().__init__(url)
        self.name = name
        self.docker_host = docker_host
        self.via: HostHandle | None = None  # set from the stack: docker runs on that host

    @classmethod
    def from_url(cls, url: str, parts: SplitResult) -> Target:
        name = parts.netloc
        if not name or parts.path not in ("", "/"):
            raise BadTargetUrlError(f"{url}: expected docker://CONTAINER_NAME[?host=DOCKER_HOST]")
        query = single_query(url, parts, {"host"})
        return cls(url, name, query.get("host") or None)

    def docker_argv(self, *args: str) -> list[str]:
        host = ["-H", self.docker_host] if self.docker_host else []
        return ["docker", *host, *args]

    def run(
        self, cmd: str, *, root: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> CommandResult:
        user = ["-u", "0"] if root else []
        exec_args = ("exec", *user, self.name, "sh", "-c", cmd)
        if self.via is None:
            result = run_subprocess(self.docker_argv(*exec_args), self.url, cmd, timeout_s)
        else:
            result = self.run_on_host(exec_args, cmd, timeout_s)
        if result.rc != 0:
            self.raise_for_daemon_error(result.stderr)
        return result

    def run_on_host(self, exec_args: tuple[str, ...], cmd: str, timeout_s: float) -> CommandResult:
        assert self.via is not None
        try:
            done = self.via.docker(exec_args, timeout_s=timeout_s)
        except HostUnreachableError as error:
            if "gave no answer" in str(error):
                raise CommandTimeoutError(
                    f"{self.url}: command timed out after {timeout_s:g} s: {short(cmd)}"
                ) from None
            raise TargetUnreachableError(f"{self.url}: {error}") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def raise_for_daemon_error(self, stderr: str) -> None:
        first = stderr.strip().splitlines()[0] if stderr.strip() else ""
        daemon = self.docker_host or "the local Docker daemon"
        if first.startswith(DOCKER_DAEMON_DOWN):
            raise TargetUnreachableError(
                f"{self.url}: cannot reach {daemon}; start dockerd (scripts/setup.sh)"
            )
        if not first.startswith(DOCKER_DAEMON_ERROR):
            return
        if "No such container" in first:
            raise ContainerNotFoundError(
                f"{self.url}: no container named {self.name!r}; list them with `docker ps -a`"
            )
        if "is paused" in first:
            raise ContainerNotRunningError(
                f"{self.url}: container {self.name!r} is paused; "
                f"resume it with `docker unpause {self.name}`"
            )
        if "is not running" in first or "is restarting" in first:
            raise ContainerNotRunningError(
                f"{self.url}: container {self.name!r} is not running; "
                f"start it with `docker start {self.name}`"
            )
        raise TargetUnreachableError(f"{self.url}: docker exec failed: {short(first, 160)}")


class SshTarget(Target):
    """A VM (or any machine) over SSH. Host keys of these throwaway VMs are accepted and never
    written to the user's known_hosts; no ssh_config or agent is consulted."""

    guessed_kind = "vm"

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        user: str,
        key: str | None,
        wait_s: float = SSH_READY_WAIT_S,
    ) -> None:
        super().__init__(url)
        self.host, self.port, self.user, self.key = host, port, user, key
        self.wait_s = wait_s
        self.connection: fabric.Connection | None = None
        # Set from the stack: the VM's port is on that host's loopback, reached through its SSH.
        self.via: HostHandle | None = None

    @classmethod
    def from_url(cls, url: str, parts: SplitResult) -> Target:
        try:
            port = parts.port or 22
        except ValueError:
            raise BadTargetUrlError(f"{url}: the port must be a number, e.g. :2222") from None
        if not parts.hostname or not parts.username or parts.path not in ("", "/"):
            raise BadTargetUrlError(
                f"{url}: expected ssh://USER@HOST[:PORT][?key=PRIVATE_KEY][&wait=SECONDS]"
            )
        query = single_query(url, parts, {"key", "wait"})
        try:
            wait_s = float(query.get("wait", SSH_READY_WAIT_S))
        except ValueError:
            wait_s = -1.0
        if not 0 <= wait_s <= SSH_READY_WAIT_MAX_S:
            raise BadTargetUrlError(
                f"{url}: wait= is the seconds to wait for sshd, from 0 to {SSH_READY_WAIT_MAX_S}"
            )
        return cls(url, parts.hostname, port, parts.username, query.get("key") or None, wait_s)

    def new_connection(self) -> fabric.Connection:
        connect_kwargs: dict[str, object] = {
            "allow_agent": False,
            "look_for_keys": self.key is None,
            "banner_timeout": SSH_CONNECT_TIMEOUT_S,
            "auth_timeout": SSH_CONNECT_TIMEOUT_S,
        }
        if self.key is not None:
            connect_kwargs["key_filename"] = self.key
        connection = fabric.Connection(
            self.host,
            user=self.user,
            port=self.port,
            connect_timeout=SSH_CONNECT_TIMEOUT_S,
            connect_kwargs=connect_kwargs,
            # An explicit empty ssh_config: the user's ~/.ssh/config must not change the target.
            config=fabric.Config(ssh_config=paramiko.SSHConfig()),
            # ProxyJump: a direct-tcpip channel from the host's SSH to the VM's forwarded port.
            gateway=None if self.via is None or self.via.is_local else self.via.connection(),
        )
        # Accept the VM's new host key in memory only: no known_hosts file was loaded, so
        # Paramiko has no file to save it to.
        connection.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        return connection

    def connect(self) -> fabric.Connection:
        """The open connection; a VM that is still booting gets up to wait_s to start sshd."""
        if self.connection is not None:
            return self.connection
        if self.key is not None and not os.path.isfile(self.key):
            raise BadTargetUrlError(f"{self.url}: key file {self.key} does not exist")
        where = f"{self.url}: ssh to {self.host}:{self.port}"
        deadline = time.monotonic() + self.wait_s
        while True:
            connection = self.new_connection()
            try:
                connection.open()
                self.connection = connection
                return connection
            except paramiko.AuthenticationException:
                connection.close()
                raise TargetUnreachableError(
                    f"{where} rejected the key for user {self.user!r}; pass the VM's key with ?key="
                ) from None
            except (paramiko.SSHException, OSError) as error:
                connection.close()
                if time.monotonic() >= deadline:
                    raise TargetUnreachableError(f"{where} {self.failure(error)}") from None
            time.sleep(SSH_RETRY_INTERVAL_S)

    def failure(self, error: Exception) -> str:
        waited = f" (waited {self.wait_s:g} s)" if self.wait_s else ""
        if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
            return f"refused{waited}; is the VM running and its SSH port forwarded (virsh list)?"
        if isinstance(error, TimeoutError):
            return f"timed out{waited}; is the VM up?"
        return f"failed ({short(str(error), 80)}){waited}; is sshd running in the VM yet?"

    def run(
        self, cmd: str, *, root: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> CommandResult:
        prefix = "sudo -n " if root and self.user != "root" else ""
        remote = f"{prefix}sh -c {shlex.quote(cmd)}"
        connection = self.connect()
        try:
            done = connection.run(remote, hide=True, warn=True, timeout=timeout_s, in_stream=False)
        except invoke.exceptions.CommandTimedOut:
            raise CommandTimeoutError(
                f"{self.url}: command timed out after {timeout_s:g} s: {short(cmd)}"
            ) from None
        except (paramiko.SSHException, OSError) as error:
            self.close()
            raise TargetUnreachableError(
                f"{self.url}: SSH connection lost ({short(str(error), 80)}); is the VM still up?"
            ) from None
        result = CommandResult(done.return_code, done.stdout, done.stderr)
        if root:
            raise_if_sudo_refused(self.url, self.user, result)
        return result

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def raise_if_sudo_refused(url: str, user: str, result: CommandResult) -> None:
    if result.rc == 1 and result.stderr.startswith("sudo:") and "password" in result.stderr:
        raise RootUnavailableError(
            f"{url}: user {user!r} needs a password for sudo; "
            "grant it NOPASSWD sudo to run root probes"
        )


class HostTarget(Target):
    """A host of the stack reached through its HostHandle (the baseline of a remote host)."""

    guessed_kind = HOST_LABEL.kind

    def __init__(self, host: HostHandle) -> None:
        super().__init__(f"ssh://{host.ssh}" if host.ssh is not None else "local://")
        self.label = HOST_LABEL
        self.host = host

    @classmethod
    def from_url(cls, url: str, parts: SplitResult) -> Target:
        raise BadTargetUrlError(f"{url}: a host target comes from the stack, not from a URL")

    def run(
        self, cmd: str, *, root: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> CommandResult:
        user = self.host.ssh.user if self.host.ssh is not None else "this user"
        sudo = ["sudo", "-n"] if root and user != "root" else []
        try:
            done = self.host.run([*sudo, "sh", "-c", cmd], timeout_s=timeout_s)
        except HostUnreachableError as error:
            raise TargetUnreachableError(f"{self.url}: {error}") from None
        result = CommandResult(done.returncode, done.stdout, done.stderr)
        if sudo:
            raise_if_sudo_refused(self.url, user, result)
        return result


def host_target(host: HostHandle | None) -> Target:
    """The host as a probe target: this machine (local://) or a remote host over its SSH."""
    if host is None or host.is_local:
        return LocalTarget("local://")
    return HostTarget(host)


class LocalTarget(Target):
    """The machine running the checks: the host baseline."""

    guessed_kind = HOST_LABEL.kind

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.label = HOST_LABEL

    @classmethod
    def from_url(cls, url: str, parts: SplitResult) -> Target:
        if parts.netloc or parts.path not in ("", "/") or parts.query:
            raise BadTargetUrlError(f"{url}: the host target is just local://")
        return cls("local://")

    def run(
        self, cmd: str, *, root: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> CommandResult:
        sudo = ["sudo", "-n"] if root and os.geteuid() != 0 else []
        result = run_subprocess([*sudo, "sh", "-c", cmd], self.url, cmd, timeout_s)
        if sudo:
            raise_if_sudo_refused(self.url, "this user", result)
        return result


TRANSPORTS: dict[str, type[Target]] = {
    "docker": DockerTarget,
    "ssh": SshTarget,
    "local": LocalTarget,
}


def parse_target(
    url: str, label: VariantLabel | None = None, host: HostHandle | None = None
) -> Target:
    """The Target named by `url`, labelled with its variant (from the stack outputs; without
    one, the transport's usual kind as a guess), reached through its stack host when given
    (docker on that host; SSH through that host's); BadTargetUrlError otherwise."""
    parts = urlsplit(url.strip())
    transport = TRANSPORTS.get(parts.scheme)
    if transport is None:
        raise BadTargetUrlError(
            f"{url!r} is not a target URL; use docker://NAME, ssh://USER@HOST:PORT?key=KEY "
            "or local://"
        )
    target = transport.from_url(url.strip(), parts)
    if label is not None and not isinstance(target, LocalTarget):
        target.label = label
    if isinstance(target, DockerTarget | SshTarget):
        target.via = host
    return target
