"""Parsing what the boot test reads: systemd-analyze output and /proc/PID/stat."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_images_manifest import sample
from workloads.images.boottest import (
    parse_duration_s,
    parse_proc_stat_cpu_s,
    parse_startup_times,
    qemu_command,
)

# Captured from the twinlab VM (direct kernel boot, no initrd phase seen by systemd).
ANALYZE_VM = """\
Startup finished in 3.933s (kernel) + 7.214s (userspace) = 11.148s
graphical.target reached after 7.211s in userspace.
"""
# Shape of a stock Debian guest with initramfs-tools.
ANALYZE_STOCK = """\
Startup finished in 1.802s (kernel) + 3.198s (initrd) + 1min 2.5s (userspace) = 1min 7.500s
multi-user.target reached after 850ms in userspace
"""


def test_startup_times_of_the_twinlab_vm() -> None:
    assert parse_startup_times(ANALYZE_VM) == {
        "kernel_s": 3.933,
        "userspace_s": 7.214,
        "total_s": 11.148,
        "multi_user_s": 7.211,
    }


def test_startup_times_with_initrd_minutes_and_milliseconds() -> None:
    times = parse_startup_times(ANALYZE_STOCK)
    assert times["initrd_s"] == pytest.approx(3.198)
    assert times["userspace_s"] == pytest.approx(62.5)
    assert times["total_s"] == pytest.approx(67.5)
    assert times["multi_user_s"] == pytest.approx(0.85)


def test_unfinished_boot_is_an_error() -> None:
    with pytest.raises(ValueError, match="Startup finished"):
        parse_startup_times("Bootup is not yet finished. Please try again later.\n")


@pytest.mark.parametrize(
    ("text", "seconds"), [("850ms", 0.85), ("3.2s", 3.2), ("1min 2.345s", 62.345), ("2min", 120)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_proc_stat_cpu_time_survives_spaces_in_the_name() -> None:
    line = "4242 (qemu system) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 99 0 0\n"
    assert parse_proc_stat_cpu_s(line, 100) == pytest.approx(3.0)


def test_qemu_command_uses_the_deployment_devices(tmp_path: Path) -> None:
    images = sample(tmp_path)
    command = qemu_command(
        images, tmp_path / "o.qcow2", "console=ttyS0", 18080, 18022, 512, "tcg", tmp_path / "c"
    )
    joined = " ".join(command)
    assert command[:3] == ["qemu-system-x86_64", "-accel", "tcg"]
    assert "-machine pc" in joined and "-m 512" in joined and "-smp 1" in joined
    assert "virtio-blk-pci,drive=disk0" in joined
    assert "hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=tcp:127.0.0.1:18022-:22" in joined
    assert "virtio-net-pci,netdev=n0" in joined
    assert command[command.index("-kernel") + 1] == str(images.vm_kernel)
    assert "virtio-rng" not in joined
    with_rng = qemu_command(
        images, tmp_path / "o", "x", 1, 2, 512, "tcg", tmp_path / "c", cpu="max", rng=True
    )
    assert "virtio-rng-pci,rng=rng0" in with_rng and with_rng[-6:-4] == ["-cpu", "max"]
