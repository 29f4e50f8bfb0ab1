"""Restore clones of a snapshot: each with its own name, UUID, VM generation ID, qcow2 overlay
and 127.0.0.1 ports; remove them again. Used by the Pulumi resource (components.restored_domain)
and by the checks' cloner alike.

The saved guest's memory expects the disk as it was at save time, so a clone's disk is a fresh
overlay of the snapshot's read-only disk.qcow2, and the restore refuses any other disk. The
SLIRP port forwards are QEMU command-line options, not guest state: a restore with other
hostfwd ports works (the guest keeps its 10.0.2.15; each clone has its own user-mode network).
libvirt refuses `restore --xml` with another UUID, so the clone's XML is written into the
save image's header (components.libvirt_save_image) under a lock, then `virsh restore` runs.
"""

from __future__ import annotations

import fcntl
import re
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from components import libvirt_cli
from components.errors import TwinlabError
from components.host import loopback_port_holder
from components.http_wait import require_http_200
from components.libvirt_save_image import replace_domain_xml
from components.snapshot import HEALTH_PATH, Snapshot, sha256_file, snapshot_root

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
QEMU_PID_DIR = Path("/run/libvirt/qemu")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
HOSTFWD = re.compile(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-:(\d+)")

ET.register_namespace("qemu", QEMU_NS)


class RestoreError(TwinlabError):
    """A clone cannot be restored as asked; nothing was left behind."""


class DiskMismatchError(RestoreError):
    """The disk given to a restore is not the one the saved memory state belongs to."""


@dataclass
class RestoredClone:
    name: str
    uuid: str
    http_port: int
    ssh_port: int
    overlay: Path
    created_at: float  # time.monotonic() when restore() was called
    # Seconds after created_at: overlay made, disk checked against the saved state, header
    # written, QEMU process started (its pid file), `virsh restore` returned (guest running),
    # and with restore_until_serving the first HTTP 200.
    stages_s: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}{HEALTH_PATH}"


def restore_domain_xml(
    saved_xml: str,
    *,
    name: str,
    domain_uuid: str,
    generation_id: str,
    directory: Path,
    disk: Path,
    host_ports: dict[int, int],
    cpuset: str | None = None,
) -> str:
    """The saved domain XML renamed and re-pointed for one clone. `host_ports` maps each guest
    port to the clone's 127.0.0.1 port; every forward of the saved XML must be mapped."""
    root = ET.fromstring(saved_xml)

    def one(path: str) -> ET.Element:
        found = root.find(path, {"qemu": QEMU_NS})
        if found is None:
            raise RestoreError(f"saved domain XML has no {path}")
        return found

    one("name").text = name
    one("uuid").text = domain_uuid
    one("genid").text = generation_id
    one("os/kernel").text = str(directory / "vmlinux")
    one("os/initrd").text = str(directory / "initrd.img")
    disks = root.findall("devices/disk[@device='disk']")
    if len(disks) != 1:
        raise RestoreError(f"saved domain XML has {len(disks)} disks; a snapshot VM has one")
    source = disks[0].find("source")
    if source is None:
        raise RestoreError("saved domain XML: the disk has no <source>")
    source.attrib = {"file": str(disk)}
    for backing in disks[0].findall("backingStore"):
        disks[0].remove(backing)
    for console in root.findall("devices/serial") + root.findall("devices/console"):
        for pty_source in console.findall("source"):  # the saved guest's /dev/pts/N
            console.remove(pty_source)
    if cpuset is not None:
        one("vcpu").set("cpuset", cpuset)
    forwarded: set[int] = set()
    for arg in root.iterfind("qemu:commandline/qemu:arg", {"qemu": QEMU_NS}):
        value = arg.get("value", "")

        def rewrite(match: re.Match[str]) -> str:
            guest_port = int(match.group(2))
            if guest_port not in host_ports:
                raise RestoreError(f"no host port given for guest port {guest_port}")
            forwarded.add(guest_port)
            return f"hostfwd=tcp:127.0.0.1:{host_ports[guest_port]}-:{guest_port}"

        arg.set("value", HOSTFWD.sub(rewrite, value))
    missing = sorted(set(host_ports) - forwarded)
    if missing:
        raise RestoreError(f"saved domain XML forwards no guest port {missing}")
    return ET.tostring(root, encoding="unicode") + "\n"


def check_disk(snapshot: Snapshot, overlay: Path) -> None:
    """Refuse a disk the saved memory does not belong to: the overlay must sit directly on the
    snapshot's disk.qcow2, and that file must be unchanged since the save. (Restoring on
    another disk gives a guest whose page cache and file system disagree: it may even answer
    HTTP, and corrupt the file system on its next write.)"""
    chain = libvirt_cli.backing_chain(overlay)
    expected = snapshot.disk.resolve()
    if len(chain) < 2 or chain[1] != expected:
        backing = str(chain[1]) if len(chain) > 1 else "no backing file"
        raise DiskMismatchError(
            f"{overlay} is backed by {backing}, not by the snapshot's saved disk {expected}: "
            "the saved memory state belongs to that disk only"
        )
    actual = sha256_file(snapshot.disk)
    if actual != snapshot.disk_sha256:
        raise DiskMismatchError(
            f"{snapshot.disk} changed since the state was saved (sha256 {actual[:12]}, saved "
            f"{snapshot.disk_sha256[:12]}): remake the snapshot "
            "(python -m components.snapshot make --force)"
        )


def _check_request(name: str, http_port: int, ssh_port: int, uri: str) -> None:
    if not NAME_PATTERN.match(name):
        raise RestoreError(f"{name!r} is not a valid domain name (letters, digits, _ . -)")
    if http_port == ssh_port:
        raise RestoreError(f"HTTP and SSH port are both {http_port}")
    for port in (http_port, ssh_port):
        if not 1024 <= port <= 65535:
            raise RestoreError(f"port {port} is outside 1024-65535")
        holder = loopback_port_holder(port)
        if holder is not None:
            raise RestoreError(f"127.0.0.1:{port} is taken by {holder}")
    if libvirt_cli.domain_exists(name, uri):
        raise RestoreError(f"a domain named {name!r} exists already")


def overlay_path(snapshot: Snapshot, name: str, overlay_dir: Path | None = None) -> Path:
    return (overlay_dir or snapshot.directory / "clones") / f"{name}.qcow2"


def restore(
    snapshot: Snapshot,
    name: str,
    *,
    http_port: int,
    ssh_port: int,
    uri: str = libvirt_cli.LOCAL_URI,
    overlay_dir: Path | None = None,
    disk: Path | None = None,
    cpuset: str | None = None,
) -> RestoredClone:
    """Restore one clone; returns once its guest runs (not yet when it answers HTTP). `disk`:
    an existing overlay to use instead of a fresh one (checked like a fresh one). On any
    failure the domain and a fresh overlay are removed and the error raised."""
    if uri != libvirt_cli.LOCAL_URI:
        raise RestoreError(
            f"restoring needs the saved state on the libvirt host: only {libvirt_cli.LOCAL_URI} "
            f"is supported, not {uri}"
        )
    _check_request(name, http_port, ssh_port, uri)
    clone = RestoredClone(
        name=name,
        uuid=str(uuid.uuid4()),
        http_port=http_port,
        ssh_port=ssh_port,
        overlay=disk or overlay_path(snapshot, name, overlay_dir),
        created_at=time.monotonic(),
    )
    wall_start = time.time()
    fresh_overlay = disk is None
    try:
        if fresh_overlay:
            clone.overlay.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if clone.overlay.exists():
                raise RestoreError(f"{clone.overlay} exists already (a leftover clone?)")
            libvirt_cli.create_overlay(clone.overlay, snapshot.disk.resolve())
        clone.stages_s["overlay_made"] = time.monotonic() - clone.created_at
        check_disk(snapshot, clone.overlay)
        clone.stages_s["disk_checked"] = time.monotonic() - clone.created_at
        xml = restore_domain_xml(
            snapshot.saved_domain_xml,
            name=name,
            domain_uuid=clone.uuid,
            generation_id=str(uuid.uuid4()),
            directory=snapshot.directory,
            disk=clone.overlay,
            host_ports={snapshot.guest_http_port: http_port, snapshot.guest_ssh_port: ssh_port},
            cpuset=cpuset,
        )
        with snapshot.lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            replace_domain_xml(snapshot.state_file, xml)
            clone.stages_s["header_written"] = time.monotonic() - clone.created_at
            libvirt_cli.virsh("restore", str(snapshot.state_file), uri=uri)
        clone.stages_s["restore_returned"] = time.monotonic() - clone.created_at
        try:
            spawned = (QEMU_PID_DIR / f"{name}.pid").stat().st_mtime
            clone.stages_s["qemu_started"] = spawned - wall_start
        except OSError:
            pass  # libvirt keeps no pid file for it (another layout): the stage is unknown
        return clone
    except BaseException:
        libvirt_cli.destroy(name, uri)
        if fresh_overlay:
            clone.overlay.unlink(missing_ok=True)
        raise


def restore_until_serving(
    snapshot: Snapshot,
    name: str,
    *,
    http_port: int,
    ssh_port: int,
    timeout_s: float = 60.0,
    cpuset: str | None = None,
) -> RestoredClone:
    """Restore, then wait for the first HTTP 200 (stage "first_http_200"); on a timeout the
    clone is removed and TimeoutError raised."""
    clone = restore(snapshot, name, http_port=http_port, ssh_port=ssh_port, cpuset=cpuset)
    try:
        require_http_200(clone.url, timeout_s)
    except BaseException:
        remove(clone.name, clone.overlay)
        raise
    clone.stages_s["first_http_200"] = time.monotonic() - clone.created_at
    return clone


def remove(clone_name: str, overlay: Path, uri: str = libvirt_cli.LOCAL_URI) -> None:
    """Remove a restored clone and its overlay; idempotent."""
    libvirt_cli.destroy(clone_name, uri)
    overlay.unlink(missing_ok=True)


def sweep(prefix: str, uri: str = libvirt_cli.LOCAL_URI, root: Path | None = None) -> list[str]:
    """Remove every domain named `prefix`* and its overlay under any snapshot's clones/ (the
    overlays are no libvirt volumes: a sweep of the pools does not see them)."""
    removed = []
    for name in libvirt_cli.domain_names(prefix, uri):
        libvirt_cli.destroy(name, uri)
        removed.append(f"domain {name}")
    for path in overlays_named(prefix, root):
        path.unlink(missing_ok=True)
        removed.append(f"file {path}")
    return removed


def overlays_named(prefix: str, root: Path | None = None) -> list[Path]:
    """Restored clones' overlay disks named `prefix`*, under any snapshot."""
    return sorted((root or snapshot_root()).glob(f"*/clones/{prefix}*"))
