"""S1's restores on a remote host go through its handle: the overlay, the disk check, the
header write and `virsh restore` are commands on the host (here a handle that runs them on
this machine but reads as remote, with virsh recorded instead of run), the snapshot is read
there, and a host without the snapshot is named with the fix."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from components.errors import TwinlabError
from components.libvirt_save_image import read_header
from components.snapshot import META_NAME, Snapshot
from scripts.checks.resources.restored_on_host import HostRestoredVmCloner, host_snapshot
from scripts.checks.targets.host import DEFAULT_TIMEOUT_S, HostHandle, SshAccess
from scripts.checks.targets.libvirt_domains import Virsh
from tests.unit.test_snapshot import SAVED_XML, recipe, save_image

pytestmark = pytest.mark.unit


class HostHere(HostHandle):
    """A "remote" host that is this machine: commands run here and are recorded; virsh is
    recorded only (no libvirtd is touched)."""

    def __init__(self) -> None:
        super().__init__(
            "far",
            "ssh://root@far",
            "qemu+ssh://root@far/system",
            SshAccess("root", "far", 22, None),
        )
        self.ran: list[list[str]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.ran.append(argv)
        if argv[0] == "virsh":
            return subprocess.CompletedProcess(argv, 0, "", "")
        if argv[:2] == ["sh", "-c"] and "virsh" in argv[2]:  # the header write, then restore
            argv = ["sh", "-c", argv[2].split(" && virsh")[0], *argv[3:]]
        return subprocess.run(argv, input=input_text, capture_output=True, text=True, check=False)


def snapshot_in(directory: Path) -> Snapshot:
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(directory / "disk.qcow2"), "16M"],
        check=True,
    )
    save_image(directory / "state.save", SAVED_XML)
    return Snapshot(
        directory=directory,
        recipe=recipe(),
        saved_domain_xml=SAVED_XML,
        disk_sha256=hashlib.sha256((directory / "disk.qcow2").read_bytes()).hexdigest(),
        disk_bytes=0,
        state_bytes=0,
        guest_http_port=8080,
        guest_ssh_port=22,
        ssh_user="twin",
        guest_host_key="",
        made_at=0.0,
    )


def test_a_restore_on_a_remote_host_runs_every_step_there(tmp_path: Path) -> None:
    host = HostHere()
    snapshot = snapshot_in(tmp_path)
    cloner = HostRestoredVmCloner(snapshot, "t", Virsh(host))
    clone = cloner.start("twinlab-t-clone-1")
    scripts = " ".join(" ".join(argv) for argv in host.ran)
    for step in ("qemu-img create", "qemu-img info", "sha256sum", "flock 9", "restore"):
        assert step in scripts, step
    header = read_header(snapshot.state_file)  # the clone's definition, written on the host
    assert "<name>twinlab-t-clone-1</name>" in header.domain_xml
    overlay = tmp_path / "clones" / "twinlab-t-clone-1.qcow2"
    assert overlay.exists() and clone.url.startswith("http://127.0.0.1:")
    assert "twinlab-t-clone-1" in cloner.existing_names()
    cloner.remove(clone)
    assert not overlay.exists()


def test_a_disk_changed_since_the_save_is_refused_and_the_overlay_removed(
    tmp_path: Path,
) -> None:
    host = HostHere()
    snapshot = snapshot_in(tmp_path)
    changed = HostRestoredVmCloner(
        Snapshot(**{**snapshot.__dict__, "disk_sha256": "0" * 64}), "t", Virsh(host)
    )
    with pytest.raises(TwinlabError, match="changed since the state was saved"):
        changed.start("twinlab-t-clone-1")
    assert not (tmp_path / "clones" / "twinlab-t-clone-1.qcow2").exists()
    assert not any("flock 9" in " ".join(argv) for argv in host.ran)


def test_a_host_without_the_snapshot_is_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TWINLAB_SNAPSHOT_DIR", str(tmp_path))
    host = HostHere()
    with pytest.raises(TwinlabError, match=r"has no snapshot .* make it there"):
        host_snapshot(host, recipe())
    assert ["cat", "--", str(tmp_path / recipe().key() / META_NAME)] in host.ran
