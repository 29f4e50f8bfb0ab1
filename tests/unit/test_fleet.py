"""`twinlab:hosts` (components/fleet.py): a fleet of hosts in one stack, validated before
anything is created; per-host specs whose names and ports never collide."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.errors import ConfigError
from components.fleet import FleetHost, record_from_host_output, resolve_virt_mode
from components.host import HostFacts
from components.registry import VARIANTS
from components.spec import AppSpec, parse_spec
from tests.unit.test_remote_ssh import KEY
from tests.unit.test_remote_ssh import host as remote_ssh_host

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def facts(held: frozenset[int] = frozenset()) -> HostFacts:
    """The remote-SSH tests' host (KEY readable), with `held` ports taken on 127.0.0.1."""
    return dataclasses.replace(
        remote_ssh_host(KEY), port_holder=lambda port: "nginx (pid 1)" if port in held else None
    )


def entry(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "dockerHost": f"ssh://root@127.0.0.1:{port}",
        "libvirtUri": f"qemu+ssh://root@127.0.0.1:{port}/system",
        "sshKey": KEY,
        **extra,
    }


def fleet_spec(
    hosts: list[dict[str, Any]], held: frozenset[int] = frozenset(), **raw: str
) -> AppSpec:
    config = {"variants": "container,vm", "hosts": json.dumps(hosts), **raw}
    return parse_spec(config, stack="fleet", host=facts(held), registered=VARIANTS)


def problems_of(hosts: Any, **raw: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config = {"hosts": hosts if isinstance(hosts, str) else json.dumps(hosts), **raw}
        parse_spec(config, stack="fleet", host=facts(), registered=VARIANTS)
    return str(caught.value)


def test_two_endpoints_of_one_machine_get_distinct_names_and_ports() -> None:
    spec = fleet_spec([entry("a", 2222), entry("b", 2223)])
    assert [h.name for h in spec.fleet] == ["a", "b"]
    a, b = (spec.on_host(h, "tcg") for h in spec.fleet)
    assert a.resource_name("vm") == "twinlab-fleet-a-vm"
    assert b.resource_name("app") == "twinlab-fleet-b-app"
    assert a.name_prefix == "twinlab-fleet-a" and b.name_prefix.startswith("twinlab-fleet-")
    assert set(a.ports.values()).isdisjoint(b.ports.values())
    assert b.port("vmHttpPort") == a.port("vmHttpPort") + 10
    assert b.placement.docker_host == "ssh://root@127.0.0.1:2223"
    assert b.placement.remote_ssh_key_path == KEY and b.fleet == ()
    # Without twinlab:hosts nothing changes: one host, names without a host part.
    single = parse_spec({}, stack="dev", host=facts(), registered=VARIANTS)
    assert single.fleet == () and single.resource_name("vm") == "twinlab-dev-vm"


def test_the_fleet_stack_file_is_valid() -> None:
    document = yaml.safe_load((ROOT / "stacks/Pulumi.fleet.yaml").read_text())
    raw = {key.split(":", 1)[1]: str(value) for key, value in document["config"].items()}
    key = str(Path.home() / ".local/state/twinlab/remote_ed25519")
    host = HostFacts(2, 24000, True, "tcg", "1.0.0", lambda port: None, lambda p: p == key)
    spec = parse_spec(raw, stack="fleet", host=host, registered=VARIANTS)
    assert [(h.name, h.port_offset) for h in spec.fleet] == [("a", 0), ("b", 10)]
    assert [v.name for v in spec.variants] == ["container", "vm"]


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ("not json", "not JSON"),
        ("[]", "non-empty JSON list"),
        ([entry("a", 2222), entry("a", 2223)], "host name 'a' is given twice"),
        ([entry("a", 2222), entry("b", 2222)], "both reached through root@127.0.0.1:2222"),
        ([entry("A-1", 2222)], "lower-case letters and digits"),
        ([entry("a", 2222, dockerHost="http://x")], "is not a Docker host URL"),
        ([entry("a", 2222, libvirtUri="qemu+ssh://root@h/session")], "not a libvirt QEMU"),
        ([entry("a", 2222, libvirtUri="qemu:///system")], "the same SSH user@host:port"),
        ([entry("a", 2222, sshKey="/nope")], "sshKey /nope is not a readable file"),
        ([entry("a", 2222, virtMode="fast")], "virtMode 'fast'"),
        ([entry("a", 2222, sshUser="ops")], "differs from sshUser 'ops'"),
        ([entry("a", 2222, portOfset=5)], "did you mean portOffset?"),
        ([{"name": "a"}], "dockerHost is missing"),
        ([entry("a", 2222), entry("b", 2223, portOffset=0)], "shift portOffset"),
        ([entry("a", 2222, portOffset=60000)], "an integer from 0 to 10000"),
    ],
)
def test_bad_hosts_are_refused_naming_the_host(hosts: Any, expected: str) -> None:
    message = problems_of(hosts)
    assert "twinlab:hosts" in message and expected in message, message


def test_single_host_keys_and_load_host_are_checked_against_the_fleet() -> None:
    message = problems_of([entry("a", 2222)], dockerHost="ssh://root@h", loadHost="c")
    assert "twinlab:dockerHost" in message and "set per host in twinlab:hosts" in message
    assert "twinlab:loadHost" in message and "not a host of twinlab:hosts" in message
    assert fleet_spec([entry("a", 2222), entry("b", 2223)], loadHost="b").load_host == "b"
    with pytest.raises(ConfigError, match="needs twinlab:hosts"):
        parse_spec({"loadHost": "a"}, stack="x", host=facts(), registered=VARIANTS)


def test_a_shifted_port_beyond_the_range_is_named() -> None:
    message = problems_of([entry("a", 2222, portOffset=9000)], containerHttpPort="60000")
    assert "containerHttpPort + portOffset 9000 on host 'a' is beyond 65535" in message


def test_ssh_user_is_filled_into_urls_that_name_none() -> None:
    bare = {
        "name": "a",
        "dockerHost": "ssh://127.0.0.1:2222",
        "libvirtUri": "qemu+ssh://127.0.0.1:2222/system",
        "sshUser": "root",
    }
    (host,) = fleet_spec([bare]).fleet
    assert host.docker_host == "ssh://root@127.0.0.1:2222"
    assert host.libvirt_uri == "qemu+ssh://root@127.0.0.1:2222/system"


def test_a_shifted_port_in_use_on_this_machine_is_named() -> None:
    message = ""
    with pytest.raises(ConfigError) as caught:
        fleet_spec([entry("a", 2222), entry("b", 2223)], held=frozenset({18090}))
    message = str(caught.value)
    assert "containerHttpPort + portOffset 10 on host 'b'" in message and "nginx" in message


RECORD = {
    "mode": "tcg",
    "reason": "stock kernel hung under KVM",
    "probe_kernel": "/boot/vmlinuz",
    "probe_seconds": 0.0,
    "detected_at": 1.0,
    "host_kernel": "6.1.0-18-amd64",
    "qemu_version": "QEMU emulator version 7.2.22",
    "tcg_boot_seconds": 5.6,
}


def test_a_hosts_probe_record_read_over_ssh_is_parsed_with_its_environment() -> None:
    text = json.dumps(RECORD) + "\n@@twinlab@@\n6.1.0-18-amd64\nQEMU emulator version 7.2.22\n"
    record, environment = record_from_host_output(text)
    assert record is not None and record.mode == "tcg"
    assert environment.host_kernel == "6.1.0-18-amd64"
    missing, _ = record_from_host_output("\n@@twinlab@@\n6.1\nQEMU\n")
    assert missing is None


def test_a_given_virt_mode_needs_no_probe() -> None:
    host = FleetHost("a", "ssh://root@h", "qemu+ssh://root@h/system", None, "kvm", 0)
    assert resolve_virt_mode(host) == "kvm"
