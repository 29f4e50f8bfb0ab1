"""The manifest of one image build: what was built, where it is, how big, how long it took."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MANIFEST_NAME = "manifest.json"
# Files the manifest points at, by field name; stored absolute, re-based on load.
PATH_FIELDS = ("vm_disk_qcow2", "vm_kernel", "vm_initrd", "userland_tar")


@dataclass(frozen=True)
class ImageSizes:
    userland_bytes: int
    container_image_bytes: int
    vm_disk_qcow2_bytes: int
    vm_disk_virtual_bytes: int
    # The uncompressed vmlinux the VM boots, and the same kernel as Debian ships it (bzImage).
    vm_kernel_bytes: int
    vm_kernel_bzimage_bytes: int
    vm_initrd_bytes: int


@dataclass(frozen=True)
class ImageSet:
    """One app userland in two packagings, as recorded in <cache>/images/<hash>/manifest.json."""

    recipe_hash: str
    app_version: str
    container_image: str
    container_image_id: str
    vm_disk_qcow2: Path
    vm_kernel: Path
    vm_initrd: Path
    vm_cmdline: str
    guest_http_port: int
    guest_ssh_port: int
    ssh_user: str
    sizes: ImageSizes
    package_list_sha256: str
    userland_packages: dict[str, str]
    # From PyPI, pinned (images/app-server.txt): {name: version}.
    python_packages: dict[str, str]
    vm_package_count: int
    vm_kernel_release: str
    vm_ssh_host_key: str
    initramfs_modules: tuple[str, ...]
    userland_tar: Path
    build_times_s: dict[str, float]
    built_at: str
    debian_suite: str

    @property
    def directory(self) -> Path:
        return self.vm_disk_qcow2.parent

    def to_json(self) -> str:
        record = asdict(self)
        for name in PATH_FIELDS:
            record[name] = str(record[name])
        record["initramfs_modules"] = list(self.initramfs_modules)
        return json.dumps(record, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, directory: Path | None = None) -> ImageSet:
        """Parse a manifest; with `directory`, file paths are re-based onto it (moved caches)."""
        record = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"manifest has unknown fields {unknown}: rebuild the images")
        for name in PATH_FIELDS:
            path = Path(record[name])
            record[name] = directory / path.name if directory is not None else path
        record["sizes"] = ImageSizes(**record["sizes"])
        record["initramfs_modules"] = tuple(record["initramfs_modules"])
        return cls(**record)


def write_manifest(directory: Path, images: ImageSet) -> Path:
    """Write manifest.json atomically (temp file, fsync, rename)."""
    target = directory / MANIFEST_NAME
    fd, temp = tempfile.mkstemp(prefix=".manifest-", dir=directory)
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(images.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)
    return target


def read_manifest(directory: Path) -> ImageSet:
    return ImageSet.from_json((directory / MANIFEST_NAME).read_text(), directory)
