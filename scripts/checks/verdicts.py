"""From samples to one verdict per claim: holds, does not hold, or inconclusive, with numbers.

The report and the claim tests both read these results; neither re-derives a verdict.
Isolation expectations are written as functions that list what is wrong, so a test can assert
"no problems" on a real deployment and "these problems" on a deliberately weakened one.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scripts.checks.samples import Sample, Value
from scripts.checks.thresholds import Thresholds

Verdict = Literal["holds", "does not hold", "inconclusive"]


@dataclass(frozen=True)
class ClaimResult:
    claim: str
    verdict: Verdict
    summary: str
    container: str = ""
    vm: str = ""
    ratio: float | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


class Samples:
    """Lookup over one run's samples by variant/target and metric."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.all = list(samples)

    def values(
        self, metric: str, *, variant: str | None = None, target: str | None = None, **meta: Value
    ) -> list[Value]:
        return [
            s.value
            for s in self.all
            if s.metric == metric
            and (variant is None or s.variant == variant)
            and (target is None or s.target == target)
            and all(s.metadata.get(k) == v for k, v in meta.items())
        ]

    def one(self, metric: str, **where: str | Value) -> Value | None:
        found = self.values(metric, **where)  # type: ignore[arg-type]
        return found[-1] if found else None

    def median(self, metric: str, **where: str | Value) -> float | None:
        found = [float(v) for v in self.values(metric, **where)]  # type: ignore[arg-type]
        return statistics.median(found) if found else None

    def targets(self, variant: str) -> list[str]:
        return sorted({s.target for s in self.all if s.variant == variant})


class Missing(Exception):
    """A sample a verdict needs is absent: the verdict is inconclusive."""


def _need(value: Value | None, what: str) -> Value:
    if value is None:
        raise Missing(what)
    return value


def _ratio_claim(
    claim: str,
    samples: Samples,
    metric: str,
    unit: str,
    minimum: float,
    *,
    vm_over_container: bool,
    **where: Value,
) -> ClaimResult:
    container = samples.median(metric, variant="container", **where)
    vm = samples.median(metric, variant="vm", **where)
    if container is None or vm is None or min(container, vm) <= 0:
        return ClaimResult(claim, "inconclusive", f"{metric}: missing or zero values")
    ratio = vm / container if vm_over_container else container / vm
    verdict: Verdict = "holds" if ratio >= minimum else "does not hold"
    direction = "VM/container" if vm_over_container else "container/VM"
    return ClaimResult(
        claim,
        verdict,
        f"{metric} {direction} = {ratio:.2f} (threshold >= {minimum:g})",
        container=f"{container:.4g} {unit}",
        vm=f"{vm:.4g} {unit}",
        ratio=ratio,
    )


# --- isolation expectations, shared by verdicts and claim tests --------------------------------


def container_isolation_problems(samples: Samples, target: str) -> list[str]:
    """What breaks I1's "process-level isolation on a shared kernel" for this container: the
    baseline expectations, then every misconfiguration finding, each with its CIS item."""
    from scripts.checks import findings

    problems = []
    if samples.one("host_processes_visible", target=target) is not False:
        problems.append("host processes are visible (PID namespace not separate; CIS 5.16)")
    if samples.one("cap_full", target=target) is not False:
        problems.append("it holds the full capability set (CIS 5.4, 5.5)")
    if samples.one("seccomp_mode", target=target) != 2:
        problems.append("seccomp filter is off (CIS 5.22)")
    if samples.one("host_kernel_state_visible", target=target) is not True:
        problems.append("host kernel state is not visible: not a shared kernel")
    if samples.one("can_write_sysctl", target=target) is not False:
        problems.append("root inside can write kernel settings (CIS 5.5)")
    return problems + findings.weaknesses(samples.all, target)


def vm_isolation_problems(samples: Samples, target: str) -> list[str]:
    """What breaks I2's "own kernel, nothing of the host kernel visible" for this VM. Findings
    that only expose the guest's own kernel ("guest-only") are not problems; host-scope ones
    (e.g. a host directory shared into the guest) are."""
    from scripts.checks import findings

    problems = []
    for metric, bad in (
        ("host_kernel_state_visible", True),
        ("host_processes_visible", True),
        ("kernel_modules_visible", True),
        ("module_load_reached_host", True),
        ("sysctl_write_reached_host", True),
    ):
        if samples.one(metric, target=target) in (bad, None):
            problems.append(f"{metric} is {samples.one(metric, target=target)}")
    if samples.one("can_write_sysctl", target=target) is not True:
        problems.append("root in the guest cannot change its own kernel settings")
    return problems + findings.weaknesses(samples.all, target, scope=findings.HOST_SCOPE)


def weakening_reported(samples: Samples, target: str) -> list[str]:
    """I3: what the checks report as weakened for a (deliberately weakened) container."""
    from scripts.checks import findings

    reported = []
    if samples.one("host_processes_visible", target=target) is True:
        reported.append("host processes visible")
    if samples.one("cap_full", target=target) is True:
        reported.append("full capabilities")
    if samples.one("seccomp_mode", target=target) == 0:
        reported.append("seccomp off")
    return reported + findings.weaknesses(samples.all, target)


# --- one function per claim ---------------------------------------------------------------------


def a1(samples: Samples, _t: Thresholds) -> ClaimResult:
    c_kernel = _need(samples.one("same_kernel_as_host", variant="container"), "container kernel")
    c_boot = _need(samples.one("same_boot_id_as_host", variant="container"), "container boot id")
    v_kernel = _need(samples.one("same_boot_id_as_host", variant="vm"), "VM boot id")
    c_virt = samples.one("virtualization", variant="container")
    v_virt = samples.one("virtualization", variant="vm")
    holds = c_kernel is True and c_boot is True and v_kernel is False
    return ClaimResult(
        "A1",
        "holds" if holds else "does not hold",
        "container shares the host's boot id; the VM has its own"
        if holds
        else "boot ids do not split as claimed",
        container=f"same boot id as host: {c_boot}; sees: {c_virt}",
        vm=f"same boot id as host: {v_kernel}; sees: {v_virt}",
    )


def a2(samples: Samples, _t: Thresholds) -> ClaimResult:
    c_init = _need(samples.one("init_system", variant="container"), "container init")
    v_init = _need(samples.one("init_system", variant="vm"), "VM init")
    c_services = _need(samples.one("os_service_count", variant="container"), "container services")
    v_services = _need(samples.one("os_service_count", variant="vm"), "VM services")
    c_kernel = samples.one("kernel_image_present", variant="container")
    v_kernel = samples.one("kernel_image_present", variant="vm")
    holds = c_init == "none" and c_services == 0 and v_init != "none" and int(v_services) > 0
    holds = holds and c_kernel is False and v_kernel is True
    procs_c = samples.one("process_count", variant="container")
    procs_v = samples.one("process_count", variant="vm")
    return ClaimResult(
        "A2",
        "holds" if holds else "does not hold",
        "container runs the app only; the VM runs init plus OS services",
        container=f"PID 1 {samples.one('pid1_command', variant='container')}, "
        f"{procs_c} processes, {c_services} services, kernel: {c_kernel}",
        vm=f"PID 1 {samples.one('pid1_command', variant='vm')}, {procs_v} processes, "
        f"{v_services} services, kernel: {v_kernel}",
    )


def r1(samples: Samples, t: Thresholds) -> ClaimResult:
    return _ratio_claim(
        "R1",
        samples,
        "time_to_first_response_s",
        "s",
        t.r1_min_start_ratio,
        vm_over_container=True,
    )


def r2(samples: Samples, t: Thresholds) -> ClaimResult:
    result = _ratio_claim(
        "R2", samples, "memory_charged_mib", "MiB", t.r2_min_memory_ratio, vm_over_container=True
    )
    idle_c = samples.median("idle_cpu_percent", variant="container")
    idle_v = samples.median("idle_cpu_percent", variant="vm")
    if idle_c is None or idle_v is None:
        return result
    return ClaimResult(
        result.claim,
        result.verdict,
        result.summary,
        container=f"{result.container}; idle CPU {idle_c:.2f} %",
        vm=f"{result.vm}; idle CPU {idle_v:.2f} %",
        ratio=result.ratio,
    )


def r3(samples: Samples, t: Thresholds) -> ClaimResult:
    return _ratio_claim(
        "R3", samples, "image_size_mib", "MiB", t.r3_min_size_ratio, vm_over_container=True
    )


def r4(samples: Samples, t: Thresholds) -> ClaimResult:
    return _ratio_claim(
        "R4", samples, "instances_fit", "instances", t.r4_min_density_ratio, vm_over_container=False
    )


def p1(samples: Samples, t: Thresholds) -> ClaimResult:
    endpoints = sorted(
        {str(s.metadata.get("endpoint")) for s in samples.all if s.metric == "requests_per_s"}
    )
    if not endpoints:
        return ClaimResult("P1", "inconclusive", "no load samples")
    parts = [
        _ratio_claim(
            "P1",
            samples,
            "requests_per_s",
            "req/s",
            t.p1_min_throughput_ratio,
            vm_over_container=False,
            endpoint=endpoint,
        )
        for endpoint in endpoints
    ]
    if any(part.verdict == "inconclusive" for part in parts):
        verdict: Verdict = "inconclusive"
    else:
        verdict = "holds" if all(part.verdict == "holds" for part in parts) else "does not hold"
    ratios = [part.ratio for part in parts if part.ratio is not None]
    return ClaimResult(
        "P1",
        verdict,
        "; ".join(f"{e}: {p.summary}" for e, p in zip(endpoints, parts, strict=True)),
        container=", ".join(f"{e} {p.container}" for e, p in zip(endpoints, parts, strict=True)),
        vm=", ".join(f"{e} {p.vm}" for e, p in zip(endpoints, parts, strict=True)),
        ratio=min(ratios) if ratios else None,
    )


def i1(samples: Samples, _t: Thresholds) -> ClaimResult:
    from scripts.checks import findings

    targets = [t for t in samples.targets("container") if not _weakened(samples, t)]
    if not targets:
        return ClaimResult("I1", "inconclusive", "no container probed")
    problems = container_isolation_problems(samples, targets[0])
    unmeasured = findings.unmeasurable(samples.all, targets[0])
    summary = "; ".join(problems) or (
        "separate PID namespace, reduced capabilities, seccomp on, host kernel state visible, "
        "no misconfiguration found"
    )
    if unmeasured:
        summary += "; " + "; ".join(unmeasured)
    return ClaimResult(
        "I1",
        "does not hold" if problems else "holds",
        summary,
        container=_isolation_line(samples, targets[0]),
        problems=tuple(problems),
    )


def i2(samples: Samples, _t: Thresholds) -> ClaimResult:
    from scripts.checks import findings

    targets = samples.targets("vm")
    if not targets:
        return ClaimResult("I2", "inconclusive", "no VM probed")
    problems = vm_isolation_problems(samples, targets[0])
    guest_only = findings.weaknesses(samples.all, targets[0], scope=findings.GUEST_ONLY)
    summary = "; ".join(problems) or (
        "nothing of the host kernel visible; guest root changes only its own kernel"
    )
    if guest_only:
        summary += "; guest-only (expose the guest's own kernel, not the host's): " + "; ".join(
            guest_only
        )
    return ClaimResult(
        "I2",
        "does not hold" if problems else "holds",
        summary,
        vm=_isolation_line(samples, targets[0]),
        problems=tuple(problems),
    )


def i3(samples: Samples, _t: Thresholds) -> ClaimResult:
    weakened = [t for t in samples.targets("container") if _weakened(samples, t)]
    if not weakened:
        return ClaimResult("I3", "inconclusive", "no deliberately weakened container probed")
    reported = weakening_reported(samples, weakened[0])
    still_passes = not container_isolation_problems(samples, weakened[0])
    holds = bool(reported) and not still_passes
    return ClaimResult(
        "I3",
        "holds" if holds else "does not hold",
        f"weakened container ({weakened[0]}): checks report {', '.join(reported) or 'nothing'}",
        container=_isolation_line(samples, weakened[0]),
        problems=tuple(reported),
    )


def u1(samples: Samples, _t: Thresholds) -> ClaimResult:
    host = _need(samples.one("kernel_release", variant="host"), "host kernel")
    container = _need(samples.one("kernel_release", variant="container"), "container kernel")
    vm = _need(samples.one("kernel_release", variant="vm"), "VM kernel")
    holds = container == host and vm != host
    return ClaimResult(
        "U1",
        "holds" if holds else "does not hold",
        f"host kernel {host}",
        container=str(container),
        vm=str(vm),
    )


def _weakened(samples: Samples, target: str) -> bool:
    return any(s.target == target and s.metadata.get("weakened") is True for s in samples.all)


def _isolation_line(samples: Samples, target: str) -> str:
    names = ("host_processes_visible", "cap_eff_count", "seccomp_mode", "no_new_privs")
    return ", ".join(f"{name}={samples.one(name, target=target)}" for name in names)


CLAIMS: dict[str, Callable[[Samples, Thresholds], ClaimResult]] = {
    "A1": a1,
    "A2": a2,
    "R1": r1,
    "R2": r2,
    "R3": r3,
    "R4": r4,
    "P1": p1,
    "I1": i1,
    "I2": i2,
    "I3": i3,
    "U1": u1,
}


def evaluate(samples: Sequence[Sample], thresholds: Thresholds) -> list[ClaimResult]:
    lookup = Samples(samples)
    results = []
    for claim, judge in CLAIMS.items():
        try:
            results.append(judge(lookup, thresholds))
        except Missing as missing:
            results.append(ClaimResult(claim, "inconclusive", f"missing sample: {missing}"))
    return results
