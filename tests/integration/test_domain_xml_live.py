"""The VM's domain XML against libvirt itself: the deployed (TCG) domain's definition passes
libvirt's schema, and the XML the component makes in both modes (tests/domain_xml.py: the
provider's XML for the Domain's arguments, through the stack's XSLT) is defined by libvirtd,
the KVM one included (libvirt here lists kvm among its domain types, though a guest cannot run
under it), then undefined. The TCG one with twinlab:tcgCacheMiB=64 is also started paused:
QEMU's code buffer is then exactly that size, read by the kit's smaps parser."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from components import outputs
from components.host import HostFacts
from components.registry import VARIANTS
from components.spec import parse_spec
from components.virt_mode import VirtMode
from components.vm import cpu_mode, libvirt_domain_type, port_forward_xslt
from scripts.checks.parsers.proc_resources import parse_smaps
from scripts.checks.parsers.qemu_memory import qemu_memory_parts
from scripts.checks.targets.libvirt_domains import Virsh
from tests.domain_xml import provider_xml, schema_problems, transform

pytestmark = pytest.mark.integration
GUEST_MEMORY_MIB = 512


def test_the_deployed_domain_passes_libvirts_schema(deployed_stack: dict[str, Any]) -> None:
    domain = deployed_stack[outputs.VARIANTS]["vm"][outputs.INSTANCE_NAME]
    defined = Virsh().run("dumpxml", "--inactive", domain)
    assert schema_problems(defined) is None
    assert ET.fromstring(defined).find("features/tcg") is None  # QEMU's default cache


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def component_xml(mode: VirtMode, name: str, **config: str) -> str:
    """What the VM component sends libvirt for a stack in `mode`, without what lives in the
    stack's pool (kernel, initrd, disk): a paused QEMU needs none of them."""
    host = HostFacts(2, 24000, True, mode, None, lambda _port: None, lambda _path: True)
    ports = {"vmHttpPort": str(free_port()), "vmSshPort": str(free_port())}
    raw = {"variants": "vm", "appVersion": "test", **ports, **config}
    spec = parse_spec(raw, stack="ci-domain-xml", host=host, registered=VARIANTS)
    arguments = {
        "type": libvirt_domain_type(mode),
        "name": name,
        "memory": GUEST_MEMORY_MIB,
        "vcpu": 1,
        "cpu": {"mode": cpu_mode(mode)},
    }
    sent = transform(provider_xml(arguments), port_forward_xslt(spec, 8080, 22))
    assert schema_problems(sent) is None
    root = ET.fromstring(sent)
    for parent, tag in (("os", "kernel"), ("os", "initrd"), ("os", "cmdline"), ("devices", "disk")):
        holder = root.find(parent)
        assert holder is not None
        for element in holder.findall(tag):
            holder.remove(element)
    return ET.tostring(root, encoding="unicode")


@contextmanager
def defined(xml: str, name: str, tmp_path: Path) -> Iterator[str]:
    """The domain defined in libvirtd; destroyed if running and undefined afterwards."""
    virsh = Virsh()
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    virsh.run("define", str(path))
    try:
        yield virsh.run("dumpxml", "--inactive", name)
    finally:
        virsh.run("destroy", name, check=False)
        virsh.run("undefine", name, check=False)
    assert name not in virsh.run("list", "--all", "--name").split()


def test_libvirtd_defines_the_kvm_domain(tmp_path: Path) -> None:
    name = "twinlab-ci-domain-xml-kvm"
    with defined(component_xml("kvm", name), name, tmp_path) as definition:
        root = ET.fromstring(definition)
        assert root.get("type") == "kvm"
        assert root.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
        assert root.find("features/tcg") is None
        assert schema_problems(definition) is None


def test_the_tcg_cache_size_reaches_qemu(tmp_path: Path) -> None:
    name = "twinlab-ci-domain-xml-tcg"
    virsh = Virsh()
    with defined(component_xml("tcg", name, tcgCacheMiB="64"), name, tmp_path) as definition:
        root = ET.fromstring(definition)
        assert root.get("type") == "qemu"
        cache = root.find("features/tcg/tb-cache")
        assert cache is not None and (cache.get("unit"), cache.text) == ("KiB", "65536")
        assert schema_problems(definition) is None
        virsh.run("start", "--paused", name)
        smaps = Path(f"/proc/{virsh.qemu_pid(name)}/smaps").read_text()
        parts = qemu_memory_parts(parse_smaps(smaps), GUEST_MEMORY_MIB)
        # QEMU's code buffer: the size asked for, less its guard page.
        assert parts.tcg_cache_mapped_mib == pytest.approx(64 - 4 / 1024)
