"""SSH transports: one set of client options for both providers and the daemon checks, twinlab's
own known_hosts, the libvirt provider's URI parameters, and the `remote` stack's config."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from components import daemons
from components.errors import ConfigError, DaemonUnavailableError
from components.host import HostFacts
from components.registry import VARIANTS
from components.remote_ssh import (
    SshEndpoint,
    known_hosts_path,
    libvirt_provider_uri,
    ssh_client_options,
    ssh_endpoint,
    uses_twinlab_sshd,
)
from components.spec import parse_spec

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
KEY = "/keys/remote_ed25519"


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TWINLAB_STATE", str(tmp_path))
    return tmp_path


def host(readable: str = KEY) -> HostFacts:
    return HostFacts(
        cpu_count=2,
        memory_mib=24000,
        is_root=True,
        detected_virt_mode="tcg",
        built_app_version="1.0.0",
        port_holder=lambda port: None,
        readable=lambda path: path == readable,
    )


@pytest.mark.parametrize(
    ("url", "endpoint", "args"),
    [
        (
            "ssh://root@127.0.0.1:2222",
            SshEndpoint("127.0.0.1", "root", 2222),
            ["-l", "root", "-p", "2222", "--", "127.0.0.1"],
        ),
        ("ssh://build-host", SshEndpoint("build-host"), ["--", "build-host"]),
        (
            "qemu+ssh://ops@vm-host/system?keyfile=/k",
            SshEndpoint("vm-host", "ops"),
            ["-l", "ops", "--", "vm-host"],
        ),
    ],
)
def test_ssh_endpoints(url: str, endpoint: SshEndpoint, args: list[str]) -> None:
    assert ssh_endpoint(url) == endpoint
    assert endpoint.destination_args() == args


def test_with_a_key_ssh_uses_only_it_and_twinlabs_own_known_hosts(own_state: Path) -> None:
    options = ssh_client_options(KEY)
    assert options[:2] == ["-i", KEY]
    pairs = dict(value.split("=", 1) for flag, value in itertools.pairwise(options) if flag == "-o")
    assert pairs["UserKnownHostsFile"] == str(own_state / "remote_known_hosts")
    assert pairs["StrictHostKeyChecking"] == "accept-new"
    assert pairs["IdentitiesOnly"] == "yes" and pairs["BatchMode"] == "yes"
    assert ".ssh" not in " ".join(options)
    # Without a key, the user's own SSH setup applies untouched.
    assert ssh_client_options(None) == []


def test_libvirt_provider_uri_gets_key_and_known_hosts() -> None:
    uri = libvirt_provider_uri("qemu+ssh://root@127.0.0.1:2222/system", KEY)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "qemu+ssh",
        "root@127.0.0.1:2222",
        "/system",
    )
    query = parse_qs(parts.query)
    assert query == {
        "keyfile": [KEY],
        "knownhosts": [str(known_hosts_path())],
        "known_hosts": [str(known_hosts_path())],  # libvirt's own spelling (virsh, libssh)
        "sshauth": ["privkey"],
    }


def test_libvirt_provider_uri_keeps_what_the_user_gave() -> None:
    given = "qemu+ssh://root@h/system?keyfile=/mine&no_verify=1"
    query = parse_qs(urlsplit(libvirt_provider_uri(given, KEY)).query)
    assert query["keyfile"] == ["/mine"] and query["no_verify"] == ["1"]
    assert libvirt_provider_uri("qemu:///system", KEY) == "qemu:///system"
    assert libvirt_provider_uri("qemu+ssh://h/system", None) == "qemu+ssh://h/system"


def test_key_path_tilde_is_expanded() -> None:
    expanded = str(Path.home() / ".local/state/twinlab/remote_ed25519")
    raw = {
        "dockerHost": "ssh://root@h",
        "libvirtUri": "qemu+ssh://root@h/system",
        "remoteSshKeyPath": "~/.local/state/twinlab/remote_ed25519",
    }
    spec = parse_spec(raw, stack="remote", host=host(readable=expanded), registered=VARIANTS)
    assert spec.placement.remote_ssh_key_path == expanded


def test_libssh2_is_rejected_the_provider_has_no_such_transport() -> None:
    with pytest.raises(ConfigError, match="twinlab:libvirtUri"):
        parse_spec(
            {"libvirtUri": "qemu+libssh2://h/system"}, stack="x", host=host(), registered=VARIANTS
        )


def test_the_remote_stack_config_is_valid() -> None:
    document = yaml.safe_load((ROOT / "stacks/Pulumi.remote.yaml").read_text())
    raw = {key.split(":", 1)[1]: str(value) for key, value in document["config"].items()}
    key = str(Path.home() / ".local/state/twinlab/remote_ed25519")
    spec = parse_spec(raw, stack="remote", host=host(readable=key), registered=VARIANTS)
    assert spec.placement.docker_host == "ssh://root@127.0.0.1:2222"
    assert spec.placement.libvirt_uri == "qemu+ssh://root@127.0.0.1:2222/system"
    assert spec.placement.remote_ssh_key_path == key
    dev = yaml.safe_load((ROOT / "stacks/Pulumi.dev.yaml").read_text())["config"]
    dev_ports = {dev.get(f"twinlab:{name}") for name in ("containerHttpPort", "vmHttpPort")}
    assert not dev_ports & {str(port) for port in spec.ports.values()}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_ssh_daemons_fail_naming_the_host(own_state: Path) -> None:
    key = own_state / "key"
    key.write_text("not used: the connection is refused first\n")
    port = closed_port()
    with pytest.raises(DaemonUnavailableError, match=rf"ssh://root@127.0.0.1:{port}.*refused"):
        daemons.require_docker(f"ssh://root@127.0.0.1:{port}", str(key))
    uri = f"qemu+ssh://root@127.0.0.1:{port}/system"
    with pytest.raises(DaemonUnavailableError, match=r"libvirtd at qemu\+ssh://.*refused"):
        daemons.require_libvirt(uri, str(key))


def test_docker_check_over_ssh_runs_docker_version_through_ssh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def fake_answers(command: list[str]) -> tuple[bool, str]:
        seen.append(command)
        return True, ""

    monkeypatch.setattr(daemons, "_answers", fake_answers)
    daemons.require_docker("ssh://root@127.0.0.1:2222", KEY)
    (command,) = seen
    assert command[0] == "ssh" and command[1:3] == ["-i", KEY]
    assert command[-1] == "docker version --format '{{.Server.Version}}'"
    assert command[-5:-1] == ["-p", "2222", "--", "127.0.0.1"]


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        (("ssh://root@127.0.0.1:2222", "qemu:///system"), True),
        (("unix:///var/run/docker.sock", "qemu+ssh://root@127.0.0.1:2222/system"), True),
        (("unix:///var/run/docker.sock", "qemu:///system"), False),
        (("ssh://root@127.0.0.1", "qemu+ssh://root@host.example:2222/system"), False),
        (("tcp://127.0.0.1:2222", "qemu+tcp://127.0.0.1:2222/system"), False),
    ],
)
def test_only_stacks_through_twinlabs_sshd_need_it(urls: tuple[str, str], expected: bool) -> None:
    assert uses_twinlab_sshd(*urls) is expected
