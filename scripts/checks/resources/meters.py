"""What the resource checks read from each deployed instance, chosen by its variant's KIND.

A meter reads one instance from the host's side: its memory charged, its CPU time, its memory
limit, what it stores, and how to clone it (R1, R4). `METERS` maps each kind to its meter; a
new variant of an existing kind needs nothing here, a new kind one meter class (and its
cloner, scripts/checks/resources/clones.py) plus one line in `METERS`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from scripts.checks.parsers.docker_inspect import parse_container
from scripts.checks.parsers.domain_xml import DomainFacts, parse_domain
from scripts.checks.parsers.proc_resources import MIB
from scripts.checks.resources import footprint
from scripts.checks.resources.clones import Cloner, ContainerCloner, VmCloner
from scripts.checks.resources.errors import ResourceCheckError
from scripts.checks.results.samples import Value, VariantLabel
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.libvirt_domains import Virsh, disk_chain


@dataclass(frozen=True)
class Instance:
    """One deployed instance to measure: its variant, its container or domain name on this
    host, and the target URL its samples are filed under (the stack outputs' `target`)."""

    label: VariantLabel
    name: str
    target: str


@dataclass(frozen=True)
class Size:
    mib: float
    metadata: dict[str, Value]


class Meter(ABC):
    """Reads one running instance; made once per check run."""

    cpu_method: ClassVar[str]

    def __init__(self, instance: Instance, engine: DockerEngine, virsh: Virsh) -> None:
        self.instance = instance
        self.engine = engine
        self.virsh = virsh
        self.host = virsh.host  # the instance's host: every reading is made there

    @property
    @abstractmethod
    def limit_mib(self) -> float:
        """The deployed per-instance memory limit."""

    @property
    def health_check_interval_s(self) -> float:
        """How often a health check runs inside it (its CPU is charged to the instance)."""
        return 0.0

    @abstractmethod
    def cpu_ns(self) -> int:
        """CPU time used so far, all its tasks or threads."""

    @abstractmethod
    def memory(self) -> footprint.MemoryReading:
        """Memory charged to it now."""

    @abstractmethod
    def size(self) -> Size:
        """What it stores before it runs (R3)."""

    @abstractmethod
    def cloner(self, stack: str | None) -> Cloner:
        """Makes clones of it (R1, R4), filed under its variant."""


class ContainerMeter(Meter):
    """A container: its cgroup (memory as `docker stats` shows it, CPU of every task) and its
    image."""

    cpu_method = "cgroup cpuacct"

    def __init__(self, instance: Instance, engine: DockerEngine, virsh: Virsh) -> None:
        super().__init__(instance, engine, virsh)
        self.facts = parse_container(engine.running_container(instance.name))

    @property
    def limit_mib(self) -> float:
        return self.facts.memory_limit_mib

    @property
    def health_check_interval_s(self) -> float:
        return self.facts.health_check_interval_s

    def cpu_ns(self) -> int:
        return footprint.container_cpu_ns(self.facts.pid, host=self.host)

    def memory(self) -> footprint.MemoryReading:
        return footprint.container_memory(self.facts.pid, host=self.host)

    def size(self) -> Size:
        image = self.engine.inspect_image(self.facts.image_id)
        return Size(
            int(image["Size"]) / MIB,
            {
                "what": "container image (docker image inspect .Size)",
                "image": ",".join(image.get("RepoTags") or [self.facts.image_id]),
                "layers": len((image.get("RootFS") or {}).get("Layers") or []),
            },
        )

    def cloner(self, stack: str | None) -> Cloner:
        return ContainerCloner(self.instance.name, stack, self.engine, label=self.instance.label)


def vm_disk_sizes(facts: DomainFacts, virsh: Virsh) -> dict[str, float]:
    """MiB of the VM's base image (actual allocation and virtual size), kernel and initrd, and
    the instance's own overlay. The base is the bottom of the root disk's backing chain."""
    if not facts.disks:
        raise ResourceCheckError(f"domain {facts.name!r} has no disk")
    chain = disk_chain(virsh.disk_path(facts.disks[0]), virsh.host)
    base, overlay = chain[-1], chain[0]
    files = {"kernel": facts.kernel, "initrd": facts.initrd}
    sizes = {
        "base_actual_mib": base.actual_size_bytes / MIB,
        "base_virtual_mib": base.virtual_size_bytes / MIB,
        "overlay_actual_mib": overlay.actual_size_bytes / MIB if len(chain) > 1 else 0.0,
    }
    for key, path in files.items():
        sizes[f"{key}_mib"] = file_size_bytes(virsh.host, path) / MIB if path else 0.0
    return sizes


def file_size_bytes(host: HostHandle, path: str) -> int:
    """Size of a file on the host (stat(1) there when it is remote)."""
    if host.is_local:
        return os.stat(path).st_size
    done = host.run(["stat", "-L", "-c", "%s", path])
    if done.returncode != 0:
        raise ResourceCheckError(f"host {host}: cannot stat {path}: {done.stderr.strip()}")
    return int(done.stdout.strip())


class DomainMeter(Meter):
    """A libvirt domain: its machine cgroup (memory by the containers' formula; QEMU's PSS beside
    it, split into guest RAM, TCG code cache and the rest), the CPU of all QEMU's threads, and
    its base disk, kernel and initrd."""

    cpu_method = "QEMU utime+stime"

    def __init__(self, instance: Instance, engine: DockerEngine, virsh: Virsh) -> None:
        super().__init__(instance, engine, virsh)
        self.facts = parse_domain(virsh.running_domain_xml(instance.name))
        self.pid = virsh.qemu_pid(instance.name)

    @property
    def limit_mib(self) -> float:
        return self.facts.memory_mib

    def cpu_ns(self) -> int:
        return footprint.qemu_cpu_ns(self.pid, host=self.host)

    def memory(self) -> footprint.MemoryReading:
        return footprint.vm_memory(self.pid, guest_memory_mib=self.facts.memory_mib, host=self.host)

    def size(self) -> Size:
        disk = vm_disk_sizes(self.facts, self.virsh)
        total = disk["base_actual_mib"] + disk["kernel_mib"] + disk["initrd_mib"]
        return Size(
            total,
            {
                "what": "VM base disk (qcow2 actual allocation) + kernel + initrd",
                **{key: round(value, 3) for key, value in disk.items()},
            },
        )

    def cloner(self, stack: str | None) -> Cloner:
        return VmCloner(self.instance.name, stack, self.virsh, label=self.instance.label)


METERS: dict[str, type[Meter]] = {
    "container": ContainerMeter,
    # A sandbox is a Docker container under another OCI runtime: its cgroup holds all of it
    # (gVisor's Sentry and gofer too), and a clone keeps the runtime (HostConfig.Runtime).
    "sandbox": ContainerMeter,
    "vm": DomainMeter,
}


def meter_for(instance: Instance, engine: DockerEngine, virsh: Virsh) -> Meter:
    kind = instance.label.kind
    if kind not in METERS:
        raise ResourceCheckError(
            f"{instance.name}: no resource meter for kind {kind!r} (variant "
            f"{instance.label.name}); known kinds: {sorted(METERS)} "
            "(scripts/checks/resources/meters.py)"
        )
    return METERS[kind](instance, engine, virsh)
