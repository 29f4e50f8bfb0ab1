"""A tiny initramfs: static busybox, a dozen kernel modules, one shell script as /init.

Debian's kernel has virtio and ext4 as modules, so something must load them before the root
file system can be mounted; initramfs-tools does that with udev and takes seconds under
emulation. This one loads exactly the modules it lists, in dependency order, and switches.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .recipe import INITRAMFS_MODULES

INIT_SCRIPT = Path(__file__).resolve().parent / "guest" / "initramfs-init"
# What /init runs: the boot itself, then the network (ip) and the app's environment file.
BUSYBOX_APPLETS = (
    "sh", "mount", "umount", "insmod", "switch_root", "sleep", "cat", "echo",
    "ip", "mkdir", "base64", "rm",
)  # fmt: skip


def module_name(path: str) -> str:
    """modules.dep path -> module name as modprobe spells it (dashes become underscores)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep text -> {name: (path, [dependency paths])}."""
    modules: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        modules[module_name(path)] = (path.strip(), deps.split())
    return modules


def load_order(modules_dep: str, wanted: Iterable[str]) -> list[str]:
    """Paths of the wanted modules and all their dependencies, each after what it needs."""
    modules = parse_modules_dep(modules_dep)
    by_path = {path: name for name, (path, _) in modules.items()}
    order: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name not in modules:
            needed_by = f" (needed by {chain[-1]})" if chain else ""
            raise KeyError(f"kernel module {name}{needed_by} is not in modules.dep")
        path, deps = modules[name]
        if path in order:
            return
        for dep in deps:
            visit(by_path.get(dep, module_name(dep)), (*chain, name))
        order.append(path)

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return order


@dataclass(frozen=True)
class Entry:
    """One cpio member: a directory, a regular file, a symlink or a character device."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def cpio_newc(entries: Iterable[Entry]) -> bytes:
    """The entries as a 'newc' cpio archive (the format the kernel unpacks), owned by root.

    Written here rather than with cpio(1) so the archive is reproducible and needs no root
    privileges for the device node.
    """
    out = bytearray()
    members = [*entries, Entry("TRAILER!!!", 0)]
    for ino, entry in enumerate(members, start=1):
        name = entry.name.encode() + b"\0"
        fields = (
            ino,
            entry.mode,
            0,  # uid
            0,  # gid
            2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
            0,  # mtime: fixed for reproducible archives
            len(entry.data),
            0,  # dev major
            0,  # dev minor
            entry.rdev[0],
            entry.rdev[1],
            len(name),
            0,  # check
        )
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        out += header + name + _pad4(len(header) + len(name))
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def initramfs_entries(
    init_script: bytes, busybox: bytes, modules: Mapping[str, bytes]
) -> list[Entry]:
    """The initramfs tree; `modules` maps file names to content, in load order."""
    directory = stat.S_IFDIR | 0o755
    entries = [
        Entry(name, directory) for name in ("bin", "dev", "proc", "sys", "run", "root", "modules")
    ]
    entries.append(Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(Entry("init", stat.S_IFREG | 0o755, init_script))
    entries.append(Entry("bin/busybox", stat.S_IFREG | 0o755, busybox))
    for applet in BUSYBOX_APPLETS:
        entries.append(Entry(f"bin/{applet}", stat.S_IFLNK | 0o777, b"busybox"))
    for index, (name, content) in enumerate(modules.items()):
        # The index prefix keeps the load order when /init globs the directory.
        entries.append(Entry(f"modules/{index:02d}-{name}", stat.S_IFREG | 0o644, content))
    return entries


def build_initramfs(rootfs: Path, kernel_release: str, busybox: Path, output: Path) -> list[str]:
    """Write the initramfs for `kernel_release` of `rootfs`; returns the module names loaded."""
    module_dir = rootfs / "lib" / "modules" / kernel_release
    order = load_order((module_dir / "modules.dep").read_text(), INITRAMFS_MODULES)
    modules = {Path(path).name: (module_dir / path).read_bytes() for path in order}
    entries = initramfs_entries(INIT_SCRIPT.read_bytes(), busybox.read_bytes(), modules)
    output.write_bytes(cpio_newc(entries))
    return [module_name(path) for path in order]
