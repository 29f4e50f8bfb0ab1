"""Module load order from modules.dep, the newc cpio writer, and the vmlinux extraction."""

from __future__ import annotations

import lzma
import stat
import struct

import pytest

from workloads.images.initramfs import (
    Entry,
    cpio_newc,
    initramfs_entries,
    load_order,
    module_name,
)
from workloads.images.kernel import elf_notes, extract_vmlinux, has_pvh_entry

# Lines captured from the bookworm 6.1 kernel's modules.dep.
MODULES_DEP = """\
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko \
kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko \
kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko \
kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
""".replace("\\\n", "")


def test_module_names_normalise_dashes_and_suffixes() -> None:
    assert module_name("kernel/arch/x86/crypto/crc32c-intel.ko") == "crc32c_intel"
    assert module_name("kernel/fs/ext4/ext4.ko.xz") == "ext4"


def test_load_order_puts_dependencies_first_once() -> None:
    order = load_order(MODULES_DEP, ["virtio_pci", "virtio_blk", "ext4", "virtio_net"])
    names = [module_name(path) for path in order]
    assert len(names) == len(set(names))
    for module, needs in [
        ("virtio_pci", "virtio"),
        ("virtio_blk", "virtio_ring"),
        ("ext4", "jbd2"),
        ("ext4", "crc16"),
        ("virtio_net", "net_failover"),
        ("net_failover", "failover"),
    ]:
        assert names.index(needs) < names.index(module)
    assert "crc32c_intel" not in names


def test_load_order_names_a_missing_module_and_who_needs_it() -> None:
    with pytest.raises(KeyError, match="virtio_scsi"):
        load_order(MODULES_DEP, ["virtio_scsi"])
    broken = MODULES_DEP.replace("kernel/fs/mbcache.ko:\n", "")
    with pytest.raises(KeyError, match=r"mbcache .*needed by ext4"):
        load_order(broken, ["ext4"])


def parse_newc(archive: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """A reader written from the format description, to check the writer."""
    members: list[tuple[str, int, bytes, tuple[int, int]]] = []
    offset = 0
    while True:
        assert archive[offset : offset + 6] == b"070701"
        fields = [int(archive[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmajor, rminor, namesize = (
            fields[1], fields[6], fields[9], fields[10], fields[11],
        )  # fmt: skip
        name_start = offset + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = (name_start + namesize + 3) & ~3
        data = archive[data_start : data_start + filesize]
        offset = (data_start + filesize + 3) & ~3
        if name == "TRAILER!!!":
            assert offset == len(archive)
            return members
        members.append((name, mode, data, (rmajor, rminor)))


def test_cpio_newc_round_trips_files_links_dirs_and_devices() -> None:
    entries = [
        Entry("bin", stat.S_IFDIR | 0o755),
        Entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\n"),
        Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        Entry("odd", stat.S_IFREG | 0o644, b"12345"),
    ]
    parsed = parse_newc(cpio_newc(entries))
    assert [(e.name, e.mode, e.data, e.rdev) for e in entries] == parsed
    assert cpio_newc(entries) == cpio_newc(entries)  # reproducible


def test_initramfs_has_init_console_busybox_and_ordered_modules() -> None:
    modules = {"virtio.ko": b"a", "virtio_pci.ko": b"b", "ext4.ko": b"c"}
    parsed = {name: (mode, data) for name, mode, data, _ in parse_newc(
        cpio_newc(initramfs_entries(b"#!/bin/sh\n", b"BB", modules))
    )}  # fmt: skip
    assert parsed["init"] == (stat.S_IFREG | 0o755, b"#!/bin/sh\n")
    assert stat.S_ISCHR(parsed["dev/console"][0])
    assert parsed["bin/switch_root"] == (stat.S_IFLNK | 0o777, b"busybox")
    module_files = sorted(name for name in parsed if name.startswith("modules/"))
    assert module_files == [
        "modules/00-virtio.ko",
        "modules/01-virtio_pci.ko",
        "modules/02-ext4.ko",
    ]


def fake_elf(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal 64-bit ELF with one PT_NOTE segment holding `notes`."""
    note_bytes = b""
    for name, note_type, desc in notes:
        name_z = name + b"\0"
        note_bytes += struct.pack("<III", len(name_z), len(desc), note_type)
        note_bytes += name_z.ljust((len(name_z) + 3) & ~3, b"\0")
        note_bytes += desc.ljust((len(desc) + 3) & ~3, b"\0")
    header = bytearray(64)
    header[0:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(note_bytes), len(note_bytes), 4)
    return bytes(header) + phdr + note_bytes


def test_pvh_entry_note_is_found() -> None:
    with_pvh = fake_elf([(b"Xen", 6, b"linux\0"), (b"Xen", 18, b"\x50\x08\x00\x01")])
    without = fake_elf([(b"Xen", 6, b"linux\0"), (b"GNU", 3, b"\1" * 20)])
    assert has_pvh_entry(with_pvh)
    assert not has_pvh_entry(without)
    assert elf_notes(with_pvh)[1] == ("Xen", 18, b"\x50\x08\x00\x01")


def test_vmlinux_is_extracted_from_an_xz_bzimage() -> None:
    vmlinux = fake_elf([(b"Xen", 18, b"\0\0\0\0")]) + b"kernel text" * 100
    bzimage = b"MZ setup code \xfd7zXZ\x00 not really" + lzma.compress(vmlinux) + b"trailer"
    assert extract_vmlinux(bzimage) == vmlinux


def test_extraction_fails_clearly_without_a_payload() -> None:
    with pytest.raises(ValueError, match="no xz or gzip"):
        extract_vmlinux(b"MZ" + b"\0" * 100)
