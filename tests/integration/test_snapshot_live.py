"""A VM restored from its saved memory, for real: make (or find) the snapshot, restore two
clones side by side, each answers HTTP 200 on its own 127.0.0.1 ports; what they share is
what was measured; a disk that does not belong to the saved state is refused. Everything
made here is removed whatever happens, and checked to be gone.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components import libvirt_cli
from components import snapshot as snapshot_module
from components.guest_ssh import GuestSsh, pin_host_key
from components.host import free_loopback_ports, loopback_port_holder
from components.libvirt_save_image import read_header
from components.snapshot import Snapshot, ensure_snapshot, recipe_for_defaults, vm_images
from components.snapshot_identity import probe_identity, refresh_identity, shared_fields
from components.snapshot_restore import (
    DiskMismatchError,
    RestoredClone,
    overlay_path,
    remove,
    restore,
    restore_until_serving,
    sweep,
)

pytestmark = pytest.mark.integration

PREFIX = f"twinlab-snaptest-{secrets.token_hex(3)}-"


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    images = vm_images()
    return ensure_snapshot(recipe_for_defaults(images, 512, 1), images, libvirt_cli.LOCAL_URI)


@pytest.fixture(scope="module")
def clones(snapshot: Snapshot) -> Iterator[list[RestoredClone]]:
    """Two clones restored at the same time (the save image's header is shared: the lock must
    keep each restore's name and ports its own)."""
    made: list[RestoredClone] = []
    ports = [free_loopback_ports(2) for _ in (1, 2)]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(
                    restore_until_serving,
                    snapshot,
                    f"{PREFIX}{index}",
                    http_port=http_port,
                    ssh_port=ssh_port,
                )
                for index, (http_port, ssh_port) in enumerate(ports, start=1)
            ]
            for future in futures:
                made.append(future.result())
        yield made
    finally:
        for clone in made:
            remove(clone.name, clone.overlay)
        leftover = sweep(PREFIX)
        assert leftover == [], f"left behind: {leftover}"
        for http_port, ssh_port in ports:
            assert loopback_port_holder(http_port) is None
            assert loopback_port_holder(ssh_port) is None
        assert libvirt_cli.domain_names(PREFIX) == []


def guest(snapshot: Snapshot, clone: RestoredClone, known_hosts: Path | None = None) -> GuestSsh:
    return GuestSsh(
        clone.ssh_port, snapshot.private_key, known_hosts or snapshot.known_hosts, snapshot.ssh_user
    )


def test_two_clones_answer_on_their_own_ports(
    snapshot: Snapshot, clones: list[RestoredClone]
) -> None:
    assert len({clone.http_port for clone in clones}) == 2
    for clone in clones:
        with urllib.request.urlopen(clone.url, timeout=10) as answer:
            assert answer.status == 200
        stages = clone.stages_s
        assert 0 < stages["overlay_made"] <= stages["disk_checked"] <= stages["restore_returned"]
        assert stages["restore_returned"] <= stages["first_http_200"]
        print(f"{clone.name}: {json.dumps({k: round(v, 3) for k, v in stages.items()})}")
        definition = libvirt_cli.virsh("dumpxml", clone.name)
        assert f"hostfwd=tcp:127.0.0.1:{clone.http_port}-:8080" in definition
        assert f"<uuid>{clone.uuid}</uuid>" in definition
    # The saved state is unchanged by the restores: same stream, the maker's XML restorable.
    assert read_header(snapshot.state_file).stream_offset > 0


def test_clones_share_what_was_measured_and_each_reseeded_its_rng(
    snapshot: Snapshot, clones: list[RestoredClone]
) -> None:
    identities = [probe_identity(guest(snapshot, clone)) for clone in clones]
    # Measured on the first run (2026-11-30): all five are the saved guest's in every clone.
    assert shared_fields(identities) == ["boot_id", "machine_id", "mac", "ip", "host_key_sha256"]
    # The guest kernel reseeded its RNG on the new VM generation ID, once per restore.
    assert [identity.vm_fork_reseeds for identity in identities] == [1, 1]


def test_refreshed_host_keys_make_a_clone_distinct(
    snapshot: Snapshot, clones: list[RestoredClone], tmp_path: Path
) -> None:
    first, second = clones
    new_key = refresh_identity(guest(snapshot, first))
    pinned = tmp_path / "known_hosts"
    pin_host_key(pinned, new_key)
    refreshed = probe_identity(guest(snapshot, first, pinned))
    untouched = probe_identity(guest(snapshot, second))
    assert shared_fields([refreshed, untouched]) == ["boot_id", "machine_id", "mac", "ip"]
    # The clock now comes from the host (within an SSH round trip under emulation).
    assert abs(refreshed.clock_offset_s) < 10
    # Negative control: the old, shared key no longer opens the refreshed clone.
    with pytest.raises(Exception, match="exited 255"):
        guest(snapshot, first).run("true", timeout_s=60)


def test_a_disk_the_state_was_not_saved_with_is_refused(snapshot: Snapshot) -> None:
    name = f"{PREFIX}wrong-disk"
    wrong = overlay_path(snapshot, name)
    wrong.parent.mkdir(parents=True, exist_ok=True)
    # An overlay of the image's disk as booted, not of the disk as it was at save time.
    libvirt_cli.create_overlay(wrong, (snapshot.directory / "base.qcow2").resolve())
    try:
        http_port, ssh_port = free_loopback_ports(2)
        with pytest.raises(DiskMismatchError, match="not by the snapshot's saved disk"):
            restore(snapshot, name, http_port=http_port, ssh_port=ssh_port, disk=wrong)
        assert not libvirt_cli.domain_exists(name)
    finally:
        wrong.unlink(missing_ok=True)


def test_a_saved_disk_changed_since_the_save_is_refused(snapshot: Snapshot) -> None:
    changed = dataclasses.replace(snapshot, disk_sha256="0" * 64)
    name = f"{PREFIX}changed-disk"
    http_port, ssh_port = free_loopback_ports(2)
    with pytest.raises(DiskMismatchError, match="changed since the state was saved"):
        restore(changed, name, http_port=http_port, ssh_port=ssh_port)
    assert not libvirt_cli.domain_exists(name)
    assert not overlay_path(snapshot, name).exists()


def test_a_failed_make_leaves_no_domain_and_no_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Negative control of the maker: a boot that cannot answer in time (1 s) fails with the
    timeout named, and leaves nothing of the attempt."""
    root = Path("/var/lib/twinlab") / f"snaptest-{secrets.token_hex(3)}"
    monkeypatch.setenv("TWINLAB_SNAPSHOT_DIR", str(root))
    monkeypatch.setattr(snapshot_module, "MAKE_BOOT_TIMEOUT_S", 1.0)
    images = vm_images()
    recipe = recipe_for_defaults(images, 512, 1)
    try:
        with pytest.raises(TimeoutError, match="no HTTP 200 within 1 s"):
            snapshot_module.make_snapshot(recipe, images, libvirt_cli.LOCAL_URI)
        assert libvirt_cli.domain_names(f"{snapshot_module.MAKER_PREFIX}{recipe.key()}") == []
        assert not (root / recipe.key()).exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
