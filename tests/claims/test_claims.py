"""Each claim of the catalogue (scripts/checks/claims/) asserted on the real deployments: one
test per claim ID, plus tests parametrized over the variant registry where a claim applies to
every variant.

The verdicts come from scripts.checks.claims, the same code the Fabric tasks and the report
use; thresholds come from the stack (defaults in components/thresholds.py with their origin).
The negative controls at the end show that these assertions fail when a claim is absent: on a
deliberately weakened container, and with the two kinds' measurements swapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from components import outputs
from components.registry import VARIANTS
from components.thresholds import Thresholds
from scripts.checks.claims import CLAIMS
from scripts.checks.claims.s1 import SPEEDUP_PART, TARGET_PART
from scripts.checks.neighbours.slowdown import slowdowns
from scripts.checks.neighbours.stressors import STRESSORS
from scripts.checks.results.samples import textbook_pair
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    container_isolation_problems,
    sandbox_isolation_problems,
    vm_isolation_problems,
    weakening_reported,
)

pytestmark = [pytest.mark.integration, pytest.mark.claims]
# The session's stack deploys the default variants; the restored VM, deployed only when named,
# is tested through its own stack (tests/integration/test_restored_variant.py).
DEFAULT_VARIANTS = [v.name for v in VARIANTS if v.by_default]

# What each kind's isolation must look like (a new kind adds its expectation here).
ISOLATION_BY_KIND: dict[str, Callable[[Samples, str], list[str]]] = {
    "container": container_isolation_problems,
    "sandbox": sandbox_isolation_problems,
    "vm": vm_isolation_problems,
}


def judge(samples: Samples, claim: str, thresholds: Thresholds) -> ClaimResult:
    return CLAIMS[claim](samples, thresholds)


def assert_holds(samples: Samples, claim: str, thresholds: Thresholds) -> ClaimResult:
    result = judge(samples, claim, thresholds)
    cells = "; ".join(f"{name}: {text}" for name, text in result.cells.items())
    assert result.verdict == "holds", f"{claim} {result.verdict}: {result.summary} ({cells})"
    return result


def only_target(samples: Samples, variant: str, weakened: bool) -> str:
    found = [
        target
        for target in samples.targets(variant)
        if any(s.target == target and s.metadata.get("weakened") is True for s in samples.all)
        == weakened
    ]
    assert len(found) == 1, found
    return found[0]


def deployed_kind(deployed_stack: dict[str, Any], variant: str) -> str:
    """The kind of a registered variant in the session's stack; a variant this host cannot run
    must have been reported with its reason (then there is nothing of it to assert here)."""
    deployed = deployed_stack[outputs.VARIANTS]
    if variant not in deployed:
        reason = deployed_stack[outputs.SKIPPED_VARIANTS].get(variant)
        assert reason, f"{variant} neither deployed nor reported as skipped"
        pytest.skip(f"{variant} is not deployed on this host: {reason}")
    return str(deployed[variant][outputs.KIND])


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
def test_every_variant_is_measured_by_every_check_group(
    samples: Samples, deployed_stack: dict[str, Any], variant: str
) -> None:
    kind = deployed_kind(deployed_stack, variant)
    assert {s.kind for s in samples.all if s.variant == variant} == {kind}
    for metric in ("time_to_first_response_s", "memory_charged_mib", "idle_cpu_percent"):
        assert len(samples.values(metric, variant=variant)) >= 5, f"{variant}: n < 5 {metric}"
    assert samples.values("image_size_mib", variant=variant), f"{variant}: no image_size_mib"
    for metric in ("kernel_release", "same_boot_id_as_host", "host_processes_visible"):
        assert samples.one(metric, variant=variant) is not None, f"{variant}: no {metric}"
    endpoints = {
        s.metadata.get("endpoint")
        for s in samples.all
        if s.metric == "requests_per_s" and s.variant == variant
    }
    assert endpoints == {"static", "cpu", "io"}
    assert all(v == 0 for v in samples.values("errors", variant=variant))


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
def test_every_variant_is_isolated_as_its_kind_claims(
    samples: Samples, deployed_stack: dict[str, Any], variant: str
) -> None:
    kind = deployed_kind(deployed_stack, variant)
    expectation = ISOLATION_BY_KIND.get(kind)
    assert expectation is not None, f"no isolation expectation for kind {kind}: add one"
    target = only_target(samples, variant, weakened=False)
    assert expectation(samples, target) == [], f"{variant} ({kind}) at {target}"


def assert_container_isolated(samples: Samples, target: str) -> None:
    problems = container_isolation_problems(samples, target)
    assert problems == [], f"{target}: " + "; ".join(problems)


def test_A1_container_shares_the_host_kernel_vm_runs_its_own(
    samples: Samples, thresholds: Thresholds
) -> None:
    assert_holds(samples, "A1", thresholds)
    assert samples.one("virtualization", variant=samples.primary("vm")) in ("qemu", "kvm")


def test_A2_container_packages_the_app_vm_a_full_os(
    samples: Samples, thresholds: Thresholds
) -> None:
    assert_holds(samples, "A2", thresholds)
    processes_c = samples.one("process_count", variant=samples.primary("container"))
    processes_v = samples.one("process_count", variant=samples.primary("vm"))
    assert isinstance(processes_c, int) and isinstance(processes_v, int)
    assert processes_c < processes_v


def test_R1_containers_start_many_times_faster(samples: Samples, thresholds: Thresholds) -> None:
    result = assert_holds(samples, "R1", thresholds)
    assert len(samples.values("time_to_first_response_s", variant=samples.primary("vm"))) >= 5
    assert result.ratio_ci is not None and result.ratio_ci[0] >= thresholds.r1_min_start_ratio


def test_R2_containers_use_much_less_memory(samples: Samples, thresholds: Thresholds) -> None:
    assert_holds(samples, "R2", thresholds)
    assert samples.values("idle_cpu_percent", variant=samples.primary("container"))
    assert samples.values("idle_cpu_percent", variant=samples.primary("vm"))


def test_R3_vms_need_more_storage(samples: Samples, thresholds: Thresholds) -> None:
    assert_holds(samples, "R3", thresholds)


def test_R4_many_more_containers_fit(samples: Samples, thresholds: Thresholds) -> None:
    assert_holds(samples, "R4", thresholds)
    for kind in ("container", "vm"):
        variant = samples.primary(kind)
        (count,) = samples.values("instances_healthy_in_budget", variant=variant)
        # Instances actually started under the kernel-enforced budget: one start time each.
        starts = samples.values("density_time_to_first_200_s", variant=variant)
        assert isinstance(count, int) and 0 < count <= len(starts), (variant, count, starts)


def test_P1_containers_at_least_as_fast_on_every_endpoint(
    samples: Samples, thresholds: Thresholds
) -> None:
    assert_holds(samples, "P1", thresholds)
    endpoints = {s.metadata.get("endpoint") for s in samples.all if s.metric == "requests_per_s"}
    assert endpoints == {"static", "cpu", "io"}
    assert all(v == 0 for v in samples.values("errors"))


def test_I1_container_isolated_by_process_on_a_shared_kernel(
    samples: Samples, thresholds: Thresholds
) -> None:
    assert_holds(samples, "I1", thresholds)
    assert_container_isolated(samples, only_target(samples, "container", weakened=False))


def test_I2_vm_sees_nothing_of_the_host_kernel(samples: Samples, thresholds: Thresholds) -> None:
    assert_holds(samples, "I2", thresholds)
    assert vm_isolation_problems(samples, only_target(samples, "vm", weakened=False)) == []


def test_I3_checks_report_a_weakened_container(samples: Samples, thresholds: Thresholds) -> None:
    assert_holds(samples, "I3", thresholds)
    weak = only_target(samples, "container", weakened=True)
    assert "host processes visible" in weakening_reported(samples, weak)


def test_U1_vm_runs_a_kernel_of_its_own_choosing(samples: Samples, thresholds: Thresholds) -> None:
    assert_holds(samples, "U1", thresholds)


@pytest.mark.parametrize("variant", [v.name for v in VARIANTS if v.kind == "sandbox"])
def test_G1_the_sandbox_pays_for_its_kernel_in_syscalls_and_start(
    samples: Samples, thresholds: Thresholds, deployed_stack: dict[str, Any], variant: str
) -> None:
    """G1 is judged on the data. Its start part (the sandbox starts at least 1.25 times slower)
    must not be contradicted: its CI may straddle the bound, since runc's first 200 is bimodal
    here (CI run of 2026-11-30 19:34: 0.37-0.65 s, ratio 1.96, CI 1.17-2.33), but must not lie
    wholly below it. Its throughput parts ("several times slower" read as runc >= 2x the
    sandbox's req/s) may not hold at all: with gVisor's host network here the socket calls reach
    the host's TCP/IP stack, and the two measure about 2x apart (README "Host networking": runc's
    runs were bimodal until the setup let the host reuse TIME_WAIT ports); the report says which,
    with the CI. The swapped negative control below must not hold."""
    deployed_kind(deployed_stack, variant)
    result = judge(samples, "G1", thresholds)
    assert result.ratio_ci is not None, result.summary  # judged on a CI, not on missing data
    start = [part for part in result.summary.split("; ") if part.startswith("start:")]
    assert start and "CI" in start[0], result.summary  # judged on n >= 5 each, with a CI
    assert "the whole CI is below" not in start[0], result.summary
    if variant == samples.primary("sandbox"):
        assert f"{variant} ran runsc-" in result.summary  # which gVisor configuration ran


def test_S1_a_vm_restored_from_its_snapshot_starts_much_faster_than_booted(
    samples: Samples, thresholds: Thresholds
) -> None:
    """The claim (cold boot / restore at least s1_min_restore_speedup, the whole CI) must hold.
    Its absolute part, restored create-to-first-200 <= s1_max_restored_start_s, is a performance
    target (issue 10's 1.5 s under TCG): the report judges it, with its CI; here it must only not
    be missed outright. Medians of 1.0-1.5 s on this host put its CI across 1.5 s in 3 of the 5
    fresh-clone CI runs of 2026-11-30 from 20:13 on (e.g. 20:57: median 1.46 s, CI 0.956-1.59,
    while the speedup held at 5.82, CI 4.91-9.58)."""
    result = judge(samples, "S1", thresholds)
    parts = {part.claim: part for part in result.parts}
    assert parts[SPEEDUP_PART].verdict == "holds", result.summary
    assert parts[TARGET_PART].verdict != "does not hold", result.summary
    assert "CI" in parts[TARGET_PART].summary, result.summary  # judged on n >= 5, with a CI
    restored = [v.name for v in VARIANTS if v.starts_from_snapshot]
    assert any(
        len(samples.values("time_to_first_response_s", variant=name, start_method="restore")) >= 5
        for name in restored
    ), result.cells


# --- negative controls ---------------------------------------------------------------------------


def test_N1_a_vm_neighbour_disturbs_less_judged_per_stressor_on_measured_slowdowns(
    samples: Samples, thresholds: Thresholds, deployed_stack: dict[str, Any]
) -> None:
    """N1 is judged on the data, whichever way it goes (under TCG a VM neighbour may well
    disturb more, and both share the disk): every variant has n >= 5 paired slowdowns per
    stressor, every stressor a verdict on the ratio's CI, and a verdict against the claim says
    so in words. tests/integration/test_neighbour_live.py makes it fail on purpose."""
    result = judge(samples, "N1", thresholds)
    assert [part.claim for part in result.parts] == [f"N1 {s}" for s in STRESSORS]
    # run-all measures the pair N1 judges; every other deployed variant (R1's restored clones
    # are not deployed) gets a sample saying it was left out and what measures it.
    deployed = deployed_stack[outputs.VARIANTS]
    labels = [label for label in samples.variants() if label.name in deployed]
    judged = textbook_pair(labels)
    assert len(judged) == 2, judged
    for label in labels:
        if label.name not in judged:
            reasons = [str(s.value) for s in samples.all if s.metric == "neighbour_unavailable"]
            assert any("fab neighbours" in r for r in reasons), (label.name, reasons)
            assert label.name in result.summary
            continue
        for stressor in STRESSORS:
            found = slowdowns(samples.all, label.name, stressor, "p99")
            assert len(found.values) >= 5, (label.name, stressor, found)
    for part in result.parts:
        assert part.ratio_ci is not None, part.summary
        if part.verdict == "does not hold":
            assert "the data says otherwise" in part.summary


def test_negative_control_isolation_assertion_fails_on_the_weakened_container(
    samples: Samples,
) -> None:
    weak = only_target(samples, "container", weakened=True)
    with pytest.raises(AssertionError, match="host processes are visible") as failure:
        assert_container_isolated(samples, weak)
    assert "full capability set" in str(failure.value)


def swapped_kinds(samples: Samples) -> Samples:
    """The run with the primary container's and the primary VM's samples exchanged."""
    container, vm = samples.primary("container"), samples.primary("vm")
    assert container is not None and vm is not None
    swap = {container: (vm, "vm"), vm: (container, "container")}
    return Samples(
        dataclasses.replace(s, variant=swap[s.variant][0], kind=swap[s.variant][1])
        if s.variant in swap
        else s
        for s in samples.all
    )


@pytest.mark.parametrize("claim", ["R1", "R2", "P1"])
def test_negative_control_the_claim_fails_with_the_kinds_swapped(
    samples: Samples, thresholds: Thresholds, claim: str
) -> None:
    """With the container's and the VM's measurements exchanged, each claim must come out
    "does not hold": the measured distributions are far enough apart, on the claim's threshold
    (from the literature, not from the data), that their CI says so. Noisy data, too few
    repeats or a regression that brings the two kinds together make it "inconclusive" and this
    test fail."""
    with pytest.raises(AssertionError, match=rf"{claim} does not hold"):
        assert_holds(swapped_kinds(samples), claim, thresholds)


def test_negative_control_g1_fails_with_the_sandbox_and_runc_swapped(
    samples: Samples, thresholds: Thresholds
) -> None:
    container, sandbox = samples.primary("container"), samples.primary("sandbox")
    if sandbox is None:
        pytest.skip("no sandbox variant deployed on this host")
    assert container is not None
    swap = {container: (sandbox, "sandbox"), sandbox: (container, "container")}
    swapped = Samples(
        dataclasses.replace(s, variant=swap[s.variant][0], kind=swap[s.variant][1])
        if s.variant in swap
        else s
        for s in samples.all
    )
    with pytest.raises(AssertionError, match="G1 does not hold"):
        assert_holds(swapped, "G1", thresholds)


def test_negative_control_s1_fails_with_boot_and_restore_swapped(
    samples: Samples, thresholds: Thresholds
) -> None:
    """The restored clones' figures filed as boots and the boots' as restores: the "restored"
    VM then takes a cold boot's 8-20 s, past the bound and slower than the "booted" one."""
    other = {"boot": "restore", "restore": "boot"}
    swapped = Samples(
        dataclasses.replace(
            s, metadata={**s.metadata, "start_method": other[str(s.metadata["start_method"])]}
        )
        if s.kind == "vm" and s.metadata.get("start_method") in other
        else s
        for s in samples.all
    )
    with pytest.raises(AssertionError, match="S1 does not hold"):
        assert_holds(swapped, "S1", thresholds)


def test_every_claim_is_asserted_here() -> None:
    tested = {name.split("_")[1] for name in globals() if name.startswith("test_") and "_" in name}
    assert set(CLAIMS) <= tested
