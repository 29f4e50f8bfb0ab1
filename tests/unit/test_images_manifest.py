"""The manifest: JSON round trip, moved caches, atomic writes; and the cmdline assembly."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from workloads.images.cmdline import (
    BadSshKeyError,
    cmdline_with_ssh_key,
    decode_ssh_key,
    encode_ssh_key,
)
from workloads.images.manifest import ImageSet, ImageSizes, read_manifest, write_manifest

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPTlSnOVEGpXUfzzAqqQfhQmyr4eBSSpdGIlLZlx3beG me@host"
BASE = "console=ttyS0 root=/dev/vda rw quiet"


def sample(directory: Path) -> ImageSet:
    return ImageSet(
        recipe_hash="ab" * 32,
        app_version="1.0.0",
        container_image="twinlab/webapp:1.0.0-abababababab",
        container_image_id="sha256:" + "cd" * 32,
        vm_disk_qcow2=directory / "vm-disk.qcow2",
        vm_kernel=directory / "vmlinux",
        vm_initrd=directory / "initrd.img",
        vm_cmdline=BASE,
        guest_http_port=8080,
        guest_ssh_port=22,
        ssh_user="twin",
        sizes=ImageSizes(1, 2, 3, 4, 5, 6, 7),
        package_list_sha256="ef" * 32,
        userland_packages={"python3": "3.11.2-1+b1", "bash": "5.2.15-2+b9"},
        python_packages={"gunicorn": "23.0.0", "packaging": "26.0"},
        vm_package_count=152,
        vm_kernel_release="6.1.0-50-amd64",
        vm_ssh_host_key="ssh-ed25519 AAAA",
        initramfs_modules=("virtio", "ext4"),
        userland_tar=directory / "userland.tar",
        build_times_s={"debootstrap": 35.2, "mkfs": 1.8},
        built_at="2026-11-26T15:49:27+00:00",
        debian_suite="bookworm",
    )


def test_manifest_round_trip(tmp_path: Path) -> None:
    images = sample(tmp_path)
    assert ImageSet.from_json(images.to_json()) == images
    assert images.directory == tmp_path


def test_manifest_paths_follow_a_moved_cache(tmp_path: Path) -> None:
    text = sample(tmp_path / "old").to_json()
    moved = ImageSet.from_json(text, tmp_path / "new")
    assert moved.vm_disk_qcow2 == tmp_path / "new" / "vm-disk.qcow2"
    assert moved.vm_kernel.is_absolute() and moved.userland_tar.parent == tmp_path / "new"


def test_manifest_with_unknown_fields_is_rejected(tmp_path: Path) -> None:
    text = sample(tmp_path).to_json().replace('"app_version"', '"surprise": 1, "app_version"')
    with pytest.raises(ValueError, match="rebuild"):
        ImageSet.from_json(text)


def test_write_manifest_is_complete_and_readable(tmp_path: Path) -> None:
    images = sample(tmp_path)
    path = write_manifest(tmp_path, images)
    assert read_manifest(tmp_path) == images
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_cmdline_appends_the_key_as_base64() -> None:
    line = cmdline_with_ssh_key(BASE, ED25519 + "\n")
    assert line.startswith(BASE + " twinlab.ssh_key=")
    encoded = line.rsplit("twinlab.ssh_key=", 1)[1]
    assert decode_ssh_key(encoded) == ED25519
    assert " " not in encoded and base64.b64decode(encoded).decode() == ED25519
    assert encode_ssh_key(ED25519) == encoded


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (ED25519 + "\n" + ED25519, "single line"),
        ("", "not an OpenSSH public key"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "not an OpenSSH public key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "not an OpenSSH public key"),
        ("ssh-ed25519 not*base64", "not valid base64"),
    ],
)
def test_cmdline_rejects_bad_keys(key: str, message: str) -> None:
    with pytest.raises(BadSshKeyError, match=message):
        cmdline_with_ssh_key(BASE, key)


def test_cmdline_rejects_keys_too_long_for_the_kernel() -> None:
    huge_rsa = "ssh-rsa " + base64.b64encode(b"\1" * 1600).decode()
    with pytest.raises(BadSshKeyError, match="ed25519"):
        cmdline_with_ssh_key(BASE, huge_rsa)


def test_cmdline_refuses_a_second_key() -> None:
    with pytest.raises(ValueError, match="already"):
        cmdline_with_ssh_key(cmdline_with_ssh_key(BASE, ED25519), ED25519)


def test_cmdline_carries_the_app_environment_as_base64() -> None:
    env_file = 'MARK="a \\"b\\" c"\nTWINLAB_WORKERS="2"\n'
    line = cmdline_with_ssh_key(BASE, ED25519, env_file)
    encoded = line.rsplit("twinlab.env=", 1)[1]
    assert " " not in encoded and base64.b64decode(encoded).decode() == env_file
    with pytest.raises(BadSshKeyError, match="over the 2047-byte limit"):
        cmdline_with_ssh_key(BASE, ED25519, "X=" + "y" * 2000 + "\n")
