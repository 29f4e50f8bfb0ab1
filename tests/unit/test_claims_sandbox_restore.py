"""Claims G1 (gVisor's cost) and S1 (snapshot restore) on hand-made samples of the registry's
variants: each can hold, fail, and be inconclusive, for every registered sandbox and every
restored VM (tests/unit/variant_runs.py labels them from components/registry.py)."""

from __future__ import annotations

import itertools

import pytest

from components.thresholds import thresholds_for
from components.variant import Variant
from scripts.checks.claims import BY_ID
from scripts.checks.claims.s1 import SPEEDUP_PART, TARGET_PART
from scripts.checks.results.samples import Sample
from scripts.checks.results.stats import judge_median
from scripts.checks.results.verdicts import ClaimResult, Samples
from tests.unit.variant_runs import (
    BOOTED_VMS,
    CONTAINERS,
    RESTORED_VMS,
    SANDBOXES,
    restore_run,
    sample,
    sandbox_run,
    spread,
    starts,
)

pytestmark = pytest.mark.unit
T = thresholds_for("tcg")
VM_PAIRS = list(itertools.product(BOOTED_VMS, RESTORED_VMS))


def judge(claim: str, run: list[Sample]) -> ClaimResult:
    return BY_ID[claim].judge(Samples(run), T)


def test_the_registry_has_what_the_claims_compare() -> None:
    assert SANDBOXES and CONTAINERS and BOOTED_VMS and RESTORED_VMS


# --- G1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", SANDBOXES, ids=lambda v: v.name)
def test_g1_holds_when_the_sandbox_is_several_times_slower(sandbox: Variant) -> None:
    result = judge("G1", sandbox_run(sandbox, CONTAINERS[0]))
    assert result.verdict == "holds", result.summary
    assert f"{sandbox.name} ran runsc-ptrace-hostnet (host network" in result.summary
    assert set(result.cells) == {CONTAINERS[0].name, sandbox.name}
    assert "cpu (control, not judged)" in result.cell(sandbox.name)
    assert {name.split(" (")[0] for name in result.summaries} == set(result.cells)


@pytest.mark.parametrize("sandbox", SANDBOXES, ids=lambda v: v.name)
@pytest.mark.parametrize(
    ("figures", "why"),
    [
        ({"io": (400.0, 300.0)}, "io: requests_per_s"),  # file calls only 1.3x slower
        ({"static": (900.0, 800.0)}, "static: requests_per_s"),  # 1.1x
        ({"start_s": (0.6, 0.62)}, "start: time_to_first_response_s"),  # as fast to start
    ],
)
def test_g1_does_not_hold_when_one_figure_is_not_slower_enough(
    sandbox: Variant, figures: dict[str, tuple[float, float]], why: str
) -> None:
    result = judge("G1", sandbox_run(sandbox, CONTAINERS[0], **figures))
    assert result.verdict == "does not hold", result.summary
    assert f"{why} " in result.summary


@pytest.mark.parametrize("sandbox", SANDBOXES, ids=lambda v: v.name)
def test_g1_is_inconclusive_when_a_ci_straddles_or_repeats_are_few(sandbox: Variant) -> None:
    container = CONTAINERS[0]
    # static: container/sandbox 2 +- noise, the CI straddles the threshold 2
    run = [
        s
        for s in sandbox_run(sandbox, container)
        if not (s.metric == "requests_per_s" and s.metadata.get("endpoint") == "static")
    ]
    run += [sample(container, "requests_per_s", v, endpoint="static") for v in spread(800.0, 0.3)]
    run += [sample(sandbox, "requests_per_s", v, endpoint="static") for v in spread(400.0, 0.3)]
    straddles = judge("G1", run)
    assert straddles.verdict == "inconclusive" and "straddles" in straddles.summary
    few = [s for s in sandbox_run(sandbox, container) if s.metric != "time_to_first_response_s"]
    few += starts(container, [0.6, 0.61, 0.62]) + starts(sandbox, [1.2, 1.21, 1.22])
    result = judge("G1", few)
    assert result.verdict == "inconclusive" and "only 3 samples" in result.summary


def test_g1_without_a_sandbox_is_inconclusive_and_says_which_kind() -> None:
    run = [s for s in sandbox_run(SANDBOXES[0], CONTAINERS[0]) if s.kind != "sandbox"]
    result = judge("G1", run)
    assert result.verdict == "inconclusive" and "no variant of kind sandbox" in result.summary


def test_g1_says_when_the_gvisor_configuration_is_not_recorded() -> None:
    run = [s for s in sandbox_run(SANDBOXES[0], CONTAINERS[0]) if s.metric != "sandbox_runtime"]
    assert "configuration that ran is not recorded" in judge("G1", run).summary


# --- S1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("booted", "restored"), VM_PAIRS, ids=lambda v: v.name)
def test_s1_holds_with_the_measured_restore(booted: Variant, restored: Variant) -> None:
    # The restored cloner's figure (1.24 s) against the cold boot's (19.5 s), as measured.
    result = judge("S1", restore_run(booted, restored))
    assert result.verdict == "holds", result.summary
    assert result.ratio == pytest.approx(19.5 / 1.24)
    assert set(result.cells) == {booted.name, restored.name}


@pytest.mark.parametrize(("booted", "restored"), VM_PAIRS, ids=lambda v: v.name)
@pytest.mark.parametrize(
    ("cold_s", "restored_s", "why", "side"),
    [
        (19.5, 3.0, "restored start: ", "above 1.5 s"),  # 6.5x faster, but over 1.5 s
        (3.6, 1.2, "cold boot/restore: ", "below the threshold 4"),  # only 3x faster
    ],
)
def test_s1_does_not_hold_past_the_bound_or_under_the_speedup(
    booted: Variant, restored: Variant, cold_s: float, restored_s: float, why: str, side: str
) -> None:
    result = judge("S1", restore_run(booted, restored, cold_s=cold_s, restored_s=restored_s))
    assert result.verdict == "does not hold", result.summary
    part = result.summary.split(why)[1]
    assert f"the whole CI is {side}" in part.split(";")[0]


@pytest.mark.parametrize(("booted", "restored"), VM_PAIRS, ids=lambda v: v.name)
def test_s1_is_inconclusive_around_the_bound_or_with_few_repeats(
    booted: Variant, restored: Variant
) -> None:
    around = restore_run(booted, restored, restored_s=1.5)  # the CI straddles 1.5 s
    result = judge("S1", around)
    assert result.verdict == "inconclusive" and "straddles 1.5 s" in result.summary
    few = starts(booted, spread(19.5)) + starts(restored, [1.2, 1.25])
    result = judge("S1", few)
    assert result.verdict == "inconclusive" and "only 2 samples" in result.summary


@pytest.mark.parametrize(("booted", "restored"), VM_PAIRS, ids=lambda v: v.name)
def test_s1_parts_judge_the_target_and_the_speedup_apart(
    booted: Variant, restored: Variant
) -> None:
    # The claim test asserts the speedup and only that the target is not missed outright.
    around = judge("S1", restore_run(booted, restored, restored_s=1.5))
    assert [(p.claim, p.verdict) for p in around.parts] == [
        (TARGET_PART, "inconclusive"),
        (SPEEDUP_PART, "holds"),
    ]
    slow = judge("S1", restore_run(booted, restored, cold_s=3.6, restored_s=1.2))
    assert [(p.claim, p.verdict) for p in slow.parts] == [
        (TARGET_PART, "holds"),
        (SPEEDUP_PART, "does not hold"),
    ]
    assert "below the threshold 4" in slow.parts[1].summary


@pytest.mark.parametrize(("booted", "restored"), VM_PAIRS, ids=lambda v: v.name)
def test_s1_without_a_restore_is_inconclusive_and_says_why(
    booted: Variant, restored: Variant
) -> None:
    run = [
        *starts(booted, spread(19.5)),
        sample(booted, "restored_start_unavailable", "no snapshot: libvirt is remote"),
    ]
    result = judge("S1", run)
    assert result.verdict == "inconclusive"
    assert (
        result.summary
        == "no VM start restored from a snapshot measured: no snapshot: libvirt is remote"
    )


def test_s1_reads_how_a_clone_started_not_the_variant_name() -> None:
    # A restored variant's samples without start_method "restore" are no restore.
    booted, restored = BOOTED_VMS[0], RESTORED_VMS[0]
    run = starts(booted, spread(19.5)) + [
        sample(restored, "time_to_first_response_s", v) for v in spread(1.2)
    ]
    assert judge("S1", run).verdict == "inconclusive"


def test_judge_median_holds_fails_and_straddles() -> None:
    assert judge_median(spread(1.0), 1.5, "at most").verdict == "holds"
    assert judge_median(spread(2.0), 1.5, "at most").verdict == "does not hold"
    assert judge_median(spread(1.5), 1.5, "at most").verdict == "inconclusive"
    assert judge_median(spread(2.0), 1.5, "at least").verdict == "holds"
    assert judge_median([1.0] * 4, 1.5, "at most").verdict == "inconclusive"


def test_a_stack_deployed_before_g1_and_s1_existed_gets_their_defaults() -> None:
    from components import outputs
    from scripts.checks.targets.deployed import stack_thresholds

    exported = {
        name: value
        for name, value in thresholds_for("kvm").as_dict().items()
        if not name.startswith(("g1_", "s1_"))
    } | {"r1_min_start_ratio": 7.0}
    raw = {outputs.THRESHOLDS: exported, outputs.VIRT_MODE: "kvm"}
    found = stack_thresholds(raw)
    assert found.r1_min_start_ratio == 7.0  # what the stack exported stays
    assert found.s1_min_restore_speedup == thresholds_for("kvm").s1_min_restore_speedup
