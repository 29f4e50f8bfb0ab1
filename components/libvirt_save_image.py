"""The header of libvirt's QEMU save image (`virsh save`), and how to put another domain
definition in it.

A save image is a 92-byte header, a data area holding the domain XML and libvirt's migration
cookie (NUL-terminated, then zero padding: libvirt leaves tens of KiB free so the XML can be
replaced in place), then QEMU's migration stream. libvirt refuses `virsh restore --xml` with
another UUID ("Target domain uuid ... does not match source"), so two restored clones could
never run side by side. Writing the clone's XML into the header, as `virsh save-image-define`
does in place but without that check, lets each restore carry its own name, UUID, disk and
ports; the migration stream, where the guest's memory is, stays untouched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from components.errors import TwinlabError

MAGIC = b"LibvirtQemudSave"
# Written while a save is in progress; a crash leaves this magic behind.
PARTIAL_MAGIC = b"LibvirtQemudPart"
SUPPORTED_VERSIONS = (2,)
# magic, then version, data_len, was_running, compressed, cookie_offset, then 14 unused words.
_FIELDS = struct.Struct("<5I")
HEADER_BYTES = len(MAGIC) + _FIELDS.size + 14 * 4
MIGRATION_STREAM_MAGIC = b"QEVM"


class SaveImageError(TwinlabError):
    """The file is not a complete libvirt QEMU save image this code understands."""


@dataclass(frozen=True)
class SaveHeader:
    version: int
    data_len: int
    was_running: bool
    compressed: int
    cookie_offset: int
    domain_xml: str
    cookie: bytes  # NUL-terminated, as stored; b"" when there is none

    @property
    def stream_offset(self) -> int:
        return HEADER_BYTES + self.data_len


def parse_header(head: bytes, data: bytes, path: str = "save image") -> SaveHeader:
    """The header from the first HEADER_BYTES of a save image and its data area."""
    if head[: len(MAGIC)] == PARTIAL_MAGIC:
        raise SaveImageError(f"{path} is a partial save (the save was interrupted): remake it")
    if len(head) < HEADER_BYTES or head[: len(MAGIC)] != MAGIC:
        raise SaveImageError(f"{path} is not a libvirt QEMU save image (no {MAGIC.decode()})")
    version, data_len, was_running, compressed, cookie_offset = _FIELDS.unpack_from(
        head, len(MAGIC)
    )
    if version not in SUPPORTED_VERSIONS:
        raise SaveImageError(f"{path}: save image version {version} is not supported")
    if compressed:
        # The stream would need libvirt's decompressor, and restores would be slower.
        raise SaveImageError(f"{path} is compressed (format {compressed}); save it uncompressed")
    if len(data) != data_len:
        raise SaveImageError(f"{path} is truncated in its header ({len(data)} of {data_len})")
    xml_end = data.find(b"\0")
    if xml_end < 0:
        raise SaveImageError(f"{path}: domain XML in the header is not terminated")
    cookie = b""
    if cookie_offset:
        cookie_end = data.find(b"\0", cookie_offset)
        if cookie_offset <= xml_end or cookie_end < 0:
            raise SaveImageError(f"{path}: cookie offset {cookie_offset} is out of place")
        cookie = data[cookie_offset : cookie_end + 1]
    return SaveHeader(
        version=version,
        data_len=data_len,
        was_running=bool(was_running),
        compressed=compressed,
        cookie_offset=cookie_offset,
        domain_xml=data[:xml_end].decode(),
        cookie=cookie,
    )


def _read(handle: BinaryIO, path: Path) -> SaveHeader:
    head = handle.read(HEADER_BYTES)
    if head[: len(MAGIC)] not in (MAGIC, PARTIAL_MAGIC):
        raise SaveImageError(f"{path} is not a libvirt QEMU save image (no {MAGIC.decode()})")
    data_len = _FIELDS.unpack_from(head, len(MAGIC))[1]
    header = parse_header(head, handle.read(data_len), str(path))
    handle.seek(header.stream_offset)
    if handle.read(len(MIGRATION_STREAM_MAGIC)) != MIGRATION_STREAM_MAGIC:
        raise SaveImageError(f"{path}: no QEMU migration stream after the header")
    return header


def read_header(path: Path) -> SaveHeader:
    with path.open("rb") as handle:
        return _read(handle, path)


def data_area(header: SaveHeader, domain_xml: str) -> bytes:
    """The data area holding `domain_xml` and the header's cookie, padded to the same length."""
    xml = domain_xml.encode() + b"\0"
    if len(xml) + len(header.cookie) > header.data_len:
        raise SaveImageError(
            f"domain XML of {len(xml)} bytes does not fit the save image's "
            f"{header.data_len - len(header.cookie)} free bytes"
        )
    content = xml + header.cookie
    return content + b"\0" * (header.data_len - len(content))


def header_bytes(header: SaveHeader, cookie_offset: int) -> bytes:
    fields = _FIELDS.pack(
        header.version,
        header.data_len,
        int(header.was_running),
        header.compressed,
        cookie_offset,
    )
    return MAGIC + fields + b"\0" * (HEADER_BYTES - len(MAGIC) - len(fields))


def replace_domain_xml(path: Path, domain_xml: str) -> SaveHeader:
    """Write `domain_xml` into the save image's header in place; the stream is not touched.
    The caller serializes writers and restores (one header, one reader at a time)."""
    with path.open("r+b") as handle:
        header = _read(handle, path)
        data = data_area(header, domain_xml)
        cookie_offset = len(domain_xml.encode()) + 1 if header.cookie else 0
        handle.seek(0)
        handle.write(header_bytes(header, cookie_offset))
        handle.write(data)
        handle.flush()
    return read_header(path)
