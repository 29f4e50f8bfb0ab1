"""Checks that the Docker and libvirt daemons answer, before any resource is declared."""

from __future__ import annotations

import subprocess

from components.errors import DaemonUnavailableError

SETUP_HINT = "start it with scripts/setup.sh (it installs and starts dockerd, virtlogd, libvirtd)"
TIMEOUT_S = 15


def _answers(command: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        return False, f"{command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return False, f"no answer within {TIMEOUT_S} s"
    message = (done.stderr.strip().splitlines() or ["?"])[-1]
    return done.returncode == 0, message


def require_docker(docker_host: str) -> None:
    ok, message = _answers(
        ["docker", "-H", docker_host, "version", "--format", "{{.Server.Version}}"]
    )
    if not ok:
        raise DaemonUnavailableError(
            f"the Docker daemon at {docker_host} does not answer ({message}); {SETUP_HINT}"
        )


def require_libvirt(libvirt_uri: str) -> None:
    ok, message = _answers(["virsh", "-c", libvirt_uri, "version"])
    if not ok:
        raise DaemonUnavailableError(
            f"libvirtd at {libvirt_uri} does not answer ({message}); {SETUP_HINT}"
        )
