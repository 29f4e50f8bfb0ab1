"""What the images are made of: suite, packages, users, the app's command line, and the hash.

Everything that decides the images' content lives here or in files the hash covers, so a
changed recipe always yields a new cache directory and a new image tag.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterable
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# The app server is not Debian's python3-gunicorn but a pinned wheel (appserver.py, app-server.txt).
USERLAND_PACKAGES = ("python3",)
# Added in a chroot of a copy of the userland; --no-install-recommends keeps the OS small.
VM_PACKAGES = ("linux-image-amd64", "systemd-sysv", "openssh-server", "sudo", "iproute2")
# Only downloaded, never installed: its static busybox runs the initramfs.
INITRAMFS_PACKAGE = "busybox-static"

APP_USER = "twinapp"
APP_UID = 10001
APP_DIR = "/opt/twinlab/app"
DATA_DIR = "/var/lib/twinlab"
SSH_USER = "twin"
SSH_UID = 1000
GUEST_HTTP_PORT = 8080
GUEST_SSH_PORT = 22
VM_DISK_VIRTUAL_MIB = 3072

# One command line and one environment for both packagings (docker CMD/ENV, systemd unit).
APP_COMMAND = (
    "/usr/bin/python3",
    "-m",
    "gunicorn",
    "--config",
    f"{APP_DIR}/gunicorn_conf.py",
    "--chdir",
    APP_DIR,
    "webapp:application",
)
APP_ENV = (
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("TWINLAB_WORKERS", "2"),
    ("TWINLAB_DATA_DIR", DATA_DIR),
    ("PYTHONUNBUFFERED", "1"),
    ("LANG", "C.UTF-8"),
)

# Modules the initramfs loads: the root disk, its filesystem, the NIC (so the network can be
# configured without udev, which the guest does not run) and the entropy source a deployment
# may add (virtio-rng). Dependencies come from modules.dep.
INITRAMFS_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "virtio_net",
    "virtio_rng",
)

# Direct kernel boot. The deployment appends twinlab.ssh_key=... (see cmdline.py).
# quiet + loglevel: a serial console under emulation costs time per character.
# cryptomgr.notests: the crypto self-tests take 0.5 s of emulated CPU at every boot.
# noatime: no inode write on the first read of each file (boot reads thousands).
# acpi=noirq: PCI interrupts routed from the BIOS' tables, not by evaluating ACPI's link objects
# in the AML interpreter (about 0.15 s per virtio device under emulation: the initramfs stage
# went from 1.17 s to 0.54 s median, n=5 interleaved, load 1.1-2.0). Every device still works.
VM_CMDLINE = (
    "console=ttyS0 root=/dev/vda rootfstype=ext4 rootflags=noatime rw quiet loglevel=3 "
    "net.ifnames=0 systemd.show_status=false cryptomgr.notests acpi=noirq"
)

WORKLOADS_DIR = Path(__file__).resolve().parent.parent
# Files under workloads/ that cannot change what is built: measuring the boot is not a recipe.
NOT_RECIPE = frozenset({"images/boottest.py", "images/__main__.py"})


def recipe_files(workloads_dir: Path = WORKLOADS_DIR) -> list[Path]:
    """Every file under app/ and images/ that goes into the hash, sorted."""
    found = []
    for top in ("app", "images"):
        for path in (workloads_dir / top).rglob("*"):
            relative = path.relative_to(workloads_dir).as_posix()
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            if relative not in NOT_RECIPE:
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(workloads_dir).as_posix())


def recipe_hash(files: Iterable[Path], root: Path = WORKLOADS_DIR) -> str:
    """sha256 over (relative path, content) of every recipe file: stable across machines."""
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(relative), relative, len(content)))
        digest.update(content)
    return digest.hexdigest()


def app_version(workloads_dir: Path = WORKLOADS_DIR) -> str:
    return (workloads_dir / "app" / "VERSION").read_text(encoding="ascii").strip()


# One Docker daemon serves every image cache that uses it: a second cache (another HOME, the
# cold rehearsal) importing the same tag moves it off the first cache's image, which then
# rebuilds, and back. Such a cache names a repository of its own.
IMAGE_REPOSITORY_ENV = "TWINLAB_IMAGE_REPOSITORY"
DEFAULT_IMAGE_REPOSITORY = "twinlab/webapp"


def image_repository() -> str:
    return os.environ.get(IMAGE_REPOSITORY_ENV) or DEFAULT_IMAGE_REPOSITORY


def container_tag(version: str, hash_hex: str) -> str:
    return f"{image_repository()}:{version}-{hash_hex[:12]}"


def docker_changes() -> list[str]:
    """The `docker import --change` instructions: app-only container, same command as the VM."""
    changes = [f"ENV {name}={value}" for name, value in APP_ENV]
    changes += [
        f"USER {APP_USER}",
        f"WORKDIR {APP_DIR}",
        f"EXPOSE {GUEST_HTTP_PORT}/tcp",
        "CMD [" + ", ".join(f'"{arg}"' for arg in APP_COMMAND) + "]",
    ]
    return changes


def systemd_app_unit() -> str:
    """The VM's service for the app: same user, command line and environment as the container."""
    environment = " ".join(f"{name}={value}" for name, value in APP_ENV)
    return f"""[Unit]
Description=twinlab web app (gunicorn, same command line as the container)
Documentation=file://{APP_DIR}
# Started as early as the root file system allows: it binds 0.0.0.0, so it needs no network.
DefaultDependencies=no
After=systemd-journald.socket local-fs.target
Conflicts=shutdown.target
Before=shutdown.target

[Service]
# gunicorn_conf.py's when_ready hook reports READY=1 once the port is bound.
Type=notify
NotifyAccess=main
TimeoutStartSec=60
# During boot only, the app gets most of the one vCPU; twinlab-boot-done.service sets the
# startup weight back to the default once the system is up.
StartupCPUWeight=10000
CPUWeight=100
User={APP_USER}
Group={APP_USER}
WorkingDirectory={APP_DIR}
Environment={environment}
# The deployment's environment (the same the container gets) comes on the kernel command line;
# the initramfs writes it here (guest/initramfs-init), before systemd starts.
EnvironmentFile=/run/twinlab/app.env
ExecStart={shlex.join(APP_COMMAND)}
# stderr carries the app's listening mark (and any crash) straight to the serial console, where
# the host stamps it (R1's start stages): not through journald, which starts later than the app
# on the one vCPU. The access and error logs go to stdout, into the journal.
StandardError=tty
TTYPath=/dev/console
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
