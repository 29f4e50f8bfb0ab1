"""Clones of the deployed instances, so start time and density are measured on exactly the
deployed definition: same image, limits and security settings; only the name, the published
host ports and the storage (a fresh volume / a fresh qcow2 overlay on the same base) differ.

Clones are named twinlab-STACK-clone-N (containers, their volumes, domains and overlay
volumes alike); `remove_clones(stack)` removes every leftover one.
"""

from __future__ import annotations

import fnmatch
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from components.naming import clone_prefix
from components.naming import stack_of as named_stack
from scripts.checks.parsers.docker_inspect import (
    CLONE_OF_LABEL,
    clone_create_body,
    parse_container,
)
from scripts.checks.parsers.domain_xml import clone_domain_xml, parse_domain, with_cpu_set
from scripts.checks.resources import footprint
from scripts.checks.resources.errors import CloneError, DaemonUnavailableError
from scripts.checks.resources.start_watch import (
    ConsoleWatch,
    ContainerLogWatch,
    NoMarks,
    StartWatch,
)
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host import HostHandle, local_host
from scripts.checks.targets.host_path import host_path
from scripts.checks.targets.libvirt_domains import Virsh, disk_chain

CONTAINER_READY_TIMEOUT_S = 30.0
VM_READY_TIMEOUT_S = 180.0
HEALTH_PATH = "/healthz"
GUEST_HTTP_PORT = 8080
# virtlogd writes a clone's serial console here (R1's VM stages read it); removed with the clone.
CONSOLE_LOG_DIR = Path("/var/log/libvirt/qemu")


INSTANCE_SUFFIXES = ("app", "vm")


def stack_of(instance_name: str) -> str:
    """The stack a deployed instance belongs to: twinlab-S-app / twinlab-S-vm -> S."""
    stack = named_stack(instance_name, INSTANCE_SUFFIXES)
    if stack is None:
        raise CloneError(
            f"{instance_name!r} is not named like a twinlab instance (twinlab-STACK-app or "
            "twinlab-STACK-vm); pass the stack name explicitly"
        )
    return stack


class PortAllocator:
    """Free 127.0.0.1 ports of the clones' host, never the same one twice in this process (the
    clones of one run bind theirs only when they start)."""

    _lock = threading.Lock()
    _handed_out: set[int] = set()  # noqa: RUF012 - process-wide on purpose

    def __init__(self, host: HostHandle | None = None) -> None:
        self.host = host

    def free_port(self) -> int:
        with self._lock:
            for _ in range(100):
                if self.host is not None and not self.host.is_local:
                    port = self.host.free_port()
                else:
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                        probe.bind(("127.0.0.1", 0))
                        port = int(probe.getsockname()[1])
                if port not in self._handed_out:
                    self._handed_out.add(port)
                    return port
        raise CloneError("no free 127.0.0.1 port found for a clone")


@dataclass
class Clone:
    variant: str
    name: str
    url: str  # the clone's /healthz URL
    created_at: float  # time.monotonic() when the create call began
    create_call_s: float = 0.0  # how long the create (and start) call itself took
    storage_prepare_s: float = 0.0  # fresh volume / overlay, made before the create call
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (pool or "", volume name)
    created_wall_s: float = 0.0  # time.time() at created_at, for marks stamped by wall clock
    watch: StartWatch = field(default_factory=NoMarks)  # passive observer of its start-up


class Cloner(ABC):
    """Makes and removes clones of one deployed instance; its samples are filed under
    `label` (the deployed variant's name and kind)."""

    kind: str  # the kind of instance this cloner copies
    # How a clone starts: "create" (a container), "boot" (a VM from its kernel), "restore"
    # (a VM from a memory snapshot); every R1 sample records it (claim S1 reads it).
    start_method: str
    ready_timeout_s: float
    # A kernel CPU list to pin clones to instead of the source's CPUs (a noisy neighbour).
    cpu_set: str | None = None
    # Containers only: the clones' CPU weight instead of the source's (docker --cpu-shares).
    cpu_shares: int | None = None

    def __init__(
        self,
        source_name: str,
        stack: str | None,
        label: VariantLabel | None,
        host: HostHandle | None = None,
    ) -> None:
        self.source_name = source_name
        self.stack = stack or stack_of(source_name)
        self.label = label or VariantLabel(self.kind, self.kind)
        # Where the clones run: their URLs are on its loopback (HostHandle.reach from here).
        self.host = host or local_host()
        self.ports = PortAllocator(self.host)

    @property
    def variant(self) -> str:
        return self.label.name

    @property
    @abstractmethod
    def limit_mib(self) -> float:
        """The deployed per-instance memory limit."""

    @abstractmethod
    def existing_names(self) -> list[str]:
        """Names of this variant's clones that exist now."""

    @abstractmethod
    def start(self, name: str) -> Clone:
        """Prepare storage, then create and start the clone; Clone.created_at marks the call."""

    @abstractmethod
    def remove(self, clone: Clone) -> None:
        """Remove the clone and its storage; idempotent."""

    @abstractmethod
    def memory(self, clone: Clone) -> footprint.MemoryReading:
        """Memory the clone is charged now."""

    def next_name(self) -> str:
        prefix = clone_prefix(self.stack)
        used = {
            int(suffix)
            for name in self.existing_names()
            if (suffix := name[len(prefix) :].split("-")[0]).isdigit()
        }
        index = 1
        while index in used:
            index += 1
        return f"{prefix}{index}"


class ContainerCloner(Cloner):
    kind = "container"
    start_method = "create"
    ready_timeout_s = CONTAINER_READY_TIMEOUT_S

    def __init__(
        self,
        source_name: str,
        stack: str | None = None,
        engine: DockerEngine | None = None,
        http_port: str = f"{GUEST_HTTP_PORT}/tcp",
        label: VariantLabel | None = None,
    ) -> None:
        engine = engine or DockerEngine()
        super().__init__(source_name, stack, label, engine.handle)
        self.engine = engine
        self.inspect = self.engine.running_container(source_name)
        self.facts = parse_container(self.inspect)
        self.http_port = http_port
        if http_port not in self.facts.published:
            raise CloneError(
                f"container {source_name!r} publishes no {http_port}; published: "
                f"{sorted(self.facts.published) or 'nothing'}"
            )

    @property
    def limit_mib(self) -> float:
        return self.facts.memory_limit_mib

    def existing_names(self) -> list[str]:
        prefix = clone_prefix(self.stack)
        return self.engine.container_names(prefix) + self.engine.volume_names(prefix)

    def start(self, name: str) -> Clone:
        port_map = {port: self.ports.free_port() for port in self.facts.published}
        volume_map = {
            volume: f"{name}-data" if index == 0 else f"{name}-data{index}"
            for index, volume in enumerate(self.facts.named_volumes)
        }
        body = clone_create_body(self.inspect, port_map, volume_map)
        if self.cpu_set is not None:
            body["HostConfig"]["CpusetCpus"] = self.cpu_set
        if self.cpu_shares is not None:
            body["HostConfig"]["CpuShares"] = self.cpu_shares
        url = f"http://127.0.0.1:{port_map[self.http_port]}{HEALTH_PATH}"
        prepare_started = time.monotonic()
        clone = Clone(self.variant, name, url, created_at=0.0)
        labels = {CLONE_OF_LABEL: self.source_name, "twinlab.stack": self.stack}
        for volume in volume_map.values():
            self.engine.create_volume(volume, labels)
            clone.volumes.append(("", volume))
        clone.storage_prepare_s = time.monotonic() - prepare_started
        clone.created_wall_s, clone.created_at = time.time(), time.monotonic()
        try:
            container_id = self.engine.create_container(name, body)
            start_call_s = time.monotonic() - clone.created_at
            self.engine.start_container(container_id)
        except BaseException:
            self.remove(clone)
            raise
        clone.create_call_s = time.monotonic() - clone.created_at
        clone.watch = ContainerLogWatch(
            self.engine, container_id, clone.created_at, clone.created_wall_s, start_call_s
        )
        return clone

    def remove(self, clone: Clone) -> None:
        clone.watch.close()
        self.engine.remove_container(clone.name)
        for _, volume in clone.volumes:
            self.engine.remove_volume(volume)

    def memory(self, clone: Clone) -> footprint.MemoryReading:
        pid = parse_container(self.engine.running_container(clone.name)).pid
        return footprint.container_memory(pid, host=self.host)


class VmCloner(Cloner):
    kind = "vm"
    start_method = "boot"
    ready_timeout_s = VM_READY_TIMEOUT_S

    def __init__(
        self,
        source_name: str,
        stack: str | None = None,
        virsh: Virsh | None = None,
        guest_http_port: int = GUEST_HTTP_PORT,
        label: VariantLabel | None = None,
    ) -> None:
        virsh = virsh or Virsh()
        super().__init__(source_name, stack, label, virsh.host)
        self.virsh = virsh
        self.xml = self.virsh.running_domain_xml(source_name)
        self.facts = parse_domain(self.xml)
        self.guest_http_port = guest_http_port
        if self.facts.host_port_for(guest_http_port) is None:
            raise CloneError(
                f"domain {source_name!r} forwards no host port to guest port {guest_http_port} "
                "(expected a hostfwd in its <qemu:commandline>)"
            )

    @property
    def limit_mib(self) -> float:
        return self.facts.memory_mib

    def existing_names(self) -> list[str]:
        prefix = clone_prefix(self.stack)
        names = self.virsh.domain_names(prefix)
        for pool in self.virsh.pool_names():
            names += [name for name in self.virsh.volumes(pool) if name.startswith(prefix)]
        return names

    def start(self, name: str) -> Clone:
        port_map = {forward.guest_port: self.ports.free_port() for forward in self.facts.forwards}
        url = f"http://127.0.0.1:{port_map[self.guest_http_port]}{HEALTH_PATH}"
        clone = Clone(self.variant, name, url, created_at=0.0)
        prepare_started = time.monotonic()
        disk_paths = {}
        try:
            for disk in self.facts.disks:
                source = disk_chain(self.virsh.disk_path(disk), self.host)[0]
                if source.backing_filename is None:
                    raise CloneError(
                        f"domain {self.source_name!r}: disk {disk.target_dev} "
                        f"({source.filename}) has no backing image to put a clone's overlay on"
                    )
                pool = self.virsh.pool_of(source.filename)
                volume = f"{name}-{disk.target_dev}.qcow2"
                disk_paths[disk.target_dev] = self.virsh.create_overlay(
                    pool, volume, source.backing_filename, source.virtual_size_bytes
                )
                clone.volumes.append((pool, volume))
            console_log = console_log_path(name, self.host)
            console_log.unlink(missing_ok=True)  # a removed clone's of the same name
            xml = clone_domain_xml(self.xml, name, disk_paths, port_map, str(console_log))
            if self.cpu_set is not None:
                xml = with_cpu_set(xml, self.cpu_set)
            clone.storage_prepare_s = time.monotonic() - prepare_started
            clone.created_wall_s, clone.created_at = time.time(), time.monotonic()
            watch = ConsoleWatch(console_log, clone.created_at)
            clone.watch = watch
            self.virsh.create_transient(xml)
            clone.create_call_s = time.monotonic() - clone.created_at
            watch.qemu_running_s = clone.create_call_s
        except BaseException:
            self.remove(clone)
            raise
        return clone

    def remove(self, clone: Clone) -> None:
        clone.watch.close()
        self.virsh.destroy(clone.name)
        console_log_path(clone.name, self.host).unlink(missing_ok=True)
        for pool, volume in clone.volumes:
            self.virsh.delete_volume(pool, volume)

    def memory(self, clone: Clone) -> footprint.MemoryReading:
        pid = self.virsh.qemu_pid(clone.name)
        return footprint.vm_memory(pid, guest_memory_mib=self.facts.memory_mib, host=self.host)


def console_log_path(clone_name: str, host: HostHandle | None = None) -> Path:
    """Where virtlogd writes a clone's console, on the clone's host."""
    return host_path(host, CONSOLE_LOG_DIR / f"{clone_name}-console.log")


@dataclass
class SweepResult:
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # a daemon that did not answer


def remove_clones(
    stack: str, engine: DockerEngine | None = None, virsh: Virsh | None = None
) -> SweepResult:
    """Remove every twinlab-STACK-clone-* container, volume, domain and overlay volume."""
    prefix = clone_prefix(stack)
    result = SweepResult()
    engine = engine or DockerEngine()
    try:
        for name in engine.container_names(prefix):
            engine.remove_container(name)
            result.removed.append(f"container {name}")
        for name in engine.volume_names(prefix):
            engine.remove_volume(name)
            result.removed.append(f"docker volume {name}")
    except DaemonUnavailableError as error:
        result.skipped.append(str(error))
    virsh = virsh or Virsh()
    try:
        for name in virsh.domain_names(prefix):
            virsh.destroy(name)
            result.removed.append(f"domain {name}")
        logs = host_path(virsh.host, CONSOLE_LOG_DIR)
        found = sorted(logs.iterdir()) if logs.is_dir() else []
        for log in [p for p in found if fnmatch.fnmatch(p.name, f"{prefix}*-console.log")]:
            log.unlink(missing_ok=True)
            result.removed.append(f"console log {log}")
        for pool in virsh.pool_names():
            for volume in virsh.volumes(pool):
                if volume.startswith(prefix):
                    virsh.delete_volume(pool, volume)
                    result.removed.append(f"volume {pool}/{volume}")
    except DaemonUnavailableError as error:
        result.skipped.append(str(error))
    return result
