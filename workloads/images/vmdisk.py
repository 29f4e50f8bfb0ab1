"""The VM packaging: the same userland plus kernel, systemd, sshd; ext4 -> qcow2, no mounts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import recipe
from .chroot import build_chroot, chroot_command
from .fsutil import install_file
from .steps import BuildError, Steps

GUEST_FILES = Path(__file__).resolve().parent / "guest" / "vm"
APP_UNIT = "twinlab-webapp.service"
ENABLED_UNITS = (
    APP_UNIT,
    "twinlab-ssh-key.service",
    "twinlab-boot-done.service",
)
# Units a single-purpose test VM does not need; each one costs time under emulation. What
# stays: systemd as PID 1, journald, sysctl, tmpfiles, sshd, the network unit and the app.
MASKED_UNITS = (
    # periodic jobs
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
    # consoles: no udev here, so a getty would wait 90 s for its tty device; log in over SSH
    "getty.target",
    "serial-getty@ttyS0.service",
    "getty@tty1.service",
    "systemd-ask-password-console.path",
    "systemd-ask-password-wall.path",
    # file systems and kernel facilities the app does not use
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-binfmt.service",
    "kmod-static-nodes.service",
    "systemd-tmpfiles-setup-dev.service",
    "modprobe@configfs.service",
    "modprobe@dm_mod.service",
    "modprobe@drm.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "systemd-modules-load.service",
    # one-time or persistence work a throwaway VM does not need at boot
    "systemd-journal-flush.service",
    "systemd-remount-fs.service",
    "systemd-sysusers.service",
    "systemd-random-seed.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
)
# Generators run at every boot before any unit starts; these have nothing to generate here
# (the fstab one costs 0.3 s for an empty /etc/fstab: the initramfs mounts the root).
DISABLED_GENERATORS = (
    "systemd-bless-boot-generator",
    "systemd-cryptsetup-generator",
    "systemd-fstab-generator",
    "systemd-getty-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-integritysetup-generator",
    "systemd-rc-local-generator",
    "systemd-run-generator",
    "systemd-system-update-generator",
    "systemd-sysv-generator",
    "systemd-veritysetup-generator",
)

# The kernel package insists on an initramfs generator; ours is built outside the guest.
PLACEHOLDER_CONTROL = """Package: twinlab-initramfs
Version: 1.0
Architecture: all
Maintainer: twinlab <root@localhost>
Provides: linux-initramfs-tool
Priority: optional
Section: admin
Description: twinlab initramfs placeholder
 The twinlab VM boots its kernel directly with a tiny initramfs built by
 workloads.images (busybox and a few modules), outside the guest.
"""


def copy_userland(steps: Steps, userland: Path, vm_root: Path, apt_lists: Path) -> None:
    steps.run(["cp", "-a", "--reflink=auto", userland, vm_root])
    lists = vm_root / "var" / "lib" / "apt" / "lists"
    shutil.rmtree(lists)
    steps.run(["cp", "-a", apt_lists, lists])


def install_os(steps: Steps, vm_root: Path, work: Path) -> Path:
    """apt-get install the VM packages in a chroot; returns the static busybox binary."""
    package_dir = work / "twinlab-initramfs"
    (package_dir / "DEBIAN").mkdir(parents=True)
    (package_dir / "DEBIAN" / "control").write_text(PLACEHOLDER_CONTROL)
    placeholder = vm_root / "tmp" / "twinlab-initramfs.deb"
    steps.run(["dpkg-deb", "--root-owner-group", "--build", package_dir, placeholder])
    with build_chroot(vm_root):
        steps.run(
            chroot_command(
                vm_root,
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "/tmp/twinlab-initramfs.deb",
                *recipe.VM_PACKAGES,
            )
        )
        steps.run(
            chroot_command(
                vm_root,
                "sh",
                "-c",
                f"cd /tmp && apt-get download {recipe.INITRAMFS_PACKAGE}",
            )
        )
        steps.run(chroot_command(vm_root, "apt-get", "clean"))
    placeholder.unlink()
    debs = sorted((vm_root / "tmp").glob(f"{recipe.INITRAMFS_PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise BuildError(f"expected one {recipe.INITRAMFS_PACKAGE} .deb, found {debs}")
    extracted = work / "busybox-static"
    steps.run(["dpkg-deb", "-x", debs[0], extracted])
    debs[0].unlink()
    busybox = extracted / "bin" / "busybox"
    if not busybox.is_file():
        raise BuildError(f"{debs[0].name} has no bin/busybox")
    return busybox


def drop_apt_lists(vm_root: Path) -> None:
    lists = vm_root / "var" / "lib" / "apt" / "lists"
    shutil.rmtree(lists)
    (lists / "partial").mkdir(parents=True)


def guest_file_mode(relative: str) -> int:
    if relative.startswith("usr/local/sbin/"):
        return 0o755
    if relative.startswith("etc/sudoers.d/"):
        return 0o440
    return 0o644


def configure_os(steps: Steps, vm_root: Path) -> None:
    """Guest configuration: files, units, the login user, a blank machine id."""
    for source in sorted(GUEST_FILES.rglob("*")):
        if source.is_file():
            relative = source.relative_to(GUEST_FILES).as_posix()
            install_file(source, vm_root / relative, guest_file_mode(relative))
    unit = vm_root / "etc" / "systemd" / "system" / APP_UNIT
    unit.write_text(recipe.systemd_app_unit())
    unit.chmod(0o644)
    steps.run(
        chroot_command(
            vm_root,
            "useradd",
            "--uid",
            str(recipe.SSH_UID),
            "--user-group",
            "--create-home",
            "--shell",
            "/bin/bash",
            recipe.SSH_USER,
        )
    )
    steps.run(chroot_command(vm_root, "visudo", "-c", "-f", "/etc/sudoers.d/twinlab"))
    steps.run(chroot_command(vm_root, "systemctl", "enable", *ENABLED_UNITS))
    steps.run(chroot_command(vm_root, "systemctl", "mask", *MASKED_UNITS))
    steps.run(chroot_command(vm_root, "systemctl", "set-default", "multi-user.target"))
    generators = vm_root / "etc" / "systemd" / "system-generators"
    generators.mkdir(parents=True, exist_ok=True)
    for name in DISABLED_GENERATORS:
        (generators / name).symlink_to("/dev/null")
    generate_host_keys(steps, vm_root)
    check_sshd_config(steps, vm_root)
    # Empty machine-id: each VM made from the image generates its own at first boot.
    (vm_root / "etc" / "machine-id").write_text("")


def generate_host_keys(steps: Steps, vm_root: Path) -> None:
    """Fresh SSH host keys for this build, named after the guest, not the build host."""
    for old in (vm_root / "etc" / "ssh").glob("ssh_host_*_key*"):
        old.unlink()
    for key_type in ("ed25519", "ecdsa", "rsa"):
        steps.run(
            chroot_command(
                vm_root,
                "ssh-keygen",
                "-q",
                "-t",
                key_type,
                "-N",
                "",
                "-C",
                "root@twinlab-vm",
                "-f",
                f"/etc/ssh/ssh_host_{key_type}_key",
            )
        )


def check_sshd_config(steps: Steps, vm_root: Path) -> None:
    """sshd -t now, so the guest can skip it at every boot (see ssh.service.d/twinlab.conf)."""
    privsep = vm_root / "run" / "sshd"
    privsep.mkdir(parents=True, exist_ok=True)
    try:
        steps.run(chroot_command(vm_root, "sshd", "-t"))
    finally:
        privsep.rmdir()


def kernel_release(vm_root: Path) -> str:
    releases = sorted(p.name for p in (vm_root / "lib" / "modules").iterdir())
    if len(releases) != 1:
        raise BuildError(f"expected one kernel in the VM tree, found {releases}")
    return releases[0]


def host_key(vm_root: Path) -> str:
    """The build's own ed25519 public host key, without its comment (for known_hosts)."""
    key_type, blob = (vm_root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{key_type} {blob}"


def make_ext4(steps: Steps, vm_root: Path, raw: Path) -> None:
    """A raw ext4 image populated from the tree by mkfs itself (no loop mount)."""
    with raw.open("wb") as disk:
        disk.truncate(recipe.VM_DISK_VIRTUAL_MIB * 1024 * 1024)
    # No metadata checksums: the guest CPU (qemu64) has no crc32c instruction, so every
    # metadata read would run a software CRC under emulation. Inode tables and journal are
    # zeroed now, not by the kernel's lazyinit thread during the first boots.
    steps.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "twinlab-root",
            "-O",
            "^metadata_csum",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            "-d",
            vm_root,
            raw,
        ]
    )


def convert_to_qcow2(steps: Steps, raw: Path, qcow2: Path) -> None:
    steps.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2])
    os.unlink(raw)
