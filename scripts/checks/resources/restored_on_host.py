"""Clones restored from a VM's memory snapshot on a remote host, through its handle (S1 when
the stack's VM is on another machine).

The snapshot is the host's: its files live there, at the same path as on any twinlab machine
(components/snapshot.py's root, /var/lib/twinlab/snapshots/KEY, as `python -m
components.snapshot make` leaves them on the host), and nothing of it is read here. Each step
of a restore (components/snapshot_restore.py `restore`) runs on the host over its SSH: the
fresh overlay (qemu-img), the disk check (the overlay's backing file and the disk's sha256),
then, under the snapshot's restore lock (flock(1), the same lock a local restore takes there),
the clone's XML written into the save image's header and `virsh restore`. The clock runs as
for a local restore: from after the overlay to the first HTTP 200 (through an SSH forward).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from components.errors import TwinlabError
from components.libvirt_save_image import (
    HEADER_BYTES,
    MAGIC,
    SaveHeader,
    data_area,
    header_bytes,
    parse_header,
)
from components.naming import clone_prefix
from components.snapshot import META_NAME, Snapshot, SnapshotRecipe, snapshot_dir
from components.snapshot_restore import overlay_path
from scripts.checks.resources import footprint
from scripts.checks.resources.clones import Clone, PortAllocator
from scripts.checks.resources.errors import CloneError
from scripts.checks.resources.restored_clones import RestoredVmCloner
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.libvirt_domains import Virsh, disk_chain

# A fresh overlay on the snapshot's disk; refused when one of that name is left over.
MAKE_OVERLAY = (
    'mkdir -p "$(dirname "$0")" && if [ -e "$0" ]; then echo "$0 exists already" >&2; exit 1; '
    'fi && qemu-img create -q -f qcow2 -F qcow2 -b "$1" "$0"'
)
# Under the snapshot's lock: the clone's header written in place, then the restore.
WRITE_HEADER_AND_RESTORE = (
    'exec 9>"$0" && flock 9 && base64 -d | dd of="$1" conv=notrunc status=none && '
    'virsh -q -c "$2" restore "$1"'
)


def host_snapshot(host: HostHandle, recipe: SnapshotRecipe) -> Snapshot:
    """The host's snapshot for `recipe`; TwinlabError naming the fix when it has none."""
    directory = snapshot_dir(recipe)
    try:
        snapshot = Snapshot.from_json(host.read_text(str(directory / META_NAME)), directory)
    except FileNotFoundError:
        raise TwinlabError(
            f"host {host} has no snapshot {recipe.key()} in {directory}: make it there "
            "(python -m components.snapshot make, on that host)"
        ) from None
    except (ValueError, TypeError, KeyError) as error:
        raise TwinlabError(
            f"host {host}: {directory} holds no complete snapshot ({error})"
        ) from None
    if snapshot.recipe != recipe:
        raise TwinlabError(f"host {host}: the snapshot in {directory} is of another recipe")
    return snapshot


class HostRestoredVmCloner(RestoredVmCloner):
    """RestoredVmCloner whose every step runs on the snapshot's remote host."""

    def __init__(
        self,
        snapshot: Snapshot,
        stack: str,
        virsh: Virsh,
        label: VariantLabel | None = None,
        cpuset: str | None = None,
    ) -> None:
        super().__init__(snapshot, stack, virsh, label, cpuset)
        self.host = virsh.host
        self.ports = PortAllocator(self.host)
        self._header: SaveHeader | None = None

    def _on_host(self, script: str, *args: str, input_text: str | None = None) -> str:
        done = self.host.run(["sh", "-c", script, *args], input_text=input_text, timeout_s=120)
        if done.returncode != 0:
            raise CloneError(f"host {self.host}: {done.stderr.strip()[-300:]}")
        return done.stdout

    def header(self) -> SaveHeader:
        """The save image's header as saved (read once: restores change its XML only)."""
        if self._header is None:
            state = str(self.snapshot.state_file)
            head = base64.b64decode(self._on_host('head -c "$1" "$0" | base64', state, "4096"))
            if head[: len(MAGIC)] != MAGIC or len(head) < HEADER_BYTES:
                raise CloneError(f"host {self.host}: {state} is not a libvirt save image")
            data_len = int.from_bytes(head[len(MAGIC) + 4 : len(MAGIC) + 8], "little")
            size = str(HEADER_BYTES + data_len)
            whole = base64.b64decode(self._on_host('head -c "$1" "$0" | base64', state, size))
            self._header = parse_header(whole[:HEADER_BYTES], whole[HEADER_BYTES:], state)
        return self._header

    def existing_names(self) -> list[str]:
        prefix = clone_prefix(self.stack)
        overlays = overlay_path(self.snapshot, "x").parent
        listed = self.host.run(["sh", "-c", 'ls -1 "$0" 2>/dev/null || true', str(overlays)])
        names = [Path(n).stem for n in listed.stdout.split() if n.startswith(prefix)]
        return self.virsh.domain_names(prefix) + names

    def _check_disk(self, overlay: Path) -> None:
        """components/snapshot_restore.check_disk, on the host."""
        chain = disk_chain(str(overlay), self.host)
        expected = str(self.snapshot.disk)
        if len(chain) < 2 or chain[1].filename != expected:
            raise CloneError(f"host {self.host}: {overlay} is not backed by {expected}")
        digest = self._on_host('sha256sum "$0"', str(self.snapshot.disk)).split(" ")[0]
        if digest != self.snapshot.disk_sha256:
            raise CloneError(
                f"host {self.host}: {self.snapshot.disk} changed since the state was saved: "
                "remake the snapshot there (python -m components.snapshot make --force)"
            )

    def start(self, name: str) -> Clone:
        http_port, ssh_port = self.ports.free_port(), self.ports.free_port()
        header = self.header()
        overlay = overlay_path(self.snapshot, name)
        created_at = time.monotonic()
        self._on_host(MAKE_OVERLAY, str(overlay), str(self.snapshot.disk))
        overlay_s = time.monotonic() - created_at
        try:
            self._check_disk(overlay)
            disk_checked_s = time.monotonic() - created_at
            xml = self.domain_xml(name, overlay, http_port, ssh_port, self.cpuset)
            cookie_offset = len(xml.encode()) + 1 if header.cookie else 0
            written = header_bytes(header, cookie_offset) + data_area(header, xml)
            self._on_host(
                WRITE_HEADER_AND_RESTORE,
                str(self.snapshot.lock_file),
                str(self.snapshot.state_file),
                self.host.virsh_uri,
                input_text=base64.b64encode(written).decode(),
            )
        except BaseException:
            self.virsh.destroy(name)
            self.host.run(["rm", "-f", "--", str(overlay)])
            raise
        returned_s = time.monotonic() - created_at
        self.history.append(
            (
                name,
                {
                    "disk_checked": round(disk_checked_s - overlay_s, 4),
                    "restore_returned": round(returned_s - overlay_s, 4),
                },
            )
        )
        return Clone(
            self.variant,
            name,
            f"http://127.0.0.1:{http_port}/healthz",
            created_at=created_at + overlay_s,
            create_call_s=returned_s - overlay_s,
            storage_prepare_s=overlay_s,
            volumes=[("", str(overlay))],
        )

    def stages(self, name: str) -> dict[str, float]:
        return next(stages for clone, stages in reversed(self.history) if clone == name)

    def remove(self, clone: Clone) -> None:
        self.virsh.destroy(clone.name)
        overlay = overlay_path(self.snapshot, clone.name)
        self.host.run(["rm", "-f", "--", str(overlay)])

    def memory(self, clone: Clone) -> footprint.MemoryReading:
        pid = self.virsh.qemu_pid(clone.name)
        return footprint.vm_memory(
            pid, guest_memory_mib=float(self.snapshot.recipe.memory_mib), host=self.host
        )
