"""Checks that the Docker and libvirt daemons answer, before any resource is declared.

Over SSH the checks go the providers' own way, with the same client options
(components/remote_ssh.py): the Docker provider runs `ssh ... docker system dial-stdio`, so the
check runs `docker version` on the remote host through the same ssh; the libvirt provider opens
libvirtd's unix socket through an SSH channel, so the check forwards that socket and asks virsh.
The Docker CLI is not used for ssh:// hosts: it cannot be given ssh options.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

from components.errors import DaemonUnavailableError
from components.libvirt_ssh_quirks import require_usable_provider_uri
from components.remote_ssh import (
    libvirt_provider_uri,
    libvirt_socket,
    remote_command,
    ssh_client_options,
    ssh_endpoint,
)

SETUP_HINT = "start it with scripts/setup.sh (it installs and starts dockerd, virtlogd, libvirtd)"
TIMEOUT_S = 15


def _remote_hint(user_host: str, daemon: str) -> str:
    return (
        f"check that {user_host} runs {daemon} and accepts twinlab:remoteSshKeyPath's key"
        " (for this machine's `remote` stack: scripts/remote_access.sh)"
    )


def _answers(command: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return False, f"{command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return False, f"no answer within {TIMEOUT_S} s"
    message = (done.stderr.strip().splitlines() or ["?"])[-1]
    return done.returncode == 0, message


def require_docker(docker_host: str, key_path: str | None = None) -> None:
    if docker_host.startswith("ssh://"):
        endpoint = ssh_endpoint(docker_host)
        version = remote_command("docker", "version", "--format", "{{.Server.Version}}")
        ok, message = _answers(
            ["ssh", *ssh_client_options(key_path), *endpoint.destination_args(), version]
        )
        hint = _remote_hint(urlsplit(docker_host).netloc, "dockerd and the docker CLI")
    else:
        ok, message = _answers(
            ["docker", "-H", docker_host, "version", "--format", "{{.Server.Version}}"]
        )
        hint = SETUP_HINT
    if not ok:
        raise DaemonUnavailableError(
            f"the Docker daemon at {docker_host} does not answer ({message}); {hint}"
        )


def require_libvirt(libvirt_uri: str, key_path: str | None = None) -> None:
    if libvirt_uri.startswith("qemu+ssh://"):
        ok, message = _libvirt_through_ssh_channel(libvirt_uri, key_path)
        hint = _remote_hint(urlsplit(libvirt_uri).netloc, "libvirtd")
    else:
        ok, message = _answers(["virsh", "-c", libvirt_uri, "version"])
        hint = SETUP_HINT
    if not ok:
        raise DaemonUnavailableError(
            f"libvirtd at {libvirt_uri} does not answer ({message}); {hint}"
        )
    # The provider's own SSH client reads the URI differently from ssh (its quirks).
    require_usable_provider_uri(libvirt_provider_uri(libvirt_uri, key_path))


def _libvirt_through_ssh_channel(uri: str, key_path: str | None) -> tuple[bool, str]:
    """virsh against libvirtd's socket forwarded over ssh: the path pulumi-libvirt takes."""
    endpoint = ssh_endpoint(uri)
    with tempfile.TemporaryDirectory(prefix="twinlab-libvirt-") as tmp:
        local = os.path.join(tmp, "libvirt-sock")
        forward = [
            "ssh",
            *ssh_client_options(key_path),
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"{local}:{libvirt_socket(uri)}",
            *endpoint.destination_args(),
        ]
        try:
            tunnel = subprocess.Popen(
                forward,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        except FileNotFoundError:
            return False, "ssh is not installed"
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not os.path.exists(local):
                if tunnel.poll() is not None:
                    return False, _last_line(tunnel.communicate()[1])
                if time.monotonic() > deadline:
                    return False, f"ssh opened no forward within {TIMEOUT_S} s"
                time.sleep(0.05)
            ok, message = _answers(
                ["virsh", "-c", f"qemu+unix:///system?socket={local}", "version"]
            )
        finally:
            tunnel.terminate()
            try:
                ssh_stderr = tunnel.communicate(timeout=5)[1]
            except subprocess.TimeoutExpired:
                tunnel.kill()
                ssh_stderr = tunnel.communicate()[1]
        # A refused channel shows in ssh's stderr; virsh only sees the connection drop.
        if not ok and ssh_stderr.strip():
            message = f"{message}; ssh: {_last_line(ssh_stderr)}"
        return ok, message


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["?"])[-1]
