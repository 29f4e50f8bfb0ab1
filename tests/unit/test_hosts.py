"""The `hosts` output (components/hosts.py) and the checks' HostHandle built from it."""

from __future__ import annotations

import pytest

from components import outputs
from components.hosts import host_output, transport_problem
from scripts.checks.targets.deployed import parse_outputs
from scripts.checks.targets.host import AS_LOCAL_ENV, host_handles

pytestmark = pytest.mark.unit

REMOTE = ("ssh://root@127.0.0.1:2222", "qemu+ssh://root@127.0.0.1:2222/system")


def test_local_daemons_make_a_host_without_ssh() -> None:
    item = host_output("unix:///var/run/docker.sock", "qemu:///system", None, "tcg")
    assert item == {
        "dockerHost": "unix:///var/run/docker.sock",
        "libvirtUri": "qemu:///system",
        "ssh": None,
        "virtMode": "tcg",
    }


def test_daemons_over_ssh_make_one_ssh_endpoint() -> None:
    item = host_output(*REMOTE, "/k/remote_ed25519", "kvm")
    assert item[outputs.HOST_SSH] == {
        "user": "root",
        "host": "127.0.0.1",
        "port": 2222,
        "keyPath": "/k/remote_ed25519",
    }


@pytest.mark.parametrize(
    ("docker_host", "libvirt_uri"),
    [
        ("ssh://root@127.0.0.1:2222", "qemu:///system"),
        ("unix:///var/run/docker.sock", "qemu+ssh://root@127.0.0.1:2222/system"),
        ("ssh://root@127.0.0.1:2222", "qemu+ssh://root@127.0.0.1:2223/system"),
        ("ssh://twin@127.0.0.1:2222", "qemu+ssh://root@127.0.0.1:2222/system"),
    ],
)
def test_daemons_on_different_transports_are_refused(docker_host: str, libvirt_uri: str) -> None:
    problem = transport_problem(docker_host, libvirt_uri)
    assert problem is not None and "same SSH" in problem


def test_agreeing_or_local_daemons_pass() -> None:
    assert transport_problem(*REMOTE) is None
    assert transport_problem("unix:///var/run/docker.sock", "qemu:///system") is None


def raw_outputs(hosts: dict[str, object] | None) -> dict[str, object]:
    variant = {
        "name": "container",
        "kind": "container",
        "url": "http://127.0.0.1:18180",
        "target": "docker://twinlab-remote-app",
        "instanceName": "twinlab-remote-app",
        "instanceId": "abc",
        "host": "local",
    }
    raw: dict[str, object] = {
        outputs.VARIANTS: {"container": variant},
        outputs.DOCKER_HOST: REMOTE[0],
        outputs.LIBVIRT_URI: REMOTE[1],
    }
    if hosts is not None:
        raw[outputs.HOSTS] = hosts
    return raw


def test_deployed_stack_has_a_handle_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AS_LOCAL_ENV, raising=False)
    deployed = parse_outputs("s", raw_outputs({"local": host_output(*REMOTE, "/k", "tcg")}))
    handle = deployed.host_of(deployed.variant("container"))
    assert handle.ssh is not None and not handle.is_local
    assert str(handle.ssh) == "root@127.0.0.1:2222" and handle.ssh.key_path == "/k"
    # virsh runs on the host itself, against its own libvirtd.
    assert handle.virsh_uri == "qemu:///system"


def test_a_stack_from_before_the_hosts_output_gets_its_one_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(AS_LOCAL_ENV, raising=False)
    handles = host_handles(raw_outputs(None))
    assert list(handles) == ["local"] and not handles["local"].is_local


def test_forced_local_reads_every_host_as_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AS_LOCAL_ENV, "1")
    handles = host_handles(raw_outputs({"local": host_output(*REMOTE, "/k", "tcg")}))
    assert handles["local"].is_local
    assert handles["local"].docker_host == "unix:///var/run/docker.sock"


def test_local_handle_runs_subprocesses_and_reads_files(tmp_path: object) -> None:
    handle = host_handles(
        raw_outputs({"h": host_output("unix:///x", "qemu:///system", None, "tcg")})
    )["h"]
    assert handle.is_local
    assert handle.run(["sh", "-c", "echo hi"]).stdout == "hi\n"
    assert handle.read_text("/proc/self/status").startswith("Name:")
    with pytest.raises(FileNotFoundError):
        handle.read_text("/nonexistent/file")
    with handle.forward(18180) as port:
        assert port == 18180
