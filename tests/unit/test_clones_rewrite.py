"""Clone definitions: captured `virsh dumpxml --inactive` and `docker inspect` of a deployed pair
rewritten so the clone differs only in name, storage and host ports."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scripts.checks.parsers.docker_inspect import (
    CLONE_OF_LABEL,
    InspectError,
    clone_create_body,
    parse_container,
)
from scripts.checks.parsers.domain_xml import (
    QEMU_NS,
    DomainXmlError,
    clone_domain_xml,
    parse_domain,
    parse_hostfwds,
)
from scripts.checks.resources.clones import stack_of
from scripts.checks.resources.errors import CloneError

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "resources"
POOL = "/var/lib/twinlab/pools/twinlab-rtest"
NEW_DISK = f"{POOL}/twinlab-rtest-clone-1-vda.qcow2"


def domain_xml() -> str:
    return (DATA / "rtest-vm.inactive.xml").read_text()


def inspect() -> dict[str, Any]:
    return dict(json.loads((DATA / "rtest-app.inspect.json").read_text()))


# --- libvirt domain ------------------------------------------------------------------------------


def test_domain_facts() -> None:
    facts = parse_domain(domain_xml())
    assert facts.name == "twinlab-rtest-vm"
    assert facts.domain_type == "qemu" and facts.virt_mode == "tcg"
    assert facts.memory_mib == 512
    assert (facts.vcpus, facts.cpuset) == (1, "0")
    assert facts.kernel == f"{POOL}/twinlab-rtest-vmlinuz"
    assert facts.initrd == f"{POOL}/twinlab-rtest-initrd.img"
    assert [(d.target_dev, d.path) for d in facts.disks] == [
        ("vda", f"{POOL}/twinlab-rtest-root.qcow2")
    ]
    assert facts.host_port_for(8080) == 18081
    assert facts.host_port_for(22) == 18022
    assert facts.host_port_for(443) is None


def test_live_xml_gives_the_same_facts() -> None:
    live = parse_domain((DATA / "rtest-vm.live.xml").read_text())
    assert live == parse_domain(domain_xml())


def test_clone_xml_changes_only_name_uuid_disk_and_ports() -> None:
    original = domain_xml()
    cloned = clone_domain_xml(
        original, "twinlab-rtest-clone-1", {"vda": NEW_DISK}, {8080: 20001, 22: 20002}
    )
    facts = parse_domain(cloned)
    assert facts.name == "twinlab-rtest-clone-1"
    assert "<uuid>" not in cloned
    assert [d.path for d in facts.disks] == [NEW_DISK]
    assert facts.host_port_for(8080) == 20001 and facts.host_port_for(22) == 20002
    assert "18081" not in cloned and "18022" not in cloned
    assert all(f.host_addr == "127.0.0.1" for f in facts.forwards)
    # Everything else is the deployed definition.
    source = parse_domain(original)
    for field in ("domain_type", "memory_mib", "vcpus", "cpuset", "kernel", "initrd"):
        assert getattr(facts, field) == getattr(source, field)
    root = ET.fromstring(cloned)
    assert root.findtext("os/cmdline") == ET.fromstring(original).findtext("os/cmdline")
    args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
    assert args[2:] == ["-device", "virtio-net-pci,netdev=twinnet,bus=pci.0,addr=0x9"]
    assert "xmlns:qemu" in cloned


def test_clone_xml_refuses_to_share_a_disk_or_a_port() -> None:
    with pytest.raises(DomainXmlError, match="disk 'vda'"):
        clone_domain_xml(domain_xml(), "c", {}, {8080: 1, 22: 2})
    with pytest.raises(DomainXmlError, match="guest port 22"):
        clone_domain_xml(domain_xml(), "c", {"vda": NEW_DISK}, {8080: 1})


def test_clone_xml_turns_volume_disks_into_files_and_drops_macs() -> None:
    xml = domain_xml().replace(
        f"<disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n"
        f"      <source file='{POOL}/twinlab-rtest-root.qcow2'/>",
        "<disk type='volume' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n"
        "      <source pool='twinlab-rtest-pool' volume='twinlab-rtest-root.qcow2'/>\n"
        "      <backingStore/>",
    )
    xml = xml.replace(
        "<serial type='pty'>",
        "<interface type='user'><mac address='52:54:00:aa:bb:cc'/></interface><serial type='pty'>",
    )
    disk = parse_domain(xml).disks[0]
    assert (disk.path, disk.pool, disk.volume) == (
        None,
        "twinlab-rtest-pool",
        "twinlab-rtest-root.qcow2",
    )
    cloned = clone_domain_xml(xml, "c", {"vda": NEW_DISK}, {8080: 1, 22: 2})
    disk_element = ET.fromstring(cloned).find("devices/disk")
    assert disk_element is not None and disk_element.get("type") == "file"
    assert [child.tag for child in disk_element][:2] == ["driver", "source"]
    assert "backingStore" not in cloned and "volume=" not in cloned
    assert "52:54:00:aa:bb:cc" not in cloned


def test_memory_units_and_hostfwd_forms() -> None:
    xml = domain_xml().replace(
        "<memory unit='KiB'>524288</memory>", "<memory unit='GiB'>1</memory>"
    )
    assert parse_domain(xml).memory_mib == 1024
    with pytest.raises(DomainXmlError, match="unit"):
        parse_domain(domain_xml().replace("unit='KiB'>524288", "unit='parsec'>1", 1))
    (forward,) = parse_hostfwds("user,id=n,hostfwd=:127.0.0.1:2222-:22")
    assert (forward.proto, forward.host_port, forward.guest_port) == ("tcp", 2222, 22)
    (udp,) = parse_hostfwds("hostfwd=udp::5353-10.0.2.15:53")
    assert (udp.proto, udp.host_addr, udp.host_port, udp.guest_port) == ("udp", "", 5353, 53)


# --- docker container ---------------------------------------------------------------------------


def test_container_facts() -> None:
    facts = parse_container(inspect())
    assert facts.name == "twinlab-rtest-app"
    assert facts.running and facts.pid > 0
    assert facts.memory_limit_mib == 512
    assert facts.cpuset == "0"
    assert facts.published == {"8080/tcp": "18080"}
    assert facts.named_volumes == ("twinlab-rtest-data",)
    assert facts.image_id.startswith("sha256:")
    assert facts.health_check_interval_s == 5.0
    without = inspect()
    without["Config"]["Healthcheck"] = None
    assert parse_container(without).health_check_interval_s == 0.0


def test_clone_body_keeps_the_definition() -> None:
    source = inspect()
    before = copy.deepcopy(source)
    body = clone_create_body(source, {"8080/tcp": 20080}, {"twinlab-rtest-data": "c1-data"})
    assert source == before  # the inspect output is not modified
    assert body["Image"] == source["Image"]
    assert "Hostname" not in body  # was Docker's default, the short ID
    assert body["Labels"][CLONE_OF_LABEL] == "twinlab-rtest-app"
    assert body["Labels"]["twinlab.stack"] == "rtest"
    for key in ("User", "Env", "Cmd", "Healthcheck", "WorkingDir", "ExposedPorts"):
        assert body[key] == source["Config"][key]
    host = body["HostConfig"]
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "20080"}]}
    assert host["Binds"] == ["c1-data:/var/lib/twinlab"]
    unchanged = (
        "Memory",
        "MemorySwap",
        "CpusetCpus",
        "CapDrop",
        "SecurityOpt",
        "ReadonlyRootfs",
        "Tmpfs",
        "RestartPolicy",
        "NetworkMode",
    )
    for key in unchanged:
        assert host[key] == source["HostConfig"][key], key


def test_clone_body_keeps_an_explicit_hostname_and_rewrites_mounts() -> None:
    source = inspect()
    source["Config"]["Hostname"] = "webapp"
    source["HostConfig"]["Binds"] = None
    source["HostConfig"]["Mounts"] = [
        {"Type": "volume", "Source": "twinlab-rtest-data", "Target": "/var/lib/twinlab"},
        {"Type": "bind", "Source": "/etc/hosts", "Target": "/etc/hosts"},
    ]
    body = clone_create_body(source, {"8080/tcp": 1}, {"twinlab-rtest-data": "c1-data"})
    assert body["Hostname"] == "webapp"
    assert [m["Source"] for m in body["HostConfig"]["Mounts"]] == ["c1-data", "/etc/hosts"]


def test_clone_body_refuses_to_share_a_port_or_volume() -> None:
    with pytest.raises(InspectError, match="8080/tcp"):
        clone_create_body(inspect(), {}, {"twinlab-rtest-data": "x"})
    with pytest.raises(InspectError, match="twinlab-rtest-data"):
        clone_create_body(inspect(), {"8080/tcp": 1}, {})


def test_stack_of_instance_names() -> None:
    assert stack_of("twinlab-dev-app") == "dev"
    assert stack_of("twinlab-my-stack-vm") == "my-stack"
    with pytest.raises(CloneError, match="pass the stack name"):
        stack_of("webapp")


# --- the shapes pulumi-libvirt 0.5.4 and pulumi-docker 4.0.0 produce ---------------------------


def test_pulumi_domain_with_a_volume_disk() -> None:
    # pulumi-vm.inactive.xml: `virsh dumpxml --inactive` of a stack made by `pulumi up`.
    xml = (DATA / "pulumi-vm.inactive.xml").read_text()
    facts = parse_domain(xml)
    stack = "twinlab-ci-8d9a14"
    (disk,) = facts.disks
    assert (disk.target_dev, disk.path) == ("vda", None)
    assert (disk.pool, disk.volume) == (f"{stack}-pool", f"{stack}-root.qcow2")
    assert facts.virt_mode == "tcg" and facts.memory_mib == 512 and facts.cpuset == "0"
    assert facts.host_port_for(8080) == 35119 and facts.host_port_for(22) == 52249
    cloned = clone_domain_xml(xml, "twinlab-ci-8d9a14-clone-1", {"vda": NEW_DISK}, {8080: 1, 22: 2})
    clone = parse_domain(cloned)
    assert [d.path for d in clone.disks] == [NEW_DISK]
    assert "<uuid>" not in cloned and "35119" not in cloned and "52249" not in cloned
    # Devices libvirt names per domain (spice port, agent socket) stay automatic.
    root = ET.fromstring(cloned)
    graphics = root.find("devices/graphics")
    assert graphics is not None and graphics.get("autoport") == "yes"
    channel = root.find("devices/channel/source")
    assert channel is None


def test_pulumi_container_binds_with_mode() -> None:
    source = json.loads((DATA / "pulumi-app.inspect.json").read_text())
    facts = parse_container(source)
    assert facts.named_volumes == ("twinlab-ci-8d9a14-data",)
    body = clone_create_body(source, {"8080/tcp": 20080}, {"twinlab-ci-8d9a14-data": "c1-data"})
    assert body["HostConfig"]["Binds"] == ["c1-data:/var/lib/twinlab:rw"]
    assert "Hostname" not in body
    assert body["Image"] == source["Image"]
    assert body["Labels"] == {"twinlab.stack": "ci-8d9a14", CLONE_OF_LABEL: "twinlab-ci-8d9a14-app"}
