"""The KVM probe's judgement on serial output and its record's freshness."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.virt_mode import (
    ProbeEnvironment,
    VirtModeRecord,
    kernel_reached_root_mount,
    record_is_current,
)

DATA = Path(__file__).parent / "data" / "virt"


def test_a_kernel_that_reached_the_root_mount_counts() -> None:
    # Captured: Debian's stock kernel under TCG with no disk (tests/unit/data/virt/README).
    serial = (DATA / "tcg-root-mount.txt").read_text(encoding="utf-8")
    assert kernel_reached_root_mount(serial)


@pytest.mark.parametrize(
    "serial",
    [
        "",  # a silent hang, as under the PVM /dev/kvm of these machines
        "[    0.000000] Linux version 6.1.0-28-amd64\n"
        "[    0.412000] Kernel panic - not syncing: Attempted to kill the idle task!\n",
        "[    0.051000] unchecked MSR access error: RDMSR from 0x1a0\n"
        "[    0.052000] Kernel panic - not syncing: Fatal exception\n",
        "[    1.000000] Run /init as init process\n",  # an initrd boot is not this probe's
    ],
    ids=["hang", "early-panic", "msr-panic", "init-without-root-panic"],
)
def test_an_early_panic_or_silence_does_not_count(serial: str) -> None:
    assert not kernel_reached_root_mount(serial)


def record(**changes: str) -> VirtModeRecord:
    fields = {"host_kernel": "6.18.0", "qemu_version": "QEMU emulator version 7.2.22"}
    return VirtModeRecord(
        mode="tcg",
        reason="r",
        probe_kernel="vmlinuz",
        probe_seconds=0.0,
        detected_at=0.0,
        tcg_boot_seconds=1.2,
        **(fields | changes),
    )


def test_the_record_is_redone_when_the_host_kernel_or_qemu_changes() -> None:
    here = ProbeEnvironment(host_kernel="6.18.0", qemu_version="QEMU emulator version 7.2.22")
    assert record_is_current(record(), here)
    assert not record_is_current(record(host_kernel="6.19.1"), here)
    assert not record_is_current(record(qemu_version="QEMU emulator version 8.0"), here)
    assert not record_is_current(record(host_kernel="", qemu_version=""), here)  # older record


def test_the_same_boot_cut_before_the_root_mount_does_not_count() -> None:
    serial = (DATA / "tcg-root-mount.txt").read_text(encoding="utf-8")
    before = serial[: serial.index("Kernel panic - not syncing: VFS")]
    assert "Kernel panic" not in before
    assert not kernel_reached_root_mount(before)
