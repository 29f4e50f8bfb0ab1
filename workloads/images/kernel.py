"""The VM's kernel as an uncompressed ELF vmlinux, booted by QEMU through its PVH entry point.

Under software emulation a bzImage spends about 6 s decompressing itself (xz) before the
kernel prints its first line. QEMU boots an ELF vmlinux that carries a Xen PVH entry note
directly, so the image ships the kernel decompressed once at build time.
"""

from __future__ import annotations

import lzma
import struct
import zlib

ELF_MAGIC = b"\x7fELF"
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18
# Payload signatures inside a bzImage, in the order tried.
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b\x08"


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage (xz or gzip payload), like scripts/extract-vmlinux."""
    for magic, decompress in ((_XZ_MAGIC, _unxz), (_GZIP_MAGIC, _gunzip)):
        start = bzimage.find(magic)
        while start != -1:
            payload = decompress(bzimage[start:])
            if payload is not None and payload.startswith(ELF_MAGIC):
                return payload
            start = bzimage.find(magic, start + 1)
    raise ValueError("no xz or gzip compressed ELF kernel found in the bzImage")


def _unxz(data: bytes) -> bytes | None:
    try:
        return lzma.LZMADecompressor().decompress(data)
    except lzma.LZMAError:
        return None


def _gunzip(data: bytes) -> bytes | None:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    except zlib.error:
        return None


def elf_notes(elf: bytes) -> list[tuple[str, int, bytes]]:
    """(name, type, descriptor) of every note in the PT_NOTE segments of a 64-bit LE ELF."""
    if not elf.startswith(ELF_MAGIC) or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    notes = []
    for index in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + index * phentsize
        )
        if p_type != PT_NOTE:
            continue
        position, end = p_offset, p_offset + p_filesz
        while position + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, position)
            name_start = position + 12
            desc_start = name_start + _align4(namesz)
            name = elf[name_start : name_start + namesz].rstrip(b"\0").decode(errors="replace")
            notes.append((name, note_type, elf[desc_start : desc_start + descsz]))
            position = desc_start + _align4(descsz)
    return notes


def _align4(size: int) -> int:
    return (size + 3) & ~3


def has_pvh_entry(elf: bytes) -> bool:
    """True if QEMU can boot this ELF kernel directly (Xen PHYS32_ENTRY note present)."""
    return any(
        name == "Xen" and note_type == XEN_ELFNOTE_PHYS32_ENTRY
        for name, note_type, _ in elf_notes(elf)
    )
