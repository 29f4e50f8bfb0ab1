"""The `hosts` output: for each host of a stack, how the checks reach it.

A stack without `twinlab:hosts` config has exactly one host, named "local", built from
`twinlab:dockerHost`, `twinlab:libvirtUri` and `twinlab:remoteSshKeyPath`. Its `ssh` is None
when both daemons are local sockets; otherwise it comes from the ssh:// and qemu+ssh:// URLs,
which must name the same endpoint (one host, one way in). The checks build one HostHandle per
entry (scripts/checks/targets/host.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from components import outputs

SINGLE_HOST = "local"  # the host name of a stack without `twinlab:hosts`
SSH_SCHEMES = ("ssh", "qemu+ssh")
DEFAULT_SSH_USER = "root"
DEFAULT_SSH_PORT = 22


def ssh_output(url: str, key_path: str | None) -> dict[str, Any]:
    """The `ssh` object of a host, from an ssh:// or qemu+ssh:// URL."""
    parts = urlsplit(url)
    return {
        outputs.SSH_USER: parts.username or DEFAULT_SSH_USER,
        outputs.SSH_HOST: parts.hostname or "",
        outputs.SSH_PORT: parts.port or DEFAULT_SSH_PORT,
        outputs.SSH_KEY_PATH: key_path or "",
    }


def over_ssh(*urls: str) -> list[str]:
    return [url for url in urls if urlsplit(url).scheme in SSH_SCHEMES]


def transport_problem(docker_host: str, libvirt_uri: str) -> str | None:
    """Why the two daemons are not one host to the checks (mixed or different SSH endpoints),
    or None: the checks reach each host through one transport."""
    remote = over_ssh(docker_host, libvirt_uri)
    if not remote:
        return None
    endpoints = {tuple(ssh_output(url, None).values()) for url in remote}
    if len(remote) == 1 or len(endpoints) > 1:
        return (
            "the Docker host and the libvirt URI must both be local or both be reached over "
            "the same SSH user@host:port (the checks reach each host through one transport)"
        )
    return None


def host_ssh(docker_host: str, libvirt_uri: str, key_path: str | None) -> dict[str, Any] | None:
    """How a host is reached over SSH (its `ssh` entry), or None when its daemons are local."""
    remote = over_ssh(docker_host, libvirt_uri)
    return ssh_output(remote[0], key_path) if remote else None


def host_output(
    docker_host: str, libvirt_uri: str, key_path: str | None, virt_mode: str
) -> dict[str, Any]:
    """One host's entry of the `hosts` output, from where its daemons are."""
    return {
        outputs.HOST_DOCKER_HOST: docker_host,
        outputs.HOST_LIBVIRT_URI: libvirt_uri,
        outputs.HOST_SSH: host_ssh(docker_host, libvirt_uri, key_path),
        outputs.HOST_VIRT_MODE: virt_mode,
    }
