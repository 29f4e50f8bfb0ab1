"""The saved memory state of a booted, serving VM: made once, restored many times.

A snapshot is made per image recipe, VM memory, vCPU count, virtualization mode, app
environment and QEMU version (everything the guest's memory or the device model depends on),
so it is keyed by a hash of those, like the images are by their recipe:

    <root>/<key>/meta.json    what was saved, when, how long it took (written last: a
                              directory without it is an unfinished make)
                 state.save   `virsh save` of the domain once it answered HTTP 200
                 disk.qcow2   the disk the guest had at save time (an overlay of base.qcow2),
                              read-only from then on: every restore gets a fresh overlay of it
                 base.qcow2, vmlinux, initrd.img   copies of the images the VM booted
                 key, key.pub, known_hosts        the SSH login of the saved guest

The root is /var/lib/twinlab/snapshots (TWINLAB_SNAPSHOT_DIR overrides it), not ~/.cache:
QEMU runs as libvirt-qemu and must read the disk chain and the kernel, and root's home is
closed to it.

    python -m components.snapshot make [--memory-mib N] [--vcpus N] [--force]
    python -m components.snapshot show
    python -m components.snapshot prune      # snapshots of other images than the current ones
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from components import libvirt_cli
from components.errors import TwinlabError
from components.guest_ssh import GuestSsh
from components.host import free_loopback_ports
from components.http_wait import require_http_200
from components.libvirt_save_image import read_header
from components.tcg_cache import tb_cache_feature
from components.virt_mode import VirtMode, load_record, probe_environment
from components.vm import NIC_PCI_SLOT, cpu_mode, kernel_cmdline, libvirt_domain_type
from workloads.images import ImageSet, ImagesNotBuiltError
from workloads.images.build import cache_root, current_hash, manifest_complete

SNAPSHOT_FORMAT = 1
DEFAULT_ROOT = Path("/var/lib/twinlab/snapshots")
MAKE_BOOT_TIMEOUT_S = 300.0
SETTLE_TIMEOUT_S = 120.0
MAKER_PREFIX = "twinlab-snapshot-"
HEALTH_PATH = "/healthz"
META_NAME = "meta.json"


class SnapshotError(TwinlabError):
    """A snapshot cannot be made, found or used."""


def snapshot_root() -> Path:
    return Path(os.environ.get("TWINLAB_SNAPSHOT_DIR", DEFAULT_ROOT))


def _whole(value: object) -> int:
    number = float(str(value))
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


@dataclass(frozen=True)
class SnapshotRecipe:
    """What a saved state depends on. Two recipes with the same key restore the same guest."""

    image_recipe_hash: str
    memory_mib: int
    vcpus: int
    virt_mode: VirtMode
    app_environment: tuple[tuple[str, str], ...]
    qemu_version: str
    snapshot_format: int = SNAPSHOT_FORMAT
    tcg_cache_mib: int | None = None  # twinlab:tcgCacheMiB; None: QEMU's default

    @classmethod
    def of(
        cls,
        images: ImageSet,
        *,
        memory_mib: int,
        vcpus: int,
        virt_mode: VirtMode,
        app_environment: Mapping[str, str],
        qemu_version: str,
        tcg_cache_mib: int | None = None,
    ) -> SnapshotRecipe:
        return cls(
            image_recipe_hash=images.recipe_hash,
            memory_mib=memory_mib,
            vcpus=vcpus,
            virt_mode=virt_mode,
            app_environment=tuple(sorted(app_environment.items())),
            qemu_version=qemu_version,
            tcg_cache_mib=tcg_cache_mib,
        )

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> SnapshotRecipe:
        """From JSON or Pulumi properties, where numbers may come back as floats (512.0) and
        tuples as lists: coerced, so the key is the same."""
        environment = record["app_environment"]
        mode = record["virt_mode"]
        cache = record.get("tcg_cache_mib")
        if not isinstance(environment, list | tuple) or mode not in ("kvm", "tcg"):
            raise ValueError(f"not a snapshot recipe: {dict(record)}")
        return cls(
            image_recipe_hash=str(record["image_recipe_hash"]),
            memory_mib=_whole(record["memory_mib"]),
            vcpus=_whole(record["vcpus"]),
            virt_mode="kvm" if mode == "kvm" else "tcg",
            app_environment=tuple((str(name), str(value)) for name, value in environment),
            qemu_version=str(record["qemu_version"]),
            snapshot_format=_whole(record["snapshot_format"]),
            tcg_cache_mib=None if cache is None else _whole(cache),
        )

    def key(self) -> str:
        fields = asdict(self)
        if fields["tcg_cache_mib"] is None:
            # QEMU's default cache: the key snapshots had before the option, so they stay valid.
            del fields["tcg_cache_mib"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """One saved state, as recorded in <root>/<key>/meta.json."""

    directory: Path
    recipe: SnapshotRecipe
    saved_domain_xml: str  # the XML in state.save's header at save time: restores start here
    disk_sha256: str  # disk.qcow2 at save time: a restore checks its disk is still this one
    disk_bytes: int
    state_bytes: int
    guest_http_port: int
    guest_ssh_port: int
    ssh_user: str
    guest_host_key: str  # the saved guest's ed25519 host key, shared by every restore
    made_at: float
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.recipe.key()

    @property
    def state_file(self) -> Path:
        return self.directory / "state.save"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def private_key(self) -> Path:
        return self.directory / "key"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def lock_file(self) -> Path:
        """Held while a restore writes the clone's XML into state.save and libvirt reads it."""
        return self.directory / "restore.lock"

    def to_json(self) -> str:
        record = asdict(self)
        record["directory"] = str(self.directory)
        return json.dumps(record, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, directory: Path) -> Snapshot:
        record = json.loads(text)
        recipe = SnapshotRecipe.from_record(record.pop("recipe"))
        record["directory"] = directory
        return cls(recipe=recipe, **record)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kernel_cmdline_text(base: str, ssh_public_key: str, app_env: Mapping[str, str]) -> str:
    """The stack VM's kernel command line (components.vm builds it) as one string."""
    words: list[str] = []
    for part in kernel_cmdline(base, ssh_public_key, dict(app_env)):
        for key, value in part.items():
            words.extend(value.split() if key == "_" else [f"{key}={value}"])
    return " ".join(words)


def maker_domain_xml(
    *,
    name: str,
    recipe: SnapshotRecipe,
    directory: Path,
    cmdline: str,
    http_port: int,
    ssh_port: int,
    guest_http_port: int,
    guest_ssh_port: int,
) -> str:
    """The domain the state is saved from: the stack VM's definition (components/vm.py: direct
    kernel boot, qcow2 overlay, virtio-rng, headless, SLIRP forwards on 127.0.0.1 through
    <qemu:commandline>), plus a VM generation ID: on every restore the clone gets a new one,
    and the guest kernel (CONFIG_VMGENID) reseeds its RNG when it changes."""
    forwards = (
        f"hostfwd=tcp:127.0.0.1:{http_port}-:{guest_http_port},"
        f"hostfwd=tcp:127.0.0.1:{ssh_port}-:{guest_ssh_port}"
    )
    mode = cpu_mode(recipe.virt_mode)
    cpu = f"<cpu mode='{mode}'/>" if mode else ""
    cpuset = "0" if recipe.vcpus == 1 else f"0-{recipe.vcpus - 1}"
    return f"""<domain type='{libvirt_domain_type(recipe.virt_mode)}'
    xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{escape(name)}</name>
  <genid/>
  <memory unit='MiB'>{recipe.memory_mib}</memory>
  <vcpu placement='static' cpuset='{cpuset}'>{recipe.vcpus}</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{escape(str(directory / "vmlinux"))}</kernel>
    <initrd>{escape(str(directory / "initrd.img"))}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><acpi/><apic/><pae/>{tb_cache_feature(recipe.tcg_cache_mib)}</features>
  {cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file={quoteattr(str(directory / "disk.qcow2"))}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value={quoteattr(f"user,id=twinnet,{forwards}")}/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=twinnet,bus=pci.0,addr={NIC_PCI_SLOT}'/>
  </qemu:commandline>
</domain>
"""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def snapshot_dir(recipe: SnapshotRecipe) -> Path:
    return snapshot_root() / recipe.key()


def load_snapshot(directory: Path) -> Snapshot:
    """The snapshot recorded in `directory`; SnapshotError when there is no complete one."""
    try:
        return Snapshot.from_json((directory / META_NAME).read_text(), directory)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SnapshotError(f"{directory} holds no complete snapshot ({error})") from None


def find_snapshot(recipe: SnapshotRecipe) -> Snapshot | None:
    try:
        snapshot = load_snapshot(snapshot_dir(recipe))
    except SnapshotError:
        return None
    return snapshot if snapshot.recipe == recipe else None


def ensure_snapshot(recipe: SnapshotRecipe, images: ImageSet, uri: str) -> Snapshot:
    """The cached snapshot for `recipe`, made now if there is none (one maker at a time)."""
    found = find_snapshot(recipe)
    if found is not None:
        return found
    with _locked(snapshot_root() / f"{recipe.key()}.lock"):
        found = find_snapshot(recipe)
        return found if found is not None else make_snapshot(recipe, images, uri)


def _ensure_root() -> Path:
    root = snapshot_root()
    root.mkdir(parents=True, exist_ok=True)
    # QEMU (libvirt-qemu) walks through to the disk chain and kernel.
    for directory in (root, *root.parents):
        if directory.stat().st_mode & 0o001 == 0:
            raise SnapshotError(
                f"{directory} is closed to other users, so QEMU (libvirt-qemu) cannot reach "
                f"the snapshot files under it: set TWINLAB_SNAPSHOT_DIR to a path it can reach"
            )
    return root


def make_snapshot(recipe: SnapshotRecipe, images: ImageSet, uri: str) -> Snapshot:
    """Boot the VM from the images, wait for HTTP 200 and a settled system, save its memory.
    Whatever happens, no domain is left; a failed make leaves no directory."""
    if recipe.image_recipe_hash != images.recipe_hash:
        raise SnapshotError(
            f"recipe is for images {recipe.image_recipe_hash[:12]}, given {images.recipe_hash[:12]}"
        )
    _ensure_root()
    directory = snapshot_dir(recipe)
    name = f"{MAKER_PREFIX}{recipe.key()}-maker"
    running = [
        overlay.stem
        for overlay in sorted((directory / "clones").glob("*.qcow2"))
        if libvirt_cli.domain_exists(overlay.stem, uri)
    ]
    if running:
        raise SnapshotError(
            f"clones of {directory} still run ({', '.join(running)}): remove them before "
            "remaking the snapshot their disks and memory come from"
        )
    libvirt_cli.destroy(name, uri)  # a maker killed mid-way
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o755)
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        for source, target in (
            (images.vm_disk_qcow2, "base.qcow2"),
            (images.vm_kernel, "vmlinux"),
            (images.vm_initrd, "initrd.img"),
        ):
            shutil.copyfile(source, directory / target)
            (directory / target).chmod(0o444)
        libvirt_cli.create_overlay(directory / "disk.qcow2", directory / "base.qcow2")
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", directory / "key"],
            check=True,
            capture_output=True,
        )
        timings["prepare"] = time.monotonic() - started
        http_port, ssh_port = free_loopback_ports(2)
        xml = maker_domain_xml(
            name=name,
            recipe=recipe,
            directory=directory,
            cmdline=kernel_cmdline_text(
                images.vm_cmdline,
                (directory / "key.pub").read_text().strip(),
                dict(recipe.app_environment),
            ),
            http_port=http_port,
            ssh_port=ssh_port,
            guest_http_port=images.guest_http_port,
            guest_ssh_port=images.guest_ssh_port,
        )
        (directory / "maker.xml").write_text(xml)
        booted = time.monotonic()
        libvirt_cli.virsh("create", str(directory / "maker.xml"), uri=uri)
        require_http_200(f"http://127.0.0.1:{http_port}{HEALTH_PATH}", MAKE_BOOT_TIMEOUT_S)
        timings["boot_to_http_200"] = time.monotonic() - booted
        guest = GuestSsh(
            ssh_port,
            directory / "key",
            directory / "known_hosts",
            images.ssh_user,
            strict_host_key_checking="accept-new",
        )
        guest.wait_until_reachable(SETTLE_TIMEOUT_S)
        # Saved only once boot is over: a clone must not redo what a booting system still does.
        state = guest.run(
            "sudo systemctl is-system-running --wait; sudo sync", timeout_s=SETTLE_TIMEOUT_S
        ).strip()
        if state not in ("running", "degraded"):
            raise SnapshotError(f"the guest did not settle before the save (systemd: {state})")
        host_key = guest.run("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
        timings["boot_to_settled"] = time.monotonic() - booted
        saving = time.monotonic()
        libvirt_cli.virsh("save", name, str(directory / "state.save"), uri=uri)
        timings["save"] = time.monotonic() - saving
        header = read_header(directory / "state.save")
        (directory / "disk.qcow2").chmod(0o444)
        snapshot = Snapshot(
            directory=directory,
            recipe=recipe,
            saved_domain_xml=header.domain_xml,
            disk_sha256=sha256_file(directory / "disk.qcow2"),
            disk_bytes=(directory / "disk.qcow2").stat().st_size,
            state_bytes=(directory / "state.save").stat().st_size,
            guest_http_port=images.guest_http_port,
            guest_ssh_port=images.guest_ssh_port,
            ssh_user=images.ssh_user,
            guest_host_key=" ".join(host_key[:2]),
            made_at=time.time(),
            timings_s={stage: round(seconds, 3) for stage, seconds in timings.items()},
        )
        meta = directory / META_NAME
        meta.with_suffix(".tmp").write_text(snapshot.to_json())
        os.replace(meta.with_suffix(".tmp"), meta)
        return snapshot
    except BaseException:
        libvirt_cli.destroy(name, uri)
        shutil.rmtree(directory, ignore_errors=True)
        raise


def vm_images() -> ImageSet:
    """The built images of the current recipe, VM files only: a snapshot needs no Docker."""
    directory = cache_root() / current_hash()
    images = manifest_complete(directory)
    if images is None:
        raise ImagesNotBuiltError(
            f"no images in {directory}: run scripts/setup.sh (or python -m workloads.images build)"
        )
    return images


def prune(keep_image_recipe: str, uri: str) -> list[str]:
    """Remove every snapshot made from other images than `keep_image_recipe`, with whatever
    clones of it still run; and leftovers of unfinished makes."""
    removed = []
    for directory in sorted(path for path in snapshot_root().iterdir() if path.is_dir()):
        try:
            if load_snapshot(directory).recipe.image_recipe_hash == keep_image_recipe:
                continue
        except SnapshotError:
            pass  # no meta.json: an unfinished make
        for overlay in sorted((directory / "clones").glob("*.qcow2")):
            libvirt_cli.destroy(overlay.stem, uri)
        shutil.rmtree(directory)
        (snapshot_root() / f"{directory.name}.lock").unlink(missing_ok=True)
        removed.append(str(directory))
    return removed


def recipe_for_defaults(images: ImageSet, memory_mib: int, vcpus: int) -> SnapshotRecipe:
    """The recipe for the default stack's VM: virtualization mode from the setup's probe, the
    app environment the stack gives it (no extra env)."""
    record = load_record()
    if record is None:
        raise SnapshotError("no virtualization mode recorded; run scripts/setup.sh")
    return SnapshotRecipe.of(
        images,
        memory_mib=memory_mib,
        vcpus=vcpus,
        virt_mode=record.mode,
        app_environment={"TWINLAB_WORKERS": "2", "TWINLAB_APP_VERSION": images.app_version},
        qemu_version=probe_environment().qemu_version,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.snapshot")
    parser.add_argument("action", choices=["make", "show", "prune"])
    parser.add_argument("--memory-mib", type=int, default=512)
    parser.add_argument("--vcpus", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="remake even if cached")
    args = parser.parse_args(argv)
    try:
        images = vm_images()
        if args.action == "prune":
            with _locked(snapshot_root() / "prune.lock"):
                removed = prune(images.recipe_hash, libvirt_cli.LOCAL_URI)
            print("\n".join(f"removed {path}" for path in removed) or "nothing to prune")
            return 0
        recipe = recipe_for_defaults(images, args.memory_mib, args.vcpus)
        if args.action == "make":
            if args.force:
                with _locked(snapshot_root() / f"{recipe.key()}.lock"):
                    snapshot = make_snapshot(recipe, images, libvirt_cli.LOCAL_URI)
            else:
                snapshot = ensure_snapshot(recipe, images, libvirt_cli.LOCAL_URI)
        else:
            found = find_snapshot(recipe)
            if found is None:
                print(f"no snapshot for key {recipe.key()} under {snapshot_root()}")
                return 1
            snapshot = found
    except (TwinlabError, ImagesNotBuiltError, OSError, subprocess.CalledProcessError) as error:
        print(f"snapshot: {error}", file=sys.stderr)
        return 1
    print(
        f"{snapshot.directory}: state {snapshot.state_bytes / 2**20:.0f} MiB, "
        f"disk {snapshot.disk_bytes / 2**20:.1f} MiB, timings {snapshot.timings_s}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
