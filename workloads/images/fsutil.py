"""File-tree helpers that are safe around build chroots (never delete through a bind mount)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .steps import BuildError


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, from /proc/self/mounts."""
    base = path.resolve()
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            # Mount points with spaces are octal-escaped in this file.
            target = Path(line.split()[1].encode().decode("unicode_escape"))
            if target == base or base in target.parents:
                found.append(target)
    return found


def unmount_all_under(path: Path) -> None:
    """Detach every mount inside `path`, deepest first (left by a build that was killed)."""
    for target in sorted(mounts_under(path), key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def safe_rmtree(path: Path) -> None:
    """Remove a build tree, refusing if anything is still mounted inside it."""
    if not path.exists():
        return
    busy = mounts_under(path)
    if busy:
        raise BuildError(
            f"refusing to delete {path}: still mounted inside it: {', '.join(map(str, busy))}; "
            "unmount them (umount -R) and retry"
        )
    shutil.rmtree(path)


def tree_bytes(path: Path) -> int:
    """Apparent size of every regular file in the tree (hard links once), like du -sb."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
    return total


def install_file(source: Path, target: Path, mode: int) -> None:
    """Copy one file into an image tree, root-owned, with an explicit mode."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chown(target, 0, 0)
    target.chmod(mode)
