"""Running apt and friends inside a root file system being built (no loop devices)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Keeps package scripts from starting daemons inside the build chroot.
POLICY_RC_D = b"#!/bin/sh\n# twinlab build: start no services inside the image build\nexit 101\n"
CHROOT_ENV = {
    "DEBIAN_FRONTEND": "noninteractive",
    "LANG": "C.UTF-8",
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
}


def chroot_command(root: Path, *command: str) -> list[str]:
    env = [f"{name}={value}" for name, value in sorted(CHROOT_ENV.items())]
    return ["chroot", str(root), "/usr/bin/env", "-i", *env, *command]


@contextmanager
def build_chroot(root: Path) -> Iterator[Path]:
    """proc, sys and the host's /dev mounted into `root`, services blocked, DNS working.

    Everything is undone on exit, also after an error, so the tree can be archived.
    """
    mounts = [
        (["-t", "proc", "proc"], root / "proc"),
        (["-t", "sysfs", "sysfs"], root / "sys"),
        (["--bind", "/dev"], root / "dev"),
        (["--bind", "/dev/pts"], root / "dev" / "pts"),
    ]
    mounted: list[Path] = []
    policy = root / "usr" / "sbin" / "policy-rc.d"
    resolv = root / "etc" / "resolv.conf"
    saved_resolv = resolv.read_bytes() if resolv.is_file() and not resolv.is_symlink() else None
    try:
        for options, target in mounts:
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *options, str(target)], check=True, capture_output=True)
            mounted.append(target)
        policy.write_bytes(POLICY_RC_D)
        policy.chmod(0o755)
        if resolv.is_symlink():
            resolv.unlink()
        shutil.copyfile("/etc/resolv.conf", resolv)
        yield root
    finally:
        policy.unlink(missing_ok=True)
        if saved_resolv is not None:
            resolv.write_bytes(saved_resolv)
        for target in reversed(mounted):
            result = subprocess.run(["umount", str(target)], capture_output=True, check=False)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
