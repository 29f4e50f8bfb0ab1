"""The one app userland both packagings derive from: debootstrap minbase + python3 + the app."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import recipe
from .chroot import chroot_command
from .fsutil import install_file
from .steps import Steps

APP_SOURCE = recipe.WORKLOADS_DIR / "app"


def debootstrap(steps: Steps, root: Path) -> None:
    steps.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(recipe.USERLAND_PACKAGES)}",
            recipe.SUITE,
            root,
            recipe.MIRROR,
        ]
    )


def install_app(steps: Steps, root: Path) -> None:
    """The app at APP_DIR (root-owned, byte-compiled), its user, and its data dir."""
    app_dir = root / recipe.APP_DIR.lstrip("/")
    for source in sorted(APP_SOURCE.rglob("*")):
        if source.is_file() and "__pycache__" not in source.parts and source.suffix != ".pyc":
            install_file(source, app_dir / source.relative_to(APP_SOURCE), 0o644)
    for directory in [app_dir, *[p for p in app_dir.rglob("*") if p.is_dir()]]:
        directory.chmod(0o755)
    # The app user cannot write here, so compile now or every start would recompile.
    steps.run(chroot_command(root, "python3", "-m", "compileall", "-q", recipe.APP_DIR))
    uid = str(recipe.APP_UID)
    steps.run(chroot_command(root, "groupadd", "--gid", uid, recipe.APP_USER))
    steps.run(
        chroot_command(
            root,
            "useradd",
            "--uid",
            uid,
            "--gid",
            uid,
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            recipe.APP_USER,
        )
    )
    data_dir = root / recipe.DATA_DIR.lstrip("/")
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chown(data_dir, recipe.APP_UID, recipe.APP_UID)
    data_dir.chmod(0o750)


def strip_host_traces(root: Path) -> None:
    """debootstrap copies the build host's name and resolver; the runtime provides its own."""
    (root / "etc" / "hostname").write_text("twinlab\n")
    (root / "etc" / "resolv.conf").write_text("")


def move_apt_lists(root: Path, keep: Path) -> None:
    """Move the package indexes out (the VM step reuses them) and drop the .deb cache."""
    lists = root / "var" / "lib" / "apt" / "lists"
    shutil.move(lists, keep)
    lists.mkdir()
    (lists / "partial").mkdir()
    archives = root / "var" / "cache" / "apt" / "archives"
    for deb in archives.glob("*.deb"):
        deb.unlink()
    for cache in (root / "var" / "cache" / "apt").glob("*.bin"):
        cache.unlink()


def package_list(steps: Steps, root: Path) -> dict[str, str]:
    """{package: version} as dpkg-query -W sees it inside the tree."""
    output = steps.run(chroot_command(root, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n"))
    return dict(line.split("\t", 1) for line in output.splitlines() if line)


def write_tarball(steps: Steps, root: Path, tarball: Path) -> None:
    steps.run(
        ["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", root, "-cf", tarball, "."]
    )
