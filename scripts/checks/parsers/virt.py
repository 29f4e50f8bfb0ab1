"""What virtualization a target sees from inside, systemd-detect-virt style.

Container signs win over VM signs (a container on a VM sees the VM's CPU flags and DMI too).
The CPUID hypervisor vendor is not readable from a shell, so the kvm-clock clock source stands
in for it: a KVM guest offers kvm-clock, a QEMU guest under TCG does not and shows QEMU's DMI.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """The innermost virtualization ("docker", "kvm", "qemu", ..., or "none") and why."""
    found = container_kind(evidence) or vm_kind(evidence)
    return found if found is not None else ("none", "no container or hypervisor signs")
