"""pulumi-libvirt 0.5.4's qemu+ssh:// quirks against twinlab's loopback sshd instances
(scripts/remote_access.sh, 127.0.0.1:2222 and :2223, each with its own host key): the URI
twinlab gives the provider (a port, the key, known_hosts) connects; a wrong key, a changed host
key, a host key missing from known_hosts and a passphrase-protected key each stop the checks
before anything is created, with the reason. Nothing is deployed: seconds, no lock needed.
(The provider's own Go client takes these URIs in test_remote_stack.py and test_fleet.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components import daemons
from components.errors import ConfigError, DaemonUnavailableError
from components.libvirt_ssh_quirks import key_problem, provider_uri_problems
from components.paths import state_dir
from components.remote_ssh import known_hosts_path, libvirt_provider_uri
from tests.deploy import start_twinlab_sshd

pytestmark = pytest.mark.integration
PORTS = (2222, 2223)
REAL_STATE = state_dir()  # before a test moves TWINLAB_STATE


@pytest.fixture(scope="module")
def client_key() -> Path:
    """The twinlab client key, both sshd instances started (idempotent)."""
    start_twinlab_sshd(*PORTS)
    return REAL_STATE / "remote_ed25519"


@pytest.fixture
def own_known_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """twinlab's known_hosts moved to an empty state directory (the key stays where it is)."""
    monkeypatch.setenv("TWINLAB_STATE", str(tmp_path))
    return known_hosts_path()


def uri(port: int) -> str:
    return f"qemu+ssh://root@127.0.0.1:{port}/system"


def virsh_version(provider_uri: str) -> subprocess.CompletedProcess[str]:
    """`virsh -c` with the provider's own query over libvirt's libssh transport, which reads
    keyfile, sshauth and (spelt known_hosts) the same known_hosts file; qemu+ssh:// in virsh
    runs the ssh binary, which reads ~/.ssh/known_hosts instead."""
    same = provider_uri.replace("qemu+ssh://", "qemu+libssh://", 1)
    return subprocess.run(
        ["virsh", "-c", same, "version"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("port", PORTS)
def test_uri_with_port_and_key_connects_as_the_provider_gets_it(
    client_key: Path, own_known_hosts: Path, port: int
) -> None:
    # A new host: the daemon checks' ssh records its key (trust on first use) ...
    assert not own_known_hosts.exists()
    daemons.require_docker(f"ssh://root@127.0.0.1:{port}", str(client_key))
    daemons.require_libvirt(uri(port), str(client_key))
    provider_uri = libvirt_provider_uri(uri(port), str(client_key))
    assert f":{port}/system?" in provider_uri and f"keyfile={client_key}" in provider_uri
    # ... which the provider, with no trust on first use, then finds: nothing to complain of.
    assert provider_uri_problems(provider_uri) == []
    done = virsh_version(provider_uri)
    assert done.returncode == 0 and "Running hypervisor: QEMU" in done.stdout, done.stderr


def test_a_known_hosts_without_the_host_is_refused_by_the_same_uri(
    client_key: Path, own_known_hosts: Path
) -> None:
    """Negative control of the connect test: the known_hosts parameter is really used."""
    own_known_hosts.parent.mkdir(parents=True, exist_ok=True)
    own_known_hosts.write_text("")
    provider_uri = libvirt_provider_uri(uri(2222), str(client_key))
    problems = provider_uri_problems(provider_uri)
    assert any("holds no host key for 127.0.0.1 port 2222" in p for p in problems), problems
    done = virsh_version(provider_uri)
    assert done.returncode != 0 and "not accepted" in done.stderr, done.stderr


def test_a_changed_host_key_stops_before_anything_is_created(
    client_key: Path, own_known_hosts: Path
) -> None:
    # The :2222 instance's key recorded for :2223, whose own key differs (a changed host).
    entry = _entry_of(2222)
    own_known_hosts.parent.mkdir(parents=True, exist_ok=True)
    own_known_hosts.write_text(entry.replace("[127.0.0.1]:2222 ", "[127.0.0.1]:2223 ") + "\n")
    with pytest.raises(DaemonUnavailableError, match="Host key verification failed"):
        daemons.require_docker("ssh://root@127.0.0.1:2223", str(client_key))
    with pytest.raises(DaemonUnavailableError, match=r"libvirtd at qemu\+ssh://.*:2223.*Host key"):
        daemons.require_libvirt(uri(2223), str(client_key))


def test_a_key_the_host_does_not_accept_is_named(own_known_hosts: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(DaemonUnavailableError, match=r"127.0.0.1:2222.*Permission denied"):
        daemons.require_docker("ssh://root@127.0.0.1:2222", str(stranger))
    with pytest.raises(DaemonUnavailableError, match=r"Permission denied"):
        daemons.require_libvirt(uri(2222), str(stranger))


def test_a_passphrase_protected_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    locked = tmp_path / "locked_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(locked)], check=True
    )
    assert key_problem(str(locked)) is not None and "passphrase" in str(key_problem(str(locked)))
    problems = provider_uri_problems(libvirt_provider_uri(uri(2222), str(locked)))
    assert any("passphrase" in p for p in problems), problems
    plain = tmp_path / "plain_ed25519"
    shutil.copy(locked, plain)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "secret", "-N", "", "-f", str(plain)], check=True
    )
    assert key_problem(str(plain)) is None


def test_the_user_ssh_config_port_is_caught(
    client_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${HOME}/.ssh/config's Port wins over the URI's for the provider (not for ssh, so the
    daemon check passes): the pre-check names it before anything is created."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh/config").write_text("Host 127.0.0.1\n    Port 22\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"twinlab:libvirtUri .*Port 22 .*port 2222"):
        daemons.require_libvirt(uri(2222), str(client_key))
    monkeypatch.undo()
    daemons.require_libvirt(uri(2222), str(client_key))


def _entry_of(port: int) -> str:
    """The real known_hosts line scripts/remote_access.sh wrote for one instance."""
    sshd_dir = REAL_STATE / ("sshd" if port == 2222 else f"sshd-{port}")
    key = (sshd_dir / "ssh_host_ed25519_key.pub").read_text().split()
    return f"[127.0.0.1]:{port} {key[0]} {key[1]}"
