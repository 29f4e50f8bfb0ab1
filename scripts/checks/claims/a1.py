"""A1: containers share the host's kernel; a VM runs its own."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import ClaimResult, Samples, need, need_primary


def judge(samples: Samples, _t: Thresholds) -> ClaimResult:
    container, vm = need_primary(samples, "container"), need_primary(samples, "vm")
    c_kernel = need(samples.one("same_kernel_as_host", variant=container), "container kernel")
    c_boot = need(samples.one("same_boot_id_as_host", variant=container), "container boot id")
    v_boot = need(samples.one("same_boot_id_as_host", variant=vm), "VM boot id")
    holds = c_kernel is True and c_boot is True and v_boot is False
    cells = {
        name: f"same boot id as host: {samples.shown('same_boot_id_as_host', variant=name)}; "
        f"sees: {samples.shown('virtualization', variant=name)}"
        for name in (label.name for label in samples.variants())
    }
    return ClaimResult(
        "A1",
        "holds" if holds else "does not hold",
        f"{container} shares the host's boot id; {vm} has its own"
        if holds
        else "boot ids do not split as claimed",
        cells,
    )


CLAIM = Claim(
    id="A1",
    statement="Containers share the host's kernel; a VM runs its own OS kernel on a hypervisor",
    measured="kernel release and /proc/sys/kernel/random/boot_id inside vs on the host; "
    "virtualization type as seen from inside (CPUID hypervisor bit and vendor, DMI product, "
    "/.dockerenv, cgroup)",
    expected="container: same kernel and boot id as host; VM: its own",
    reference="Textbook: containers share the host kernel; a VM boots its own.",
    judge=judge,
)
