"""What virtualization a target sees from inside, systemd-detect-virt style, and whose kernel
answers its system calls.

An application kernel (gVisor's Sentry, a user-space kernel) wins over container signs (runsc
still runs under Docker, so /.dockerenv exists), and container signs win over VM signs (a
container on a VM sees the VM's CPU flags and DMI too). The CPUID hypervisor vendor is not
readable from a shell, so the kvm-clock clock source stands in for it: a KVM guest offers
kvm-clock, a QEMU guest under TCG does not and shows QEMU's DMI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What gVisor shows whatever the host runs (seen in Debian's runsc 20221219): its made-up kernel
# log opens with this line, and /proc/version is this fixed 4.4.0 string.
GVISOR_LOG_START = "Starting gVisor..."
GVISOR_PROC_VERSION = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"
# Whose kernel serves a target: the host's (shared), a guest's (booted for it), or an
# application kernel (a user-space kernel implementing Linux's system calls: gVisor).
KernelKind = Literal["host", "guest", "application", "unknown"]

# Substrings of DMI sys_vendor/product_name -> systemd-detect-virt names.
DMI_VENDORS = (
    ("KVM", "kvm"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VirtualBox", "oracle"),
    ("innotek", "oracle"),
    ("Xen", "xen"),
    ("Microsoft Corporation", "microsoft"),
    ("Amazon EC2", "amazon"),
    ("Google Compute Engine", "google"),
    ("Firecracker", "firecracker"),
)
CGROUP_RUNTIMES = (
    ("/docker/", "docker"),
    ("/docker-", "docker"),
    ("libpod", "podman"),
    ("/lxc/", "lxc"),
    ("lxc.payload", "lxc"),
    ("/kubepods", "container-other"),
)


@dataclass(frozen=True)
class VirtEvidence:
    pid1_cgroup: str = ""
    container_env: str = ""  # the container= variable in PID 1's environment
    dockerenv: bool = False
    containerenv: bool = False
    cpu_flags: frozenset[str] = frozenset()
    dmi_vendor: str = ""
    dmi_product: str = ""
    clocksources: frozenset[str] = frozenset()
    hypervisor_type: str = ""  # /sys/hypervisor/type (Xen)
    kernel_log_head: str = ""  # the first line of the kernel log (dmesg), if readable
    proc_version: str = ""  # /proc/version


def log_message(line: str) -> str:
    """A dmesg line without its "[    0.000000] " timestamp."""
    stripped = line.strip()
    return stripped.partition("]")[2].strip() if stripped.startswith("[") else stripped


def application_kernel(evidence: VirtEvidence) -> tuple[str, str] | None:
    """(kind, reason) when a user-space application kernel answers the system calls, or None."""
    signs = []
    if log_message(evidence.kernel_log_head) == GVISOR_LOG_START:
        signs.append(f"kernel log starts with {GVISOR_LOG_START!r}")
    if evidence.proc_version.strip() == GVISOR_PROC_VERSION:
        signs.append("/proc/version is gVisor's fixed 4.4.0 string")
    return ("gvisor", "; ".join(signs)) if signs else None


def container_kind(evidence: VirtEvidence) -> tuple[str, str] | None:
    """(kind, reason) for a container, or None."""
    if evidence.container_env:
        return evidence.container_env, f"PID 1 environment container={evidence.container_env}"
    for needle, kind in CGROUP_RUNTIMES:
        if needle in evidence.pid1_cgroup:
            return kind, f"PID 1 cgroup path contains {needle!r}"
    if evidence.dockerenv:
        return "docker", "/.dockerenv exists"
    if evidence.containerenv:
        return "podman", "/run/.containerenv exists"
    return None


def vm_kind(evidence: VirtEvidence) -> tuple[str, str] | None:
    """(kind, reason) for a virtual machine, or None."""
    if "kvm-clock" in evidence.clocksources:
        return "kvm", "kvm-clock clock source"
    if evidence.hypervisor_type == "xen" or "xen" in evidence.clocksources:
        return "xen", "Xen hypervisor interface"
    if "hyperv_clocksource_tsc_page" in evidence.clocksources:
        return "microsoft", "Hyper-V clock source"
    dmi = f"{evidence.dmi_vendor} {evidence.dmi_product}"
    for needle, kind in DMI_VENDORS:
        if needle in dmi:
            return kind, f"DMI {dmi.strip()!r}"
    if "hypervisor" in evidence.cpu_flags:
        return "vm-other", "CPUID hypervisor flag"
    return None


def detect_virtualization(evidence: VirtEvidence) -> tuple[str, str]:
    """The innermost virtualization ("gvisor", "docker", "kvm", "qemu", ..., or "none") and why."""
    found = application_kernel(evidence) or container_kind(evidence) or vm_kind(evidence)
    return found if found is not None else ("none", "no container or hypervisor signs")


def kernel_kind(evidence: VirtEvidence, boot_id: str, host_boot_id: str) -> tuple[KernelKind, str]:
    """Whose kernel a target runs on, and why. `boot_id` is "" where the target has none.

    An application kernel makes up its own boot id (or has none) and reports its own release,
    so neither "same as the host" nor "differs from the host" alone says what it is: its own
    signs are checked first.
    """
    application = application_kernel(evidence)
    if application is not None:
        name, reason = application
        return "application", f"{name}: {reason}"
    if boot_id and boot_id == host_boot_id:
        return "host", "same boot id as the host"
    if boot_id:
        return "guest", "own boot id: a kernel booted for this target"
    return "unknown", "no boot id to compare and no application-kernel sign"
