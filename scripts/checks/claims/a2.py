"""A2: a container packages the app, not a full OS; a VM carries a full OS."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.verdicts import ClaimResult, Samples, need, need_primary


def judge(samples: Samples, _t: Thresholds) -> ClaimResult:
    container, vm = need_primary(samples, "container"), need_primary(samples, "vm")
    c_init = need(samples.one("init_system", variant=container), "container init")
    v_init = need(samples.one("init_system", variant=vm), "VM init")
    c_services = need(samples.one("os_service_count", variant=container), "container services")
    v_services = need(samples.one("os_service_count", variant=vm), "VM services")
    c_kernel = samples.one("kernel_image_present", variant=container)
    v_kernel = samples.one("kernel_image_present", variant=vm)
    holds = c_init == "none" and c_services == 0 and v_init != "none" and int(v_services) > 0
    holds = holds and c_kernel is False and v_kernel is True
    cells = {
        label.name: f"PID 1 {samples.shown('pid1_command', variant=label.name)}, "
        f"{samples.shown('process_count', variant=label.name)} processes, "
        f"{samples.shown('os_service_count', variant=label.name)} services, "
        f"kernel: {samples.shown('kernel_image_present', variant=label.name)}"
        for label in samples.variants()
    }
    return ClaimResult(
        "A2",
        "holds" if holds else "does not hold",
        f"{container} runs the app only; {vm} runs init plus OS services",
        cells,
    )


CLAIM = Claim(
    id="A2",
    statement="A container packages the app and its dependencies, not a full OS; a VM carries "
    "a full OS",
    measured="processes running inside (PID 1 and count), presence of a kernel, init system and "
    "OS services; installed package count",
    expected="container: app process tree only; VM: init plus OS services",
    reference="Textbook: a container packages the app and its dependencies, not a full OS.",
    judge=judge,
)
