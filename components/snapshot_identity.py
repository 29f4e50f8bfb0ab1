"""What a restored clone shares with its siblings, and the cheap fixes after a restore.

Every clone of one snapshot starts from the same memory, so whatever the guest made before the
save is the same in all of them:

- boot id (/proc/sys/kernel/random/boot_id): made once per kernel boot, read-only; stays
  shared. Anything that keys on it (journald's boot list) sees the clones as one boot.
- kernel RNG state: shared at the instant of the restore, then reseeded by the guest kernel
  itself: each restore gets a new VM generation ID (libvirt <genid>, QEMU vmgenid), and Linux
  (CONFIG_VMGENID) reseeds its CRNG when it changes ("crng reseeded due to virtual machine
  fork" in dmesg). No agent, no SSH, before any request is served.
- SSH host keys: baked into the image, so shared by every VM of the image, booted or restored;
  `refresh_identity` makes new ones and restarts sshd.
- machine-id, MAC (52:54:00:12:34:56) and IP (10.0.2.15): shared; under SLIRP each clone has
  its own user-mode network, so the same MAC/IP never meet on one link.
- wall clock: the guest's clock continues from the save; `refresh_identity` sets it from the
  host.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from components.guest_ssh import GuestSsh

VM_FORK_RESEED = "crng reseeded due to virtual machine fork"

# One command, one SSH round trip: each exec is expensive under emulation.
_PROBE = r"""
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "machine_id=$(cat /etc/machine-id)"
echo "mac=$(cat /sys/class/net/eth0/address)"
echo "ip=$(ip -4 -o addr show eth0 | awk '{print $4}')"
echo "host_key=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $2}')"
echo "clock_s=$(date +%s.%N)"
echo "vm_fork_reseeds=$(sudo dmesg | grep -c 'virtual machine fork')"
"""

# Host keys made on the host (an RSA key takes tens of seconds under emulation), sent through
# the SSH session as a tar; sshd then restarts with them. The session running this survives
# (a child of the old listener). The clock is set from the host in the same round trip; one
# sudo, as each costs a PAM session under emulation.
_INSTALL_KEYS = (
    'set -e; date -u -s "@$1" >/dev/null; '
    "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub; "
    "tar -x -C /etc/ssh --preserve-permissions; "
    'if [ -n "$2" ]; then '
    "printf '%s\\n' \"$2\" > /home/twin/.ssh/authorized_keys.new; "
    "chown twin:twin /home/twin/.ssh/authorized_keys.new; "
    "chmod 600 /home/twin/.ssh/authorized_keys.new; "
    "mv -f /home/twin/.ssh/authorized_keys.new /home/twin/.ssh/authorized_keys; fi; "
    "systemctl restart ssh"
)
HOST_KEY_TYPES = (("rsa", "3072"), ("ecdsa", "256"), ("ed25519", ""))


@dataclass(frozen=True)
class GuestIdentity:
    boot_id: str
    machine_id: str
    mac: str
    ip: str
    host_key_sha256: str
    clock_offset_s: float  # guest wall clock minus the host's, as read over SSH
    vm_fork_reseeds: int  # how often the guest kernel reseeded its RNG for a VM fork


def parse_probe(output: str, host_time_s: float) -> GuestIdentity:
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    return GuestIdentity(
        boot_id=values["boot_id"],
        machine_id=values["machine_id"],
        mac=values["mac"],
        ip=values["ip"],
        host_key_sha256=values["host_key"],
        clock_offset_s=round(float(values["clock_s"]) - host_time_s, 3),
        vm_fork_reseeds=int(values["vm_fork_reseeds"]),
    )


def probe_identity(guest: GuestSsh) -> GuestIdentity:
    before = time.time()
    output = guest.run(_PROBE)
    # The guest read its clock somewhere within the round trip: take the middle.
    return parse_probe(output, (before + time.time()) / 2)


def shared_fields(identities: list[GuestIdentity]) -> list[str]:
    """Names of the identity fields every clone has in common."""
    names = ["boot_id", "machine_id", "mac", "ip", "host_key_sha256"]
    return [name for name in names if len({getattr(i, name) for i in identities}) == 1]


def host_keys_tar(directory: Path) -> tuple[bytes, str]:
    """New SSH host keys of every type the image has, as a tar of /etc/ssh file names (root,
    private keys 0600); and the new ed25519 public key ("TYPE BASE64")."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for key_type, bits in HOST_KEY_TYPES:
            path = directory / f"ssh_host_{key_type}_key"
            size = ["-b", bits] if bits else []
            subprocess.run(
                ["ssh-keygen", "-q", "-t", key_type, *size, "-N", "", "-C", "", "-f", path],
                check=True,
                capture_output=True,
            )
            for file, mode in ((path, 0o600), (path.with_name(path.name + ".pub"), 0o644)):
                info = archive.gettarinfo(str(file), arcname=file.name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = mode
                with file.open("rb") as handle:
                    archive.addfile(info, handle)
    public = (directory / "ssh_host_ed25519_key.pub").read_text().split()
    return buffer.getvalue(), " ".join(public[:2])


def refresh_identity(guest: GuestSsh, authorized_key: str | None = None) -> str:
    """New SSH host keys and the host's time in the clone, and, given `authorized_key` (one
    OpenSSH public key line), that key as the only login instead of the snapshot's. Returns
    the clone's new ed25519 host key ("TYPE BASE64"), which the caller pins from then on."""
    if authorized_key is not None and (
        "\n" in authorized_key.strip() or not authorized_key.startswith(("ssh-", "ecdsa-"))
    ):
        raise ValueError("authorized_key must be one OpenSSH public key line")
    with tempfile.TemporaryDirectory(prefix="twinlab-hostkeys-") as directory:
        archive, public = host_keys_tar(Path(directory))
    login = shlex.quote((authorized_key or "").strip())
    command = f"sudo sh -c {shlex.quote(_INSTALL_KEYS)} refresh {time.time():.3f} {login}"
    guest.run(command, timeout_s=120.0, stdin=archive)
    return public
