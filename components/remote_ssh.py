"""How twinlab reaches daemons over SSH: one set of client options for the Docker provider, the
libvirt provider and the daemon checks, so all three use the same key and host-key policy.

With `twinlab:remoteSshKeyPath` set, twinlab manages the SSH side: that key only, no prompts,
and host keys checked against twinlab's own known_hosts (trust on first use), never the user's
~/.ssh/known_hosts. Without it, the user's own SSH setup (~/.ssh/config, agent) applies as is.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from components.paths import state_dir

# libvirtd's socket on the remote host, unless the URI names another with ?socket=.
LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"
CONNECT_TIMEOUT_S = 15
# The host key algorithms of pulumi-libvirt 0.5.4's SSH client, in its order (ssh-rsa, SHA-1,
# left out: OpenSSH servers no longer offer it; the key in known_hosts is the same RSA key).
PROVIDER_HOST_KEY_ALGORITHMS = ",".join(
    [
        "ssh-ed25519",
        "rsa-sha2-256",
        "rsa-sha2-512",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    ]
)
# twinlab's own loopback sshd (scripts/remote_access.sh), which the `remote` stack reaches;
# the `fleet` stack reaches a second instance (its own host key) as a second "host".
TWINLAB_SSHD = ("127.0.0.1", 2222)
TWINLAB_SSHD_PORTS = (2222, 2223)


@dataclass(frozen=True)
class SshEndpoint:
    """The SSH part of ssh://[USER@]HOST[:PORT] or qemu+ssh://[USER@]HOST[:PORT]/system."""

    host: str
    user: str | None = None
    port: int | None = None

    def destination_args(self) -> list[str]:
        """ssh arguments naming the destination, in the order the Docker CLI uses them."""
        args = [] if self.user is None else ["-l", self.user]
        args += [] if self.port is None else ["-p", str(self.port)]
        return [*args, "--", self.host]


def ssh_endpoint(url: str) -> SshEndpoint:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    return SshEndpoint(host=parts.hostname, user=parts.username, port=parts.port)


def known_hosts_path() -> Path:
    """twinlab's own known_hosts (scripts/remote_access.sh puts its sshd's host key there)."""
    return state_dir() / "remote_known_hosts"


def ssh_client_options(key_path: str | None) -> list[str]:
    """OpenSSH client options: for the Docker provider (its `ssh_opts`) and the daemon checks."""
    if key_path is None:
        return []
    return [
        "-i",
        key_path,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts_path()}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        # Record the host key type pulumi-libvirt's Go client asks for first (ed25519, then
        # RSA, then ECDSA), or it would find a key of another type and refuse the host.
        "-o",
        f"HostKeyAlgorithms={PROVIDER_HOST_KEY_ALGORITHMS}",
        # Pulumi's providers have no terminal: fail at once rather than wait for a prompt.
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT_S}",
    ]


def twinlab_sshd_ports(*urls: str) -> list[int]:
    """The ports of twinlab's own sshd instances that these Docker hosts or libvirt URIs go
    through, which then have to run (they are started on demand, not by the setup)."""
    ports = set()
    for url in urls:
        parts = urlsplit(url)
        ours = parts.hostname == TWINLAB_SSHD[0] and parts.port in TWINLAB_SSHD_PORTS
        if parts.scheme in ("ssh", "qemu+ssh") and ours and parts.port is not None:
            ports.add(parts.port)
    return sorted(ports)


def uses_twinlab_sshd(*urls: str) -> bool:
    return bool(twinlab_sshd_ports(*urls))


def remote_command(*argv: str) -> str:
    """One command string for ssh, quoted for the remote shell."""
    return shlex.join(argv)


def libvirt_socket(uri: str) -> str:
    return dict(parse_qsl(urlsplit(uri).query)).get("socket", LIBVIRT_SOCKET)


def libvirt_provider_uri(uri: str, key_path: str | None) -> str:
    """The libvirt URI for pulumi-libvirt, with the key and known_hosts it should use.

    pulumi-libvirt 0.5.4 (terraform-provider-libvirt 0.8.3) speaks SSH itself (Go, not the ssh
    binary): it reads `keyfile`, `knownhosts` and `sshauth` from the URI's query. libvirt's own
    clients spell the known_hosts file `known_hosts` (libssh transports), so both are given and
    `virsh -c` with the same query over qemu+libssh:// checks the same file
    (components/libvirt_ssh_quirks.py lists the provider's other quirks). Parameters already in
    the URI are kept; nothing is added for other transports or without a key.
    """
    parts = urlsplit(uri)
    if parts.scheme != "qemu+ssh" or key_path is None:
        return uri
    query = dict(parse_qsl(parts.query))
    query.setdefault("keyfile", key_path)
    query.setdefault("knownhosts", str(known_hosts_path()))
    query.setdefault("known_hosts", query["knownhosts"])
    query.setdefault("sshauth", "privkey")  # not the agent: the configured key, as for Docker
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))
