"""Putting a density run's clones into its budget, and seeing them from the host.

Docker gets the budget as every clone's cgroup parent; libvirt gets it as every clone's
resource partition. The clones themselves are made by clones.py exactly as for R1: these
wrappers change only where they run (and, if asked, their memory limit).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Protocol

from scripts.checks.parsers import domain_xml  # noqa: F401 - registers the qemu: namespace
from scripts.checks.parsers.docker_inspect import parse_container
from scripts.checks.parsers.proc_resources import MIB
from scripts.checks.resources.budget_cgroup import Kind
from scripts.checks.resources.errors import BudgetError, InstanceNotFoundError, ResourceCheckError
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.host_path import host_path
from scripts.checks.targets.libvirt_domains import DEFAULT_URI, Virsh


class BudgetedDockerEngine(DockerEngine):
    """A Docker engine that creates every container under one cgroup parent, with no restart
    policy (and, when given, another per-instance memory limit than the deployed one; no
    swap, as deployed).

    The deployed container restarts unless stopped; in a full budget a container the kernel
    killed would come back, be killed again and hide what the kernel decided. libvirt does
    not restart a killed QEMU either, so both kinds are judged alike."""

    def __init__(
        self,
        cgroup_parent: str,
        host: str | HostHandle | None = None,
        memory_mib: float | None = None,
    ) -> None:
        super().__init__(host)
        self.cgroup_parent = cgroup_parent
        self.memory_mib = memory_mib

    def create_container(self, name: str, body: dict[str, Any]) -> str:
        host_config = {
            **(body.get("HostConfig") or {}),
            "CgroupParent": self.cgroup_parent,
            "RestartPolicy": {"Name": "no"},
        }
        if self.memory_mib is not None:
            host_config["Memory"] = host_config["MemorySwap"] = int(self.memory_mib * MIB)
        return super().create_container(name, {**body, "HostConfig": host_config})


def budgeted_domain_xml(xml: str, partition: str, memory_mib: float | None = None) -> str:
    """The domain XML with its <resource><partition> set to `partition` (any earlier one
    replaced) and, when given, another guest memory size."""
    root = ET.fromstring(xml)
    for resource in root.findall("resource"):
        root.remove(resource)
    resource = ET.SubElement(root, "resource")
    ET.SubElement(resource, "partition").text = partition
    if memory_mib is not None:
        for tag in ("memory", "currentMemory"):
            for element in root.findall(tag):
                element.set("unit", "KiB")
                element.text = str(int(memory_mib * 1024))
    return ET.tostring(root, encoding="unicode")


class PartitionedVirsh(Virsh):
    """virsh that starts every transient domain inside one libvirt resource partition."""

    def __init__(
        self, partition: str, uri: str | HostHandle = DEFAULT_URI, memory_mib: float | None = None
    ) -> None:
        super().__init__(uri)
        self.partition = partition
        self.memory_mib = memory_mib

    def create_transient(self, xml: str) -> None:
        super().create_transient(budgeted_domain_xml(xml, self.partition, self.memory_mib))


def check_placement_supported(
    kind: Kind, engine: DockerEngine | None = None, host: HostHandle | None = None
) -> None:
    """Refuse hosts where the runtime would not place instances where the budget is."""
    if kind == "container":
        status, info = (engine or DockerEngine()).call("GET", "/info")
        driver = info.get("CgroupDriver", "?") if status == 200 and isinstance(info, dict) else "?"
        if driver != "cgroupfs":
            raise BudgetError(
                f"Docker's cgroup driver is {driver!r}: the density check gives Docker a "
                "cgroupfs parent; with the systemd driver the parent is a slice whose limit "
                "systemd sets (not supported yet)"
            )
    elif host_path(host, "/run/systemd/system").is_dir():
        raise BudgetError(
            "systemd runs this host: libvirt would put the partition into a machined slice "
            "(machine-NAME.slice) whose limit systemd sets; the density check supports "
            "libvirt's own cgroup placement only"
        )


class InstanceView(Protocol):
    """How a run sees one kind of instance from the host."""

    def main_pid(self, name: str) -> int | None:
        """The instance's main process, or None when it is not running."""

    def why_not_running(self, name: str) -> str:
        """A short reason the instance is not running (exit, OOM kill, gone)."""


class ContainerView:
    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine

    def main_pid(self, name: str) -> int | None:
        try:
            facts = parse_container(self.engine.inspect_container(name))
        except InstanceNotFoundError:
            return None
        return facts.pid if facts.running and facts.pid else None

    def why_not_running(self, name: str) -> str:
        try:
            state = self.engine.inspect_container(name).get("State") or {}
        except InstanceNotFoundError:
            return "container gone"
        if state.get("Running"):
            return "running"
        oom = " (OOMKilled)" if state.get("OOMKilled") else ""
        return f"container exited with code {state.get('ExitCode', '?')}{oom}"


class VmView:
    def __init__(self, virsh: Virsh) -> None:
        self.virsh = virsh

    def main_pid(self, name: str) -> int | None:
        try:
            if self.virsh.domain_state(name) != "running":
                return None
            return self.virsh.qemu_pid(name)
        except ResourceCheckError:
            return None

    def why_not_running(self, name: str) -> str:
        try:
            return f"domain {self.virsh.domain_state(name)}"
        except InstanceNotFoundError:
            return "domain gone (QEMU exited)"
