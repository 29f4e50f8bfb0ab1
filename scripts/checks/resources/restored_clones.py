"""Clones of a VM restored from its snapshot, for R1 (start time) and R4 (density); and, to
compare against, cold boots of the very same domain definition.

R1's definition holds as for the other cloners: the clone's storage (a fresh qcow2 overlay) is
made before the clock starts; the clock then runs from the create call (checking the disk
against the saved state, writing the clone's XML into the save image, `virsh restore`) to the
first HTTP 200.

    python -m scripts.checks.resources.restored_clones --repeats 5 --cold 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from components import libvirt_cli, snapshot_restore
from components.naming import clone_prefix
from components.snapshot import Snapshot, ensure_snapshot, recipe_for_defaults, vm_images
from components.snapshot_restore import RestoredClone, restore, restore_domain_xml
from scripts.checks.resources import footprint
from scripts.checks.resources.clones import Clone, Cloner
from scripts.checks.resources.start_time import measure_start_times
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import Sample, VariantLabel, write_samples
from scripts.checks.results.stats import summarize
from scripts.checks.targets.libvirt_domains import Virsh
from scripts.termination import run_main

RESTORED_READY_TIMEOUT_S = 60.0
COLD_READY_TIMEOUT_S = 300.0


class RestoredVmCloner(Cloner):
    kind = "vm"
    start_method = "restore"
    ready_timeout_s = RESTORED_READY_TIMEOUT_S

    def __init__(
        self,
        snapshot: Snapshot,
        stack: str,
        virsh: Virsh | None = None,
        label: VariantLabel | None = None,
        cpuset: str | None = None,
    ) -> None:
        # Filed under the restored variant, never averaged into the cold-booted VM's figures.
        super().__init__(
            f"snapshot {snapshot.key}", stack, label or VariantLabel("vm-restored", "vm")
        )
        self.snapshot = snapshot
        self.cpuset = cpuset  # pinned like the VM it is compared with (None: as saved)
        self.virsh = virsh or Virsh()
        self._restored: dict[str, RestoredClone] = {}
        # (name, stages) of every restore so far, in order: names are reused once removed.
        self.history: list[tuple[str, dict[str, float]]] = []

    @property
    def limit_mib(self) -> float:
        return float(self.snapshot.recipe.memory_mib)

    def domain_xml(
        self, name: str, disk: Path, http_port: int, ssh_port: int, cpuset: str | None
    ) -> str:
        """The snapshot's saved definition as a clone's: its own name, UUIDs, disk and ports."""
        return restore_domain_xml(
            self.snapshot.saved_domain_xml,
            name=name,
            domain_uuid=str(uuid.uuid4()),
            generation_id=str(uuid.uuid4()),
            directory=self.snapshot.directory,
            disk=disk,
            host_ports={
                self.snapshot.guest_http_port: http_port,
                self.snapshot.guest_ssh_port: ssh_port,
            },
            cpuset=cpuset,
        )

    def existing_names(self) -> list[str]:
        prefix = clone_prefix(self.stack)
        overlays = snapshot_restore.overlay_path(self.snapshot, "x").parent
        names = self.virsh.domain_names(prefix)
        if overlays.is_dir():
            names += [path.stem for path in overlays.glob(f"{prefix}*.qcow2")]
        return names

    def start(self, name: str) -> Clone:
        restored = restore(
            self.snapshot,
            name,
            http_port=self.ports.free_port(),
            ssh_port=self.ports.free_port(),
            cpuset=self.cpuset,
        )
        self._restored[name] = restored
        self.history.append((name, self.stages(name)))
        overlay_s = restored.stages_s["overlay_made"]
        return Clone(
            self.variant,
            name,
            restored.url,
            created_at=restored.created_at + overlay_s,
            create_call_s=restored.stages_s["restore_returned"] - overlay_s,
            storage_prepare_s=overlay_s,
            volumes=[("", str(restored.overlay))],
        )

    def stages(self, name: str) -> dict[str, float]:
        """Seconds from the create call (after the overlay) to each stage of a restore."""
        restored = self._restored[name]
        overlay_s = restored.stages_s["overlay_made"]
        return {
            stage: round(seconds - overlay_s, 4)
            for stage, seconds in restored.stages_s.items()
            if stage != "overlay_made"
        }

    def remove(self, clone: Clone) -> None:
        overlay = snapshot_restore.overlay_path(self.snapshot, clone.name)
        snapshot_restore.remove(clone.name, overlay)

    def memory(self, clone: Clone) -> footprint.MemoryReading:
        pid = self.virsh.qemu_pid(clone.name)
        return footprint.vm_memory(pid, guest_memory_mib=float(self.snapshot.recipe.memory_mib))


class ColdBootCloner(RestoredVmCloner):
    """The same domain the snapshot was saved from, booted from its kernel instead of restored:
    a fresh overlay of the image disk, then `virsh create`."""

    start_method = "boot"
    ready_timeout_s = COLD_READY_TIMEOUT_S

    def start(self, name: str) -> Clone:
        prepare_started = time.monotonic()
        overlay = snapshot_restore.overlay_path(self.snapshot, name)
        overlay.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        libvirt_cli.create_overlay(overlay, (self.snapshot.directory / "base.qcow2").resolve())
        http_port, ssh_port = self.ports.free_port(), self.ports.free_port()
        xml = self.domain_xml(name, overlay, http_port, ssh_port, cpuset=None)
        clone = Clone(
            self.variant,
            name,
            f"http://127.0.0.1:{http_port}/healthz",
            created_at=time.monotonic(),
            storage_prepare_s=time.monotonic() - prepare_started,
            volumes=[("", str(overlay))],
        )
        try:
            self.virsh.create_transient(xml)
        except BaseException:
            self.remove(clone)
            raise
        clone.create_call_s = time.monotonic() - clone.created_at
        return clone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.checks.resources.restored_clones")
    parser.add_argument("--repeats", type=int, default=5, help="restored clones, one by one")
    parser.add_argument("--cold", type=int, default=0, help="cold boots of the same domain")
    parser.add_argument("--stack", default="snaptime")
    parser.add_argument("--out", type=Path, help="write the samples here (JSON Lines)")
    args = parser.parse_args(argv)
    images = vm_images()
    recipe = recipe_for_defaults(images, 512, 1)
    snapshot = ensure_snapshot(recipe, images, libvirt_cli.LOCAL_URI)
    tags = run_tags(recipe.virt_mode)
    everything: list[Sample] = []
    try:
        for label, cloner, repeats in (
            ("restored", RestoredVmCloner(snapshot, args.stack), args.repeats),
            (
                "cold boot",
                ColdBootCloner(snapshot, args.stack, label=VariantLabel("vm", "vm")),
                args.cold,
            ),
        ):
            if repeats < 1:
                continue
            samples = measure_start_times(cloner, label, tags, repeats=repeats)
            values = [float(s.value) for s in samples if s.metric == "time_to_first_response_s"]
            print(f"{label}: create-to-first-200 {summarize(values).describe('s')}")
            print(f"  each: {[round(v, 3) for v in values]}, load avg {os.getloadavg()}")
            if not isinstance(cloner, ColdBootCloner):
                for name, stages in cloner.history:
                    print(f"  {name}: {json.dumps(stages)}")
            everything += samples
    finally:
        left = snapshot_restore.sweep(clone_prefix(args.stack))
        if left:
            print(f"removed leftovers: {left}", file=sys.stderr)
    if args.out:
        write_samples(args.out, everything)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
