"""libvirt through virsh: read a domain's definition, start and destroy transient clones, and
manage their overlay volumes. virsh rather than libvirt-python: it is already installed with
the daemon and needs no build against libvirt's headers."""

from __future__ import annotations

import grp
import os
import tempfile
from pathlib import Path

from components.hosts import SINGLE_HOST
from scripts.checks.parsers.domain_xml import DomainDisk
from scripts.checks.parsers.proc_resources import DiskImage, parse_qemu_img_chain
from scripts.checks.parsers.virsh import parse_name_list, parse_vol_list
from scripts.checks.resources.errors import (
    CloneError,
    DaemonUnavailableError,
    InstanceNotFoundError,
    InstanceNotRunningError,
)
from scripts.checks.targets.host import HostHandle, HostUnreachableError, local_host

DEFAULT_URI = "qemu:///system"
TIMEOUT_S = 60.0
QEMU_PID_DIR = Path("/run/libvirt/qemu")
START_HINT = "start virtlogd and libvirtd (scripts/setup.sh)"


class Virsh:
    """virsh against a libvirt URI on this machine, or run on a stack host (HostHandle)."""

    def __init__(self, uri: str | HostHandle = DEFAULT_URI) -> None:
        self.host = uri if isinstance(uri, HostHandle) else HostHandle(SINGLE_HOST, "", uri)
        self.uri = self.host.libvirt_uri

    def run(self, *args: str, check: bool = True, timeout_s: float = TIMEOUT_S) -> str:
        try:
            done = self.host.virsh(args, timeout_s=timeout_s)
        except HostUnreachableError as unreachable:
            raise DaemonUnavailableError(
                f"cannot reach virsh: {unreachable}; {START_HINT}"
            ) from None
        stderr = done.stderr.strip()
        if "failed to connect to the hypervisor" in stderr:
            raise DaemonUnavailableError(f"libvirtd at {self.uri} does not answer; {START_HINT}")
        if check and done.returncode != 0:
            raise CloneError(f"virsh {' '.join(args[:2])}: {last_line(stderr)}")
        return done.stdout

    # --- domains --------------------------------------------------------------------------

    def domain_state(self, name: str) -> str:
        try:
            return self.run("domstate", name).strip()
        except CloneError as error:
            if "ailed to get domain" in str(error) or "Domain not found" in str(error):
                raise InstanceNotFoundError(
                    f"no libvirt domain named {name!r} on {self.uri}; deploy the stack "
                    "(pulumi up) or list domains with `virsh list --all`"
                ) from None
            raise

    def running_domain_xml(self, name: str) -> str:
        """The domain's definition (inactive XML: what was declared, without runtime state)."""
        state = self.domain_state(name)
        if state != "running":
            raise InstanceNotRunningError(
                f"domain {name!r} is {state}, not running; start it with `virsh start {name}`"
            )
        try:
            return self.run("dumpxml", "--inactive", name)
        except CloneError:
            return self.run("dumpxml", name)  # a transient domain has no inactive definition

    def create_transient(self, xml: str) -> None:
        """`virsh create`: start a domain that leaves no definition behind once destroyed."""
        if not self.host.is_local:  # the file virsh reads is on the host: virsh reads stdin
            self.run_with_input(xml, "create", "/dev/stdin")
            return
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as handle:
            handle.write(xml)
        try:
            self.run("create", handle.name)
        finally:
            os.unlink(handle.name)

    def run_with_input(self, text: str, *args: str) -> str:
        argv = ["virsh", "-q", "-c", self.host.virsh_uri, *args]
        try:
            done = self.host.run(argv, timeout_s=TIMEOUT_S, input_text=text)
        except HostUnreachableError as error:
            raise DaemonUnavailableError(f"cannot reach virsh: {error}; {START_HINT}") from None
        if done.returncode != 0:
            raise CloneError(f"virsh {' '.join(args[:1])}: {last_line(done.stderr)}")
        return done.stdout

    def destroy(self, name: str) -> None:
        """Stop and forget a domain; one already gone is fine."""
        self.run("destroy", name, check=False)
        self.run("undefine", name, check=False)  # only persistent ones; transient are gone

    def domain_names(self, prefix: str) -> list[str]:
        names = parse_name_list(self.run("list", "--all", "--name"))
        return sorted(name for name in names if name.startswith(prefix))

    def qemu_pid(self, name: str) -> int:
        """PID of the domain's QEMU process on its host, from the pid file libvirt keeps."""
        try:
            return int(self.host.read_text(f"{QEMU_PID_DIR}/{name}.pid").strip())
        except (OSError, ValueError):
            raise InstanceNotRunningError(
                f"domain {name!r} has no QEMU process (no {QEMU_PID_DIR}/{name}.pid); "
                "is it running on this host?"
            ) from None

    # --- volumes --------------------------------------------------------------------------

    def pool_of(self, path: str) -> str:
        return self.run("vol-pool", path).strip()

    def pool_names(self) -> list[str]:
        """Active pools only: an inactive pool cannot list its volumes."""
        return parse_name_list(self.run("pool-list", "--name"))

    def volumes(self, pool: str) -> dict[str, str]:
        self.run("pool-refresh", pool, check=False)
        return parse_vol_list(self.run("vol-list", pool))

    def create_overlay(self, pool: str, name: str, backing_path: str, capacity_bytes: int) -> str:
        """A new qcow2 volume in `pool` backed by `backing_path`; returns its path."""
        self.run(
            "vol-create-as",
            pool,
            name,
            str(capacity_bytes),
            "--format",
            "qcow2",
            "--backing-vol",
            backing_path,
            "--backing-vol-format",
            "qcow2",
        )
        return self.run("vol-path", "--pool", pool, name).strip()

    def disk_path(self, disk: DomainDisk) -> str:
        """The file behind a domain disk, whether declared by file or by pool and volume."""
        if disk.path:
            return disk.path
        if disk.pool and disk.volume:
            return self.run("vol-path", "--pool", disk.pool, disk.volume).strip()
        raise CloneError(f"disk {disk.target_dev!r} has no file or volume source")

    def delete_volume(self, pool: str, name: str) -> None:
        self.run("vol-delete", "--pool", pool, name, check=False)


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else "failed"


def disk_chain(path: str, host: HostHandle | None = None) -> list[DiskImage]:
    """The image at `path` on the host and its backing files (qemu-img info; -U: it may be in
    use)."""
    argv = ["qemu-img", "info", "-U", "--backing-chain", "--output=json", path]
    try:
        done = (host or local_host()).run(argv, timeout_s=TIMEOUT_S)
    except HostUnreachableError as error:
        raise CloneError(f"qemu-img: {error}; run scripts/setup.sh") from None
    if done.returncode != 0:
        raise CloneError(f"qemu-img info {path}: {last_line(done.stderr)}")
    return parse_qemu_img_chain(done.stdout)


def kvm_device_problem(path: str = "/dev/kvm") -> str | None:
    """Why libvirt would re-probe QEMU on every domain define/create, or None.

    libvirt 9.0 caches QEMU's capabilities, but throws the cache away when KVM was usable at
    probe time and is "not available now" for its QEMU user (libvirt-qemu, group kvm). With
    /dev/kvm root-only, each define/create re-probes: about 44 s under TCG here, counted by
    R1. Debian's udev rule makes it root:kvm 0660; hosts without udev miss that.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    try:
        kvm_gid: int | None = grp.getgrnam("kvm").gr_gid
    except KeyError:
        kvm_gid = None
    group_rw = status.st_gid == kvm_gid and status.st_mode & 0o060 == 0o060
    if group_rw or status.st_mode & 0o006 == 0o006:
        return None
    return (
        f"{path} is mode {status.st_mode & 0o777:o} and not group kvm: libvirt re-probes QEMU "
        "on every domain create (tens of seconds, counted in the VM's start time); fix with "
        f"`chgrp kvm {path} && chmod 660 {path}` (what Debian's udev rule does)"
    )
