"""Build both images into the cache, atomically, or return the cached build."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from . import appserver, container, recipe, userland, vmdisk
from .fsutil import safe_rmtree, tree_bytes, unmount_all_under
from .initramfs import build_initramfs
from .kernel import extract_vmlinux, has_pvh_entry
from .manifest import MANIFEST_NAME, ImageSet, ImageSizes, read_manifest, write_manifest
from .steps import BuildError, Steps

USERLAND_TAR = "userland.tar"
VM_DISK = "vm-disk.qcow2"
VM_KERNEL = "vmlinux"
VM_INITRD = "initrd.img"
REQUIRED_TOOLS = ("debootstrap", "chroot", "mkfs.ext4", "qemu-img", "dpkg-deb", "tar", "docker")


class ImagesNotBuiltError(RuntimeError):
    """No complete build for the current recipe (find_images never builds)."""


def cache_root() -> Path:
    base = os.environ.get("TWINLAB_CACHE") or str(Path.home() / ".cache" / "twinlab")
    return Path(base) / "images"


def current_hash() -> str:
    return recipe.recipe_hash(recipe.recipe_files())


def manifest_complete(directory: Path) -> ImageSet | None:
    """The manifest in `directory` if it and every file it names exist, else None."""
    if not (directory / MANIFEST_NAME).is_file():
        return None
    try:
        images = read_manifest(directory)
    except (ValueError, KeyError, TypeError):
        return None
    files = (images.vm_disk_qcow2, images.vm_kernel, images.vm_initrd, images.userland_tar)
    return images if all(path.is_file() for path in files) else None


def find_images() -> ImageSet:
    """The built images for the current recipe; never builds."""
    hash_hex = current_hash()
    directory = cache_root() / hash_hex
    images = manifest_complete(directory)
    hint = "run scripts/setup.sh (or python -m workloads.images build)"
    if images is None:
        raise ImagesNotBuiltError(f"no images for recipe {hash_hex[:12]} in {directory}: {hint}")
    present = container.inspect_image(images.container_image)
    if present is None or present.image_id != images.container_image_id:
        raise ImagesNotBuiltError(
            f"docker image {images.container_image} is not in the local Docker: {hint}"
        )
    return images


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """One build at a time per cache (setup and tests may both ask for images)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def preflight() -> None:
    if os.geteuid() != 0:
        raise BuildError("building images needs root (debootstrap, chroot): run it as root")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"missing build tools {missing}: run scripts/setup.sh to install them")
    result = subprocess.run(["docker", "version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(container.DOCKER_DOWN_HINT)


def build_images(force: bool = False, console: Console | None = None) -> ImageSet:
    """Build (or reuse) the images for the current recipe and return their manifest."""
    console = console or Console(stderr=True)
    hash_hex = current_hash()
    root = cache_root()
    final = root / hash_hex
    with build_lock(root):
        images = None if force else manifest_complete(final)
        if images is not None:
            return _ensure_container(images, console)
        preflight()
        console.print(f"Building twinlab images for recipe {hash_hex[:12]} into {final}")
        work = root / f".build-{hash_hex[:12]}-{os.getpid()}"
        _clean_stale_builds(root)
        work.mkdir()
        try:
            images = _build(hash_hex, work, final, root / f"build-{hash_hex[:12]}.log", console)
            _publish(work, final)
        finally:
            unmount_all_under(work)  # normally nothing: the chroot context unmounts itself
            safe_rmtree(work)
        total = sum(images.build_times_s.values())
        console.print(f"Images ready in {total:.0f} s: {images.container_image}, {final / VM_DISK}")
        return read_manifest(final)


def prune_images(console: Console | None = None) -> list[str]:
    """Delete builds of other recipes (cache dirs and their docker tags); keep the current one.

    Only on request: a build of another recipe may still back a running deployment.
    """
    console = console or Console(stderr=True)
    root = cache_root()
    keep = current_hash()
    removed: list[str] = []
    with build_lock(root):
        _clean_stale_builds(root)
        for directory in sorted(root.iterdir()):
            if directory.is_dir() and not directory.name.startswith(".") and directory.name != keep:
                safe_rmtree(directory)
                removed.append(str(directory))
        for log in root.glob("build-*.log"):
            if not keep.startswith(log.stem.removeprefix("build-")):
                log.unlink()
        listing = subprocess.run(
            [
                "docker",
                "image",
                "ls",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                recipe.image_repository(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        for tag in listing.stdout.split():
            if not tag.endswith(keep[:12]):
                result = subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
                if result.returncode == 0:
                    removed.append(tag)
                else:
                    console.print(f"kept {tag}: in use by a container")
    return removed


def _ensure_container(images: ImageSet, console: Console) -> ImageSet:
    """Re-import the container image from the cached tarball if Docker lost it."""
    present = container.inspect_image(images.container_image)
    if present is not None and present.image_id == images.container_image_id:
        return images
    steps = Steps(images.directory / "reimport.log", console)
    with steps.step("docker import", f"{images.container_image} (missing from Docker)"):
        image = container.import_image(steps, images.userland_tar, images.container_image)
    sizes = replace(images.sizes, container_image_bytes=image.size_bytes)
    updated = replace(images, container_image_id=image.image_id, sizes=sizes)
    write_manifest(images.directory, updated)
    return updated


def _clean_stale_builds(root: Path) -> None:
    """Remove temp dirs of interrupted builds whose process is gone."""
    for stale in root.glob(".build-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            unmount_all_under(stale)
            safe_rmtree(stale)


def _publish(work: Path, final: Path) -> None:
    """Swap the finished build into place; a reader sees the old or the new, never half."""
    output = work / "output"
    if final.exists():
        retired = final.with_name(f".retired-{final.name[:12]}-{os.getpid()}")
        final.rename(retired)
        output.rename(final)
        safe_rmtree(retired)
    else:
        output.rename(final)


def _build(hash_hex: str, work: Path, final: Path, log: Path, console: Console) -> ImageSet:
    log.write_text(f"twinlab image build {hash_hex} at {time.ctime()}\n")
    steps = Steps(log, console)
    output = work / "output"
    output.mkdir()
    version = recipe.app_version()
    tag = recipe.container_tag(version, hash_hex)
    user_root = work / "userland"
    vm_root = work / "vm"

    wheels = work / "wheels"
    with steps.step("pypi", f"pinned wheels in {appserver.APP_SERVER_PINS.name}"):
        appserver.download_wheels(steps, wheels)
    packages_text = " ".join(recipe.USERLAND_PACKAGES)
    with steps.step("debootstrap", f"{recipe.SUITE} minbase + {packages_text}"):
        userland.debootstrap(steps, user_root)
    with steps.step("app server", f"pip install -r {appserver.APP_SERVER_PINS.name}"):
        python_packages = appserver.install_app_server(steps, user_root, wheels)
    with steps.step("userland", f"app at {recipe.APP_DIR}, user {recipe.APP_USER}"):
        userland.install_app(steps, user_root)
        userland.strip_host_traces(user_root)
        userland.move_apt_lists(user_root, work / "apt-lists")
        packages = userland.package_list(steps, user_root)
        userland.write_tarball(steps, user_root, output / USERLAND_TAR)
    userland_bytes = tree_bytes(user_root)
    with steps.step("docker import", tag):
        image = container.import_image(steps, output / USERLAND_TAR, tag)

    with steps.step("vm copy", "copy of the userland for the VM"):
        vmdisk.copy_userland(steps, user_root, vm_root, work / "apt-lists")
        safe_rmtree(user_root)
    with steps.step("apt in chroot", " ".join(recipe.VM_PACKAGES)):
        busybox = vmdisk.install_os(steps, vm_root, work)
        vm_packages = userland.package_list(steps, vm_root)
        vmdisk.drop_apt_lists(vm_root)
    with steps.step("vm config", "units, users, sshd, network"):
        vmdisk.configure_os(steps, vm_root)
        release = vmdisk.kernel_release(vm_root)
        ssh_host_key = vmdisk.host_key(vm_root)
    with steps.step("kernel", f"vmlinux {release} for PVH direct boot"):
        bzimage = (vm_root / "boot" / f"vmlinuz-{release}").read_bytes()
        vmlinux = extract_vmlinux(bzimage)
        if not has_pvh_entry(vmlinux):
            raise BuildError(f"kernel {release} has no PVH entry: QEMU cannot boot its vmlinux")
        (output / VM_KERNEL).write_bytes(vmlinux)
    with steps.step("initramfs", f"busybox + {len(recipe.INITRAMFS_MODULES)} modules and deps"):
        modules = build_initramfs(vm_root, release, busybox, output / VM_INITRD)
    raw = work / "vm-disk.raw"
    with steps.step("mkfs", f"ext4 {recipe.VM_DISK_VIRTUAL_MIB} MiB from the tree"):
        vmdisk.make_ext4(steps, vm_root, raw)
    with steps.step("qcow2", "qemu-img convert"):
        vmdisk.convert_to_qcow2(steps, raw, output / VM_DISK)

    package_text = "".join(f"{name}\t{version}\n" for name, version in sorted(packages.items()))
    images = ImageSet(
        recipe_hash=hash_hex,
        app_version=version,
        container_image=tag,
        container_image_id=image.image_id,
        vm_disk_qcow2=final / VM_DISK,
        vm_kernel=final / VM_KERNEL,
        vm_initrd=final / VM_INITRD,
        vm_cmdline=recipe.VM_CMDLINE,
        guest_http_port=recipe.GUEST_HTTP_PORT,
        guest_ssh_port=recipe.GUEST_SSH_PORT,
        ssh_user=recipe.SSH_USER,
        sizes=ImageSizes(
            userland_bytes=userland_bytes,
            container_image_bytes=image.size_bytes,
            vm_disk_qcow2_bytes=(output / VM_DISK).stat().st_size,
            vm_disk_virtual_bytes=recipe.VM_DISK_VIRTUAL_MIB * 1024 * 1024,
            vm_kernel_bytes=(output / VM_KERNEL).stat().st_size,
            vm_kernel_bzimage_bytes=len(bzimage),
            vm_initrd_bytes=(output / VM_INITRD).stat().st_size,
        ),
        package_list_sha256=hashlib.sha256(package_text.encode()).hexdigest(),
        userland_packages=dict(sorted(packages.items())),
        python_packages=python_packages,
        vm_package_count=len(vm_packages),
        vm_kernel_release=release,
        vm_ssh_host_key=ssh_host_key,
        initramfs_modules=tuple(modules),
        userland_tar=final / USERLAND_TAR,
        build_times_s=dict(steps.times_s),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        debian_suite=recipe.SUITE,
    )
    (output / "vm-packages.txt").write_text(
        "".join(f"{name}\t{version}\n" for name, version in sorted(vm_packages.items()))
    )
    write_manifest(output, images)
    return images
