"""Read a libvirt domain definition and rewrite it into a clone of the same definition.

A clone differs from its source only in what must be unique: its name, no UUID (libvirt makes
one), its own root disk, free host ports for the QEMU user-mode forwards, and no fixed MAC.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace("qemu", QEMU_NS)

# libvirt's memory units (docs: formatdomain "Memory Allocation").
UNIT_BYTES = {
    "b": 1,
    "bytes": 1,
    "kb": 1000,
    "k": 1024,
    "kib": 1024,
    "mb": 1000**2,
    "m": 1024**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "g": 1024**3,
    "gib": 1024**3,
}
# QEMU's -netdev user hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport
HOSTFWD_RE = re.compile(
    r"hostfwd=(?P<proto>tcp|udp)?:(?P<host_addr>[^:]*):(?P<host_port>\d+)"
    r"-(?P<guest_addr>[^:]*):(?P<guest_port>\d+)"
)


class DomainXmlError(ValueError):
    """The domain XML lacks something a clone needs; the message names it."""


@dataclass(frozen=True)
class HostForward:
    proto: str
    host_addr: str
    host_port: int
    guest_port: int


@dataclass(frozen=True)
class DomainDisk:
    target_dev: str
    path: str | None  # file source; None for pool/volume sources
    pool: str | None
    volume: str | None


@dataclass(frozen=True)
class DomainFacts:
    name: str
    domain_type: str  # "kvm" or "qemu" (TCG)
    memory_mib: float
    vcpus: int
    cpuset: str | None
    kernel: str | None
    initrd: str | None
    disks: tuple[DomainDisk, ...]
    forwards: tuple[HostForward, ...]

    @property
    def virt_mode(self) -> str:
        return "kvm" if self.domain_type == "kvm" else "tcg"

    def host_port_for(self, guest_port: int) -> int | None:
        for forward in self.forwards:
            if forward.guest_port == guest_port and forward.proto == "tcp":
                return forward.host_port
        return None


def memory_bytes(element: ET.Element) -> int:
    unit = (element.get("unit") or "KiB").lower()
    if unit not in UNIT_BYTES:
        raise DomainXmlError(f"unknown memory unit {element.get('unit')!r}")
    return int((element.text or "0").strip()) * UNIT_BYTES[unit]


def parse_hostfwds(arg: str) -> list[HostForward]:
    return [
        HostForward(
            proto=match["proto"] or "tcp",
            host_addr=match["host_addr"],
            host_port=int(match["host_port"]),
            guest_port=int(match["guest_port"]),
        )
        for match in HOSTFWD_RE.finditer(arg)
    ]


def qemu_args(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")


def _disks(root: ET.Element) -> tuple[DomainDisk, ...]:
    disks = []
    for disk in root.findall("devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue
        source = disk.find("source")
        target = disk.find("target")
        disks.append(
            DomainDisk(
                target_dev=target.get("dev", "") if target is not None else "",
                path=source.get("file") if source is not None else None,
                pool=source.get("pool") if source is not None else None,
                volume=source.get("volume") if source is not None else None,
            )
        )
    return tuple(disks)


def parse_domain(xml: str) -> DomainFacts:
    root = ET.fromstring(xml)
    name = root.findtext("name")
    memory = root.find("memory")
    if not name or memory is None:
        raise DomainXmlError("domain XML without <name> or <memory>")
    vcpu = root.find("vcpu")
    forwards = [f for arg in qemu_args(root) for f in parse_hostfwds(arg.get("value", ""))]
    return DomainFacts(
        name=name,
        domain_type=root.get("type", ""),
        memory_mib=memory_bytes(memory) / 1024**2,
        vcpus=int((vcpu.text or "1").strip()) if vcpu is not None else 1,
        cpuset=vcpu.get("cpuset") if vcpu is not None else None,
        kernel=root.findtext("os/kernel"),
        initrd=root.findtext("os/initrd"),
        disks=_disks(root),
        forwards=tuple(forwards),
    )


def rewrite_hostfwds(arg: str, port_map: Mapping[int, int]) -> str:
    """Give every forward of `arg` the new host port mapped from its guest port."""

    def replace(match: re.Match[str]) -> str:
        guest_port = int(match["guest_port"])
        if guest_port not in port_map:
            raise DomainXmlError(
                f"no new host port for the forward to guest port {guest_port}: a clone would "
                f"collide with host port {match['host_port']}"
            )
        proto = match["proto"] or ""
        return (
            f"hostfwd={proto}:{match['host_addr']}:{port_map[guest_port]}"
            f"-{match['guest_addr']}:{guest_port}"
        )

    return HOSTFWD_RE.sub(replace, arg)


def clone_domain_xml(
    xml: str,
    clone_name: str,
    disk_paths: Mapping[str, str],
    port_map: Mapping[int, int],
    console_log: str | None = None,
) -> str:
    """The same definition under `clone_name`, without UUID, with the disks named in
    `disk_paths` (target dev -> new file) swapped and the host forwards moved to `port_map`
    (guest port -> new host port). Disks not in `disk_paths` would be shared: refused.
    With `console_log`, the first serial port is also written to that file (by virtlogd)."""
    root = ET.fromstring(xml)
    if console_log is not None:
        _log_console(root, console_log)
    name = root.find("name")
    if name is None:
        raise DomainXmlError("domain XML without <name>")
    name.text = clone_name
    for uuid in root.findall("uuid"):
        root.remove(uuid)
    devices = root.find("devices")
    for disk in root.findall("devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue
        target = disk.find("target")
        dev = target.get("dev", "") if target is not None else ""
        if dev not in disk_paths:
            raise DomainXmlError(f"no new file for disk {dev!r}: the clone would share it")
        for stale in disk.findall("source") + disk.findall("backingStore"):
            disk.remove(stale)
        disk.set("type", "file")
        source = ET.Element("source", {"file": disk_paths[dev]})
        disk.insert(_source_index(disk), source)
    if devices is not None:
        for interface in devices.findall("interface"):
            for mac in interface.findall("mac"):
                interface.remove(mac)
    for arg in qemu_args(root):
        value = arg.get("value", "")
        if "hostfwd=" in value:
            arg.set("value", rewrite_hostfwds(value, port_map))
    return ET.tostring(root, encoding="unicode")


def _log_console(root: ET.Element, path: str) -> None:
    """Add <log file=PATH append='off'/> to the first serial port (the guest's console=ttyS0),
    replacing a log it had; the pty stays, so `virsh console` still works."""
    serial = root.find("devices/serial")
    if serial is None:
        raise DomainXmlError("domain XML without a <serial> port: no console to log")
    for stale in serial.findall("log"):
        serial.remove(stale)
    serial.append(ET.Element("log", {"file": path, "append": "off"}))


def with_cpu_set(xml: str, cpu_set: str) -> str:
    """The same definition pinned to `cpu_set` (a kernel CPU list): the default placement of
    the vCPUs and the emulator threads, and any explicit vCPU, emulator or I/O thread pin."""
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    if vcpu is None:
        raise DomainXmlError("domain XML without <vcpu>: nothing to pin")
    vcpu.set("cpuset", cpu_set)
    for pin in root.findall("cputune/*"):
        if pin.tag in ("vcpupin", "emulatorpin", "iothreadpin"):
            pin.set("cpuset", cpu_set)
    return ET.tostring(root, encoding="unicode")


def _source_index(disk: ET.Element) -> int:
    """Position after <driver>, where libvirt writes <source>."""
    children = list(disk)
    for index, child in enumerate(children):
        if child.tag == "driver":
            return index + 1
    return 0
