"""N1 (noisy neighbour) on hand-made samples and pure parts: the plan, the schedule, the CPU
placement, the stressors' command and report, the paired slowdowns, and the verdict per
stressor (holds, does not hold, inconclusive)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from components.thresholds import thresholds_for
from scripts.checks.claims import evaluate, n1
from scripts.checks.lifecycle import RunOptions
from scripts.checks.neighbours import group as neighbours_group
from scripts.checks.neighbours import measure, placement, stressors
from scripts.checks.neighbours.measure import NeighbourPlan, schedule
from scripts.checks.neighbours.sibling import Neighbour, sibling_target_url
from scripts.checks.neighbours.slowdown import LATENCY_METRIC, slowdowns
from scripts.checks.parsers.domain_xml import HostForward
from scripts.checks.resources.errors import ReadinessTimeoutError
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import Sample, Value, VariantLabel
from scripts.checks.results.verdicts import ClaimResult, Samples
from scripts.checks.targets.host import local_host
from scripts.checks.targets.target import CommandResult

pytestmark = pytest.mark.unit
T = thresholds_for("tcg")
VARIANTS = {
    "container": ("docker://app", "container"),
    "gvisor": ("docker://gvisor", "sandbox"),
    "vm": ("ssh://twin@127.0.0.1:12222", "vm"),
}


def neighbour_runs(
    variant: str,
    slowdown: Mapping[str, float],
    *,
    repeats: int = 5,
    baseline_ms: float = 10.0,
    spread: float = 0.02,
    **meta: Value,
) -> list[Sample]:
    """Baseline and stressed p50/p99 samples of `variant`: each stressor slows the baseline of
    its repeat by its factor in `slowdown`, give or take `spread`."""
    target, kind = VARIANTS[variant]
    found = []
    for repeat in range(repeats):
        base = baseline_ms * (1 + 0.05 * repeat)  # drift: cancels out of paired slowdowns
        jitter = 1 + spread * (repeat - repeats // 2) / max(1, repeats // 2)
        for stressor, factor in {"none": 1.0, **slowdown}.items():
            for percentile, scale in (("p50", 0.5), ("p99", 1.0)):
                value = base * scale * (factor * jitter if stressor != "none" else 1.0)
                found.append(
                    Sample(
                        LATENCY_METRIC,
                        value,
                        "ms",
                        target,
                        variant,
                        ("N1",),
                        {"stressor": stressor, "percentile": percentile, "repeat": repeat, **meta},
                        kind=kind,
                    )
                )
    return found


def all_three(container: float, vm: float) -> list[Sample]:
    chosen = dict.fromkeys(stressors.STRESSORS)
    return [
        *neighbour_runs("container", dict.fromkeys(chosen, container)),
        *neighbour_runs("gvisor", dict.fromkeys(chosen, container)),
        *neighbour_runs("vm", dict.fromkeys(chosen, vm)),
    ]


def n1_result(samples: list[Sample]) -> ClaimResult:
    return n1.judge(Samples(samples), T)


# --- the plan and the schedule ----------------------------------------------------------------


def test_the_default_plan_is_valid_and_bounded() -> None:
    plan = NeighbourPlan()
    assert plan.problems() == []
    assert plan.repeats >= 5
    # 3 stressors x 5 repeats x 3 s, plus the baselines: about a minute and a half a variant.
    assert plan.estimated_s() <= 90


@pytest.mark.parametrize(
    ("plan", "fragment"),
    [
        (NeighbourPlan(stressors=("cpu", "disk")), "choose one or more"),
        (NeighbourPlan(stressors=()), "choose one or more"),
        (NeighbourPlan(stressors=("cpu", "cpu")), "each once"),
        (NeighbourPlan(repeats=0), "repeats=0"),
        (NeighbourPlan(rate_per_s=0), "rate_per_s=0"),
        (NeighbourPlan(duration_s=1000), "duration_s=1000"),
    ],
)
def test_a_bad_plan_is_refused_with_the_reason(plan: NeighbourPlan, fragment: str) -> None:
    assert any(fragment in problem for problem in plan.problems()), plan.problems()


def test_each_repeat_measures_the_baseline_then_every_stressor_rotated() -> None:
    runs = schedule(("cpu", "memory", "fsync"), 3)
    assert runs == [
        (0, "none"),
        (0, "cpu"),
        (0, "memory"),
        (0, "fsync"),
        (1, "none"),
        (1, "memory"),
        (1, "fsync"),
        (1, "cpu"),
        (2, "none"),
        (2, "fsync"),
        (2, "cpu"),
        (2, "memory"),
    ]


# --- placement ---------------------------------------------------------------------------------


def test_on_two_cores_the_neighbour_gets_the_other_core_and_vegeta_the_apps() -> None:
    chosen = placement.disjoint(frozenset({0, 1}), frozenset({0}))
    assert (chosen.app, chosen.neighbour, chosen.generator) == (
        frozenset({0}),
        frozenset({1}),
        frozenset({0}),
    )
    assert chosen.metadata()["generator_shares_cpus_with"] == "app"
    assert chosen.metadata()["neighbour_disjoint"] == "true"


def test_with_cores_to_spare_vegeta_gets_its_own() -> None:
    chosen = placement.disjoint(frozenset(range(4)), frozenset({0}))
    assert (chosen.neighbour, chosen.generator) == (frozenset({1}), frozenset({2, 3}))
    assert chosen.generator_shares == "nobody"


def test_an_app_on_every_cpu_leaves_no_room_for_a_disjoint_neighbour() -> None:
    with pytest.raises(placement.PlacementError, match="no CPU set disjoint"):
        placement.disjoint(frozenset({0, 1}), frozenset({0, 1}))


def test_the_control_puts_the_neighbour_on_the_apps_cpus() -> None:
    chosen = placement.same_cpus(frozenset({0, 1}), frozenset({0}))
    assert chosen.neighbour == chosen.app == {0}
    assert chosen.metadata()["neighbour_disjoint"] == "false"


# --- stressors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stressor", stressors.STRESSORS)
def test_each_stressor_runs_for_its_time_and_reports_its_work(
    stressor: str, tmp_path: object
) -> None:
    """The very program the neighbour runs, here with this Python for a fraction of a second."""
    argv = ["sh", "-c", stressors.command(stressor, 0.2).replace("python3", sys.executable)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={"TWINLAB_DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    report = stressors.parse_report(done.stdout)
    assert report.stressor == stressor
    assert report.work > 0 and report.rate > 0
    # 0.2 s from its start, set-up included (the memory stressor's buffers take ~0.1 s here)
    assert report.setup_s + report.work_s == pytest.approx(0.2, abs=0.03)
    assert list(tmp_path.iterdir()) == []  # type: ignore[attr-defined]


def test_an_unknown_stressor_or_duration_is_refused_before_running() -> None:
    with pytest.raises(stressors.StressorError, match="choose one or more"):
        stressors.command("disk", 1)
    with pytest.raises(stressors.StressorError, match=r"0\.\.600"):
        stressors.command("cpu", 0)


def test_a_stressor_without_its_report_line_is_an_error() -> None:
    with pytest.raises(stressors.StressorError, match="no report"):
        stressors.parse_report("Traceback (most recent call last):\nMemoryError\n")


# --- the way into the sibling ------------------------------------------------------------------


def test_the_siblings_target_is_the_deployed_ones_pointed_at_the_clone() -> None:
    assert (
        sibling_target_url("docker://twinlab-dev-app?host=ssh://h", "twinlab-dev-clone-neighbour-1")
        == "docker://twinlab-dev-clone-neighbour-1?host=ssh://h"
    )
    source = [
        HostForward("tcp", "127.0.0.1", 12222, 22),
        HostForward("tcp", "127.0.0.1", 18080, 8080),
    ]
    clone = [
        HostForward("tcp", "127.0.0.1", 40001, 8080),
        HostForward("tcp", "127.0.0.1", 40002, 22),
    ]
    url = sibling_target_url(
        "ssh://twin@127.0.0.1:12222?key=/k/dev.vm.key&wait=5", "n1", source, clone
    )
    assert url == "ssh://twin@127.0.0.1:40002?key=/k/dev.vm.key&wait=60"


def test_a_vm_sibling_without_the_forward_is_refused_with_the_reason() -> None:
    with pytest.raises(ReadinessTimeoutError, match="reaches no port the clone forwards"):
        sibling_target_url("ssh://twin@127.0.0.1:12222", "n1", [], [])


# --- slowdowns ----------------------------------------------------------------------------------


def test_slowdowns_pair_each_stressed_run_with_the_baseline_of_its_repeat() -> None:
    samples = neighbour_runs("container", {"cpu": 2.0}, spread=0.0)
    found = slowdowns(samples, "container", "cpu", "p99")
    # The baseline drifts 5 % a repeat; pairing takes it out entirely.
    assert found.values == pytest.approx([2.0] * 5)
    assert found.uncovered == 0


def test_a_run_whose_stress_started_late_is_left_out_and_counted() -> None:
    samples = neighbour_runs("container", {"cpu": 2.0})
    late = [
        Sample(**{**vars(s), "metadata": {**s.metadata, "stress_covered_window": False}})
        if s.metadata["stressor"] == "cpu" and s.metadata["repeat"] == 0
        else s
        for s in samples
    ]
    found = slowdowns(late, "container", "cpu", "p99")
    assert (len(found.values), found.uncovered) == (4, 1)


# --- the verdict per stressor ----------------------------------------------------------------


def test_n1_holds_when_the_container_neighbour_slows_the_app_more_than_the_vm_one() -> None:
    result = n1_result(all_three(container=1.6, vm=1.05))
    assert result.verdict == "holds", result.summary
    assert [part.claim for part in result.parts] == ["N1 cpu", "N1 memory", "N1 fsync"]
    assert {part.verdict for part in result.parts} == {"holds"}
    assert "x1.6" in result.cell("gvisor")  # every variant gets its slowdowns shown
    assert "p50" in result.cell("vm") and "p99" in result.cell("vm")


def test_n1_does_not_hold_and_says_so_when_the_vm_neighbour_disturbs_more() -> None:
    result = n1_result(all_three(container=1.02, vm=1.8))
    assert result.verdict == "does not hold"
    assert "the data says otherwise: the vm neighbour disturbs more" in result.parts[0].summary


def static_maxima(vm_req_per_s: float) -> list[Sample]:
    """The same run's closed-loop /static maxima (P1's wrk samples): the VM at the given one."""
    target, kind = VARIANTS["vm"]
    return [
        Sample(
            "requests_per_s",
            vm_req_per_s * scale,
            "req/s",
            target,
            "vm",
            ("P1",),
            {"endpoint": "static", "repeat": repeat},
            kind=kind,
        )
        for repeat, scale in enumerate((0.9, 1.0, 1.1, 0.95, 1.05))
    ]


@pytest.mark.parametrize(("vm_max", "verdict"), [(51.0, "inconclusive"), (100.0, "holds")])
def test_n1_is_inconclusive_when_a_variant_was_loaded_near_its_maximum(
    vm_max: float, verdict: str
) -> None:
    """The neighbour runs offered 50 req/s; the VM managed 51 at most (run 20261201T060805):
    its latency is a queue's, whatever the slowdowns say. At 100 req/s of headroom they count."""
    runs = [
        s
        if s.variant != "vm"
        else dataclasses.replace(s, metadata={**s.metadata, "rate_per_s": 50})
        for s in all_three(container=1.6, vm=1.05)
    ]
    result = n1_result(runs + static_maxima(vm_max))
    assert result.verdict == verdict, result.summary
    if verdict == "inconclusive":
        assert "vm was offered 50 req/s, 98% of its closed-loop /static maximum" in result.summary


def test_one_failing_stressor_fails_the_claim_and_the_others_keep_their_verdict() -> None:
    samples = [
        *neighbour_runs("container", {"cpu": 1.6, "fsync": 1.5}),
        *neighbour_runs("vm", {"cpu": 1.05, "fsync": 2.5}),
    ]
    result = n1_result(samples)
    assert result.verdict == "does not hold"
    assert {p.claim: p.verdict for p in result.parts} == {
        "N1 cpu": "holds",
        "N1 fsync": "does not hold",
    }


def test_n1_is_inconclusive_when_neither_neighbour_disturbs() -> None:
    result = n1_result(all_three(container=1.0, vm=1.0))
    assert result.verdict == "inconclusive"
    assert "neither neighbour measurably slows the app" in result.parts[0].summary


def test_n1_is_inconclusive_with_fewer_than_five_repeats() -> None:
    samples = [
        *neighbour_runs("container", {"cpu": 2.0}, repeats=4),
        *neighbour_runs("vm", {"cpu": 1.0}, repeats=4),
    ]
    result = n1_result(samples)
    assert result.verdict == "inconclusive"
    assert "only 4 samples" in result.summary


def test_n1_is_inconclusive_without_neighbour_runs_and_says_why() -> None:
    reason = Sample(
        "neighbour_unavailable",
        "the app may run on every CPU",
        "",
        "docker://app",
        "container",
        ("N1",),
        kind="container",
    )
    result = n1_result([reason])
    assert result.verdict == "inconclusive"
    assert "every CPU" in result.summary


def test_a_run_of_the_neighbour_group_alone_leaves_the_isolation_claims_inconclusive() -> None:
    """Its samples are filed under the variants' targets, which the isolation probes never
    ran on in that run: I1 and I2 have nothing to judge, they must not "fail"."""
    results = {r.claim: r.verdict for r in evaluate(all_three(container=1.6, vm=1.05), T)}
    assert results["I1"] == results["I2"] == "inconclusive"


def test_n1_is_part_of_every_evaluation() -> None:
    results = {r.claim: r for r in evaluate(all_three(container=1.6, vm=1.05), T)}
    assert results["N1"].verdict == "holds"


class MeasuredUpTo(Exception):
    """Raised by the fake generator: the run got as far as loading the app."""


def test_every_part_of_a_neighbour_run_goes_to_the_variants_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app's CPUs, the host's, the sibling and the generator are all asked of the variants'
    host handle (a remote host's in a stack on one), never of this machine by default."""
    far = local_host("far")  # a handle of its own, told apart by identity
    asked: list[tuple[str, object]] = []
    report = json.dumps({"stressor": "cpu", "work": 1, "setup_s": 0.0, "work_s": 0.1})
    stressor_target = SimpleNamespace(run=lambda *_a, **_k: CommandResult(0, report, ""))

    @contextmanager
    def sibling(*args: Any, **_kwargs: Any) -> Iterator[Neighbour]:
        asked.append(("sibling", args[3]))
        clone = SimpleNamespace(name="n-1")
        yield Neighbour(clone, stressor_target, args[2], 1.0)  # type: ignore[arg-type]

    def generator(*_args: Any, host: object, **_kwargs: Any) -> None:
        asked.append(("generator", host))
        raise MeasuredUpTo

    def app_cpus(_server: object, host: object) -> frozenset[int]:
        asked.append(("app", host))
        return frozenset({0})

    def host_cpus(*, host: object) -> frozenset[int]:
        asked.append(("cpus", host))
        return frozenset({0, 1})

    monkeypatch.setattr(measure, "server_cpus", app_cpus)
    monkeypatch.setattr(measure, "host_cpus", host_cpus)
    monkeypatch.setattr(measure, "running_neighbour", sibling)
    monkeypatch.setattr(measure, "run_open_loop", generator)
    subject = measure.Subject(
        VariantLabel("container", "container"), "app", "docker://app", "http://127.0.0.1:1"
    )
    with pytest.raises(MeasuredUpTo):
        measure.measure_neighbours(
            [subject],
            NeighbourPlan(stressors=("cpu",), repeats=1),
            stack="dev",
            host=far,
            tags=run_tags("tcg"),
        )
    assert [what for what, _ in asked] == ["app", "cpus", "sibling", "generator"]
    assert all(host is far for _, host in asked), asked


def _neighbour_group_run(
    monkeypatch: pytest.MonkeyPatch, judged_only: bool
) -> tuple[list[str], list[Sample]]:
    """The neighbours group on a stack of a container, a gVisor sandbox and a VM; returns the
    variants it measured and its samples (the measuring itself faked)."""
    measured: list[str] = []

    def fake_measure(subjects: list[measure.Subject], *_a: Any, **_k: Any) -> list[Sample]:
        measured.extend(s.label.name for s in subjects)
        return []

    monkeypatch.setattr(measure, "measure_neighbours", fake_measure)
    deployed = [
        SimpleNamespace(
            label=VariantLabel(name, kind),
            instance_name=f"dev-{name}",
            target=f"docker://dev-{name}",
            url="http://127.0.0.1:1",
        )
        for name, kind in (("container", "container"), ("gvisor", "sandbox"), ("vm", "vm"))
    ]
    context = SimpleNamespace(
        subjects=SimpleNamespace(items=deployed, stack="dev", host=local_host()),
        options=RunOptions(judged_only=judged_only),
        console=SimpleNamespace(print=lambda *_a, **_k: None),
        virt_mode="tcg",
        run_id="r",
    )
    samples = neighbours_group.run(context)  # type: ignore[arg-type]
    return measured, samples


def test_run_all_measures_the_pair_n1_judges_and_says_why_the_sandbox_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measured, samples = _neighbour_group_run(monkeypatch, RunOptions().judged_only)
    assert measured == ["container", "vm"]
    [left_out] = samples
    assert (left_out.metric, left_out.variant) == ("neighbour_unavailable", "gvisor")
    assert "fab neighbours --stack dev" in str(left_out.value)
    assert "gvisor: not judged by N1" in n1_result(samples).summary


def test_fab_neighbours_measures_every_deployed_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    measured, samples = _neighbour_group_run(monkeypatch, judged_only=False)
    assert measured == ["container", "gvisor", "vm"]
    assert samples == []
