"""Which virtualization mode the VM gets: KVM when it really works, software emulation (TCG) else.

/dev/kvm existing proves nothing: on these machines it is a paravirtual hypervisor under which
a stock Debian kernel hangs silently. So the probe boots a stock Debian kernel (no disk) under
KVM and waits for the panic a kernel prints only after running all of early boot: it cannot
mount a root file system. Only then is KVM recorded as usable. Any other panic, or none, is a
failure. The same boot under TCG is the positive control: if it does not reach the root mount
either, the probe cannot tell and says so. The record keeps both boot times, and the host
kernel and QEMU it was made on: when either changes, the setup probes again. The stack reads
the record (`virtMode: auto`).

    python -m components.virt_mode detect [--force]   # probe and record
    python -m components.virt_mode show               # print the record
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from components.errors import TwinlabError
from components.paths import cache_dir, write_json_record

# How the VMs are accelerated; the one definition every module uses.
VirtMode = Literal["kvm", "tcg"]
PROBE_TIMEOUT_S = 25.0
# The panic a kernel without a root disk prints after early boot, at the root mount: reaching
# it proves the accelerator executes a full guest kernel correctly. An earlier panic (a CPU
# feature, an MSR) means the opposite, so "Kernel panic" alone must not count.
REACHED_ROOT_MOUNT = re.compile(r"VFS: Unable to mount root fs")


def record_path() -> Path:
    return cache_dir() / "virt-mode.json"


@dataclass(frozen=True)
class VirtModeRecord:
    mode: VirtMode
    reason: str
    probe_kernel: str
    probe_seconds: float  # KVM boot to the root mount (0 when KVM was not tried)
    detected_at: float
    # What the answer depends on: probe again when either changes.
    host_kernel: str = ""
    qemu_version: str = ""
    # Positive control: the same boot under TCG, seconds to the root mount.
    tcg_boot_seconds: float = 0.0


@dataclass(frozen=True)
class ProbeEnvironment:
    host_kernel: str
    qemu_version: str


def probe_environment() -> ProbeEnvironment:
    done = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, timeout=30
    )
    first = (done.stdout.splitlines() or ["?"])[0]
    return ProbeEnvironment(host_kernel=os.uname().release, qemu_version=first.strip())


def record_is_current(record: VirtModeRecord, environment: ProbeEnvironment) -> bool:
    return (record.host_kernel, record.qemu_version) == (
        environment.host_kernel,
        environment.qemu_version,
    )


def kernel_reached_root_mount(serial_output: str) -> bool:
    return REACHED_ROOT_MOUNT.search(serial_output) is not None


def load_record() -> VirtModeRecord | None:
    try:
        data = json.loads(record_path().read_text(encoding="utf-8"))
        return VirtModeRecord(**data)
    except (OSError, ValueError, TypeError):  # missing, corrupt or of an older shape
        return None


def stock_kernel() -> Path:
    """A stock Debian kernel for the probe, taken from Debian's package (cached)."""
    target_dir = cache_dir() / "probe-kernel"
    found = sorted(glob.glob(str(target_dir / "boot" / "vmlinuz-*")))
    if found:
        return Path(found[-1])
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*)", depends)
    if match is None:
        raise TwinlabError("cannot resolve Debian's linux-image-amd64; run apt-get update")
    with tempfile.TemporaryDirectory() as download_dir:
        subprocess.run(
            ["apt-get", "download", "-q", match.group(1)],
            cwd=download_dir,
            check=True,
            capture_output=True,
        )
        deb = next(Path(download_dir).glob("*.deb"))
        target_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target_dir / "pkg")], check=True)
    (target_dir / "boot").mkdir(exist_ok=True)
    kernel = next((target_dir / "pkg" / "boot").glob("vmlinuz-*"))
    final = target_dir / "boot" / kernel.name
    shutil.copy(kernel, final)
    shutil.rmtree(target_dir / "pkg")
    return final


def boot_probe(kernel: Path, accel: VirtMode) -> tuple[bool, str, float]:
    """Boot `kernel` with no root disk; True when it reaches the root mount in time."""
    cpu = ["-cpu", "host"] if accel == "kvm" else []
    command = [
        "qemu-system-x86_64",
        "-accel",
        accel,
        *cpu,
        "-machine",
        "pc",
        "-m",
        "256",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        raw = expired.stdout or b""
        output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    elapsed = time.monotonic() - started
    name = accel.upper()
    if kernel_reached_root_mount(output):
        return True, f"stock kernel reached the root mount under {name} in {elapsed:.1f} s", elapsed
    printable = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b.|[^\x20-\x7e\n]", "", output)
    tail = " | ".join(printable.strip().splitlines()[-2:]) or "no output"
    return (
        False,
        f"stock kernel did not reach the root mount under {name} ({elapsed:.1f} s: {tail})",
        elapsed,
    )


def kvm_device_problem() -> str | None:
    """Why KVM cannot even be tried here, or None. Checked before any kernel is fetched."""
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not accessible to this user"
    return None


def detect(environment: ProbeEnvironment) -> VirtModeRecord:
    if shutil.which("qemu-system-x86_64") is None:
        raise TwinlabError("qemu-system-x86_64 not found; run scripts/setup.sh")
    device_problem = kvm_device_problem()
    kernel = stock_kernel()
    control_ok, control_reason, tcg_seconds = boot_probe(kernel, "tcg")
    if not control_ok:
        raise TwinlabError(
            f"the probe cannot tell: its positive control failed ({control_reason}); "
            "a kernel that does not boot under TCG says nothing about KVM"
        )
    if device_problem is not None:
        kvm_ok, reason, kvm_seconds = False, device_problem, 0.0
    else:
        kvm_ok, reason, kvm_seconds = boot_probe(kernel, "kvm")
    return VirtModeRecord(
        mode="kvm" if kvm_ok else "tcg",
        reason=reason,
        probe_kernel=kernel.name,
        probe_seconds=round(kvm_seconds, 2),
        detected_at=time.time(),
        host_kernel=environment.host_kernel,
        qemu_version=environment.qemu_version,
        tcg_boot_seconds=round(tcg_seconds, 2),
    )


def save_record(record: VirtModeRecord) -> None:
    write_json_record(record_path(), asdict(record))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.virt_mode")
    parser.add_argument("action", choices=["detect", "show"])
    parser.add_argument("--force", action="store_true", help="probe again even if recorded")
    args = parser.parse_args(argv)
    record = load_record()
    if args.action == "detect":
        try:
            environment = probe_environment()
            if record is None or args.force or not record_is_current(record, environment):
                record = detect(environment)
                save_record(record)
        except (TwinlabError, subprocess.CalledProcessError, OSError) as error:
            print(f"virt-mode probe failed: {error}", file=sys.stderr)
            return 1
    if record is None:
        print("no virtualization mode recorded; run scripts/setup.sh", file=sys.stderr)
        return 1
    control = (
        f"; TCG control boot {record.tcg_boot_seconds:.1f} s" if record.tcg_boot_seconds else ""
    )
    print(f"{record.mode} ({record.reason}{control})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
