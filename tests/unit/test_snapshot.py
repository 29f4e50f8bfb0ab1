"""The pure parts of the VM snapshot: recipe key, save-image header, restore XML, identity."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from components.libvirt_save_image import (
    HEADER_BYTES,
    MAGIC,
    PARTIAL_MAGIC,
    SaveImageError,
    read_header,
    replace_domain_xml,
)
from components.snapshot import Snapshot, SnapshotRecipe, kernel_cmdline_text, prune
from components.snapshot_identity import (
    GuestIdentity,
    host_keys_tar,
    parse_probe,
    shared_fields,
)
from components.snapshot_restore import QEMU_NS, RestoreError, restore, restore_domain_xml

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "snapshot"
SAVED_XML = (DATA / "saved-domain.xml").read_text()
COOKIE = b"<cookie>\n  <cpu mode='custom'/>\n</cookie>\n\0"
STREAM = b"QEVM\x00\x00\x00\x03" + bytes(range(256)) * 64


def save_image(path: Path, xml: str, data_len: int = 8192, magic: bytes = MAGIC) -> Path:
    """A save image shaped as libvirt 9.0 writes it: header, XML, cookie, padding, stream."""
    xml_bytes = xml.encode() + b"\0"
    data = xml_bytes + COOKIE
    data += b"\0" * (data_len - len(data))
    fields = struct.pack("<5I", 2, data_len, 1, 0, len(xml_bytes))
    header = magic + fields + b"\0" * (HEADER_BYTES - len(magic) - len(fields))
    path.write_bytes(header + data + STREAM)
    return path


def recipe(**changes: object) -> SnapshotRecipe:
    base = SnapshotRecipe(
        image_recipe_hash="63a230b1" * 8,
        memory_mib=512,
        vcpus=1,
        virt_mode="tcg",
        app_environment=(("TWINLAB_APP_VERSION", "1.0.0"), ("TWINLAB_WORKERS", "2")),
        qemu_version="QEMU emulator version 7.2.22",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- recipe key -------------------------------------------------------------------------


def test_recipe_key_is_stable_and_short() -> None:
    assert recipe().key() == recipe().key()
    assert len(recipe().key()) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"image_recipe_hash": "0" * 64},
        {"memory_mib": 1024},
        {"vcpus": 2},
        {"virt_mode": "kvm"},
        {"app_environment": (("TWINLAB_APP_VERSION", "1.0.0"), ("TWINLAB_WORKERS", "4"))},
        {"qemu_version": "QEMU emulator version 8.0.0"},
        {"tcg_cache_mib": 64},
    ],
)
def test_every_input_of_the_saved_state_changes_the_key(change: dict[str, object]) -> None:
    assert recipe(**change).key() != recipe().key()


def test_qemus_default_cache_keeps_the_key_snapshots_had_before_the_option() -> None:
    fields = dataclasses.asdict(recipe())
    del fields["tcg_cache_mib"]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    assert recipe().key() == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    back = SnapshotRecipe.from_record(dataclasses.asdict(recipe(tcg_cache_mib=64)))
    assert back.tcg_cache_mib == 64 and back.key() == recipe(tcg_cache_mib=64).key()


def test_a_recipe_back_from_pulumi_properties_has_the_same_key() -> None:
    """Pulumi returns numbers as floats and tuples as lists: the key must not change, or an
    `up` would make a second snapshot."""
    record = dataclasses.asdict(recipe())
    record.update(memory_mib=512.0, vcpus=1.0, snapshot_format=1.0)
    record["app_environment"] = [list(pair) for pair in recipe().app_environment]
    assert SnapshotRecipe.from_record(record).key() == recipe().key()
    with pytest.raises(ValueError, match="whole number"):
        SnapshotRecipe.from_record({**record, "memory_mib": 512.5})
    with pytest.raises(ValueError, match="not a snapshot recipe"):
        SnapshotRecipe.from_record({**record, "virt_mode": "xen"})


def test_snapshot_record_round_trips(tmp_path: Path) -> None:
    snapshot = Snapshot(
        directory=tmp_path,
        recipe=recipe(),
        saved_domain_xml=SAVED_XML,
        disk_sha256="ab" * 32,
        disk_bytes=1,
        state_bytes=2,
        guest_http_port=8080,
        guest_ssh_port=22,
        ssh_user="twin",
        guest_host_key="ssh-ed25519 AAAA",
        made_at=1.0,
        timings_s={"save": 3.0},
    )
    assert Snapshot.from_json(snapshot.to_json(), tmp_path) == snapshot


def test_kernel_command_line_carries_key_and_environment() -> None:
    line = kernel_cmdline_text("console=ttyS0 quiet rw", "ssh-ed25519 AAAA k", {"A": "1"})
    words = line.split()
    assert {"console=ttyS0", "quiet", "rw"} <= set(words)
    assert any(word.startswith("twinlab.ssh_key=") for word in words)
    assert any(word.startswith("twinlab.env=") for word in words)


# --- save image header ------------------------------------------------------------------


def test_header_reads_the_domain_xml_and_cookie(tmp_path: Path) -> None:
    header = read_header(save_image(tmp_path / "s.save", SAVED_XML))
    assert header.domain_xml == SAVED_XML
    assert header.cookie == COOKIE
    assert header.was_running
    assert header.stream_offset == HEADER_BYTES + 8192


def test_replacing_the_xml_keeps_cookie_and_stream_byte_for_byte(tmp_path: Path) -> None:
    path = save_image(tmp_path / "s.save", SAVED_XML)
    longer = SAVED_XML.replace("twinlab-snapshot-", "twinlab-a-much-longer-clone-name-")
    header = replace_domain_xml(path, longer)
    assert header.domain_xml == longer
    assert header.cookie == COOKIE
    content = path.read_bytes()
    assert content[header.stream_offset :] == STREAM
    assert len(content) == HEADER_BYTES + 8192 + len(STREAM)


def test_an_xml_too_large_for_the_header_is_refused_and_the_file_untouched(
    tmp_path: Path,
) -> None:
    path = save_image(tmp_path / "s.save", SAVED_XML, data_len=4096)
    before = path.read_bytes()
    with pytest.raises(SaveImageError, match="does not fit"):
        replace_domain_xml(path, SAVED_XML + "<!--" + "x" * 4096 + "-->")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a save image at all" * 10, "not a libvirt QEMU save image"),
        (PARTIAL_MAGIC + b"\0" * 200, "interrupted"),
    ],
)
def test_what_is_not_a_complete_save_image_is_named(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "s.save"
    path.write_bytes(content)
    with pytest.raises(SaveImageError, match=message):
        read_header(path)


def test_a_header_without_a_stream_after_it_is_refused(tmp_path: Path) -> None:
    path = save_image(tmp_path / "s.save", SAVED_XML)
    path.write_bytes(path.read_bytes()[: HEADER_BYTES + 8192])
    with pytest.raises(SaveImageError, match="no QEMU migration stream"):
        read_header(path)


# --- restore XML -------------------------------------------------------------------------


def clone_xml(**changes: object) -> str:
    arguments: dict[str, object] = {
        "name": "twinlab-t-clone-1",
        "domain_uuid": "11111111-2222-3333-4444-555555555555",
        "generation_id": "66666666-7777-8888-9999-000000000000",
        "directory": Path("/srv/snap"),
        "disk": Path("/srv/snap/clones/twinlab-t-clone-1.qcow2"),
        "host_ports": {8080: 31080, 22: 31022},
    }
    arguments.update(changes)
    return restore_domain_xml(SAVED_XML, **arguments)  # type: ignore[arg-type]


def test_restore_xml_renames_and_repoints_the_clone() -> None:
    root = ET.fromstring(clone_xml(cpuset="1"))
    assert root.findtext("name") == "twinlab-t-clone-1"
    assert root.findtext("uuid") == "11111111-2222-3333-4444-555555555555"
    assert root.findtext("genid") == "66666666-7777-8888-9999-000000000000"
    assert root.findtext("os/kernel") == "/srv/snap/vmlinux"
    assert root.findtext("os/initrd") == "/srv/snap/initrd.img"
    source = root.find("devices/disk/source")
    assert source is not None
    assert source.attrib == {"file": "/srv/snap/clones/twinlab-t-clone-1.qcow2"}
    vcpu = root.find("vcpu")
    assert vcpu is not None and vcpu.get("cpuset") == "1"
    args = [arg.get("value") for arg in root.iterfind(f"{{{QEMU_NS}}}commandline/*")]
    netdev = next(arg for arg in args if arg and arg.startswith("user,"))
    assert "hostfwd=tcp:127.0.0.1:31080-:8080" in netdev
    assert "hostfwd=tcp:127.0.0.1:31022-:22" in netdev


def test_restore_xml_keeps_what_the_guest_sees() -> None:
    """Memory, vCPUs, machine, CPU model, devices and the command line are the saved guest's:
    only names, paths and host-side ports may differ."""
    saved, clone = ET.fromstring(SAVED_XML), ET.fromstring(clone_xml())
    for path in ("memory", "os/type", "os/cmdline", "cpu/model"):
        assert ET.tostring(saved.find(path)) == ET.tostring(clone.find(path)), path  # type: ignore[arg-type]
    assert [d.tag for d in saved.find("devices")] == [d.tag for d in clone.find("devices")]  # type: ignore[union-attr]
    assert clone.find("devices/serial/source") is None


def test_restore_xml_keeps_the_qemu_namespace_prefix() -> None:
    text = clone_xml()
    assert "<qemu:commandline>" in text
    assert "ns0:" not in text


def test_every_forward_needs_a_host_port() -> None:
    with pytest.raises(RestoreError, match="guest port 22"):
        clone_xml(host_ports={8080: 31080})
    with pytest.raises(RestoreError, match="forwards no guest port"):
        clone_xml(host_ports={8080: 31080, 22: 31022, 9000: 31090})


@pytest.mark.parametrize(
    ("name", "http_port", "ssh_port", "message"),
    [
        ("bad name/with slash", 31080, 31022, "not a valid domain name"),
        ("twinlab-t-clone-1", 31080, 31080, "both 31080"),
        ("twinlab-t-clone-1", 80, 31022, "outside 1024-65535"),
    ],
)
def test_bad_restore_requests_fail_before_anything_is_made(
    tmp_path: Path, name: str, http_port: int, ssh_port: int, message: str
) -> None:
    snapshot = Snapshot(
        directory=tmp_path,
        recipe=recipe(),
        saved_domain_xml=SAVED_XML,
        disk_sha256="",
        disk_bytes=0,
        state_bytes=0,
        guest_http_port=8080,
        guest_ssh_port=22,
        ssh_user="twin",
        guest_host_key="",
        made_at=0.0,
    )
    with pytest.raises(RestoreError, match=message):
        restore(snapshot, name, http_port=http_port, ssh_port=ssh_port)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RestoreError, match="only qemu:///system"):
        restore(snapshot, "x", http_port=1, ssh_port=2, uri="qemu+ssh://h/system")


# --- identity ---------------------------------------------------------------------------

PROBE_OUTPUT = """boot_id=1ae68920-ed3e-4d4b-a123-fd15983df0e5
machine_id=7054f93223954662862baf690843ae47
mac=52:54:00:12:34:56
ip=10.0.2.15/24
host_key=SHA256:u0Xek9aNf07e1DvwqLndTnjvOZQLXR/gAuzNAmmrKuQ
clock_s=1796039520.250000000
vm_fork_reseeds=1
"""


def test_probe_output_is_parsed() -> None:
    identity = parse_probe(PROBE_OUTPUT, host_time_s=1796039770.0)
    assert identity.boot_id == "1ae68920-ed3e-4d4b-a123-fd15983df0e5"
    assert identity.clock_offset_s == -249.75
    assert identity.vm_fork_reseeds == 1


def test_shared_fields_are_those_all_clones_have_in_common() -> None:
    one = parse_probe(PROBE_OUTPUT, 0.0)
    other: GuestIdentity = dataclasses.replace(one, host_key_sha256="SHA256:other")
    assert shared_fields([one, one]) == ["boot_id", "machine_id", "mac", "ip", "host_key_sha256"]
    assert shared_fields([one, other]) == ["boot_id", "machine_id", "mac", "ip"]


def test_host_keys_are_made_for_every_type_with_root_only_private_keys(tmp_path: Path) -> None:
    archive, public = host_keys_tar(tmp_path)
    assert public.startswith("ssh-ed25519 ")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for key_type in ("rsa", "ecdsa", "ed25519"):
        private = members[f"ssh_host_{key_type}_key"]
        assert (private.uid, private.mode) == (0, 0o600)
        assert members[f"ssh_host_{key_type}_key.pub"].mode == 0o644
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ED25519" in fingerprint


def test_prune_keeps_the_current_images_snapshots_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINLAB_SNAPSHOT_DIR", str(tmp_path))

    def made(recipe_hash: str) -> Path:
        current = recipe(image_recipe_hash=recipe_hash)
        directory = tmp_path / current.key()
        directory.mkdir()
        record = Snapshot(
            directory=directory,
            recipe=current,
            saved_domain_xml="",
            disk_sha256="",
            disk_bytes=0,
            state_bytes=0,
            guest_http_port=8080,
            guest_ssh_port=22,
            ssh_user="twin",
            guest_host_key="",
            made_at=0.0,
        )
        (directory / "meta.json").write_text(record.to_json())
        return directory

    keep, old = made("a" * 64), made("b" * 64)
    unfinished = tmp_path / "0123456789abcdef"
    unfinished.mkdir()
    removed = prune("a" * 64, "qemu:///system")
    assert sorted(removed) == sorted([str(old), str(unfinished)])
    assert keep.is_dir() and not old.exists() and not unfinished.exists()


@pytest.mark.parametrize("cache_mib", [None, 64])
def test_the_snapshot_makers_domain_passes_libvirts_schema_with_its_cache_size(
    cache_mib: int | None, tmp_path: Path
) -> None:
    from components.snapshot import maker_domain_xml
    from tests.domain_xml import schema_problems

    xml = maker_domain_xml(
        name="twinlab-snapshot-maker",
        recipe=recipe(tcg_cache_mib=cache_mib),
        directory=tmp_path,
        cmdline="console=ttyS0 root=/dev/vda",
        http_port=18999,
        ssh_port=12999,
        guest_http_port=8080,
        guest_ssh_port=22,
    )
    assert schema_problems(xml) is None
    assert ("<tb-cache unit='MiB'>64</tb-cache>" in xml) == (cache_mib == 64)
