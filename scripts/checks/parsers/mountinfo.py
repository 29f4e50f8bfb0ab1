"""/proc/PID/mountinfo (proc(5)): which filesystem, and which part of it, is mounted where."""

from __future__ import annotations

import re
from dataclasses import dataclass

OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    device: str  # "major:minor" of the filesystem (one superblock, shared by its bind mounts)
    root: str  # the directory of that filesystem mounted here ("/" for the whole filesystem)
    mount_point: str
    read_only: bool
    fstype: str
    source: str


def unescape(path: str) -> str:
    return OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), path)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        mounts.append(
            Mount(
                device=fields[2],
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                read_only="ro" in fields[5].split(","),
                fstype=tail[0],
                source=unescape(tail[1]),
            )
        )
    return mounts


def host_path(mount: Mount, host_mounts: list[Mount]) -> str | None:
    """Where on the host the directory mounted by `mount` lives, if the host has that filesystem
    mounted: same device, the host mount whose root is the longest prefix of `mount.root`."""
    best: Mount | None = None
    for candidate in host_mounts:
        if candidate.device != mount.device or not within(mount.root, candidate.root):
            continue
        if best is None or len(candidate.root) > len(best.root):
            best = candidate
    if best is None:
        return None
    rest = mount.root[len(best.root) :].lstrip("/") if best.root != "/" else mount.root.lstrip("/")
    base = best.mount_point.rstrip("/")
    return f"{base}/{rest}" if rest else (base or "/")


def within(path: str, directory: str) -> bool:
    """`path` is `directory` or below it."""
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")
