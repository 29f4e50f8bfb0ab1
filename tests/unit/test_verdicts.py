"""Verdict logic on hand-made samples: each claim can hold, fail, or be inconclusive."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.thresholds import ThresholdError, Thresholds, thresholds_for
from scripts.checks.claims import evaluate
from scripts.checks.neighbours.stressors import STRESSORS
from scripts.checks.results.report import write_run
from scripts.checks.results.samples import Sample, Value, read_samples
from tests.unit.test_neighbours import neighbour_runs
from tests.unit.variant_runs import new_variants_run

pytestmark = pytest.mark.unit
C, V, H, W = "docker://app", "ssh://twin@127.0.0.1:12222", "local://", "docker://weak"
# A second VM variant (e.g. a VM restored from a snapshot) and a sandboxed container.
V2, G = "ssh://twin@127.0.0.1:12223", "docker://gvisor"
T = thresholds_for("tcg")
LABELS = {
    C: ("container", "container"),
    W: ("container", "container"),
    V: ("vm", "vm"),
    H: ("host", "host"),
    V2: ("vm-restored", "vm"),
    G: ("gvisor", "sandbox"),
}


def s(metric: str, value: Value, target: str, **meta: Value) -> Sample:
    variant, kind = LABELS[target]
    return Sample(metric, value, "", target, variant, (), dict(meta), kind=kind)


METRIC_R4 = "instances_healthy_in_budget"
FIVE_STARTS_C = (0.5, 0.55, 0.6, 0.65, 0.7)
FIVE_STARTS_V = (7.0, 7.5, 8.0, 8.5, 9.0)


def spread(median: float, relative: float = 0.04) -> list[float]:
    """Five repeats around `median`, +-`relative` at the extremes."""
    return [median * (1 + relative * step / 2) for step in (-2, -1, 0, 1, 2)]


def isolated_container(target: str = C, **meta: Value) -> list[Sample]:
    return [
        s("host_processes_visible", False, target, **meta),
        s("cap_full", False, target, **meta),
        s("seccomp_mode", 2, target, **meta),
        s("host_kernel_state_visible", True, target, **meta),
        s("can_write_sysctl", False, target, **meta),
    ]


def good_run() -> list[Sample]:
    return [
        s("kernel_release", "6.18", H),
        s("kernel_release", "6.18", C),
        s("kernel_release", "6.1.0-41-amd64", V),
        s("same_kernel_as_host", True, C),
        s("same_boot_id_as_host", True, C),
        s("same_boot_id_as_host", False, V),
        s("init_system", "none", C),
        s("init_system", "systemd", V),
        s("os_service_count", 0, C),
        s("os_service_count", 5, V),
        s("kernel_image_present", False, C),
        s("kernel_image_present", True, V),
        *[s("time_to_first_response_s", value, C) for value in FIVE_STARTS_C],
        *[s("time_to_first_response_s", value, V) for value in FIVE_STARTS_V],
        *[s("memory_charged_mib", value, C) for value in spread(25.0)],
        *[s("memory_charged_mib", value, V) for value in spread(250.0)],
        s("image_size_mib", 150.0, C),
        s("image_size_mib", 330.0, V),
        s("instances_healthy_in_budget", 60, C, stop_reason="budget full"),
        s("instances_healthy_in_budget", 6, V, stop_reason="budget full"),
        *[s("requests_per_s", value, C, endpoint="static") for value in spread(900.0)],
        *[s("requests_per_s", value, V, endpoint="static") for value in spread(100.0)],
        *isolated_container(),
        s("host_processes_visible", True, W, weakened=True),
        s("cap_full", True, W, weakened=True),
        s("host_kernel_state_visible", False, V),
        s("host_processes_visible", False, V),
        s("kernel_modules_visible", False, V),
        s("module_load_reached_host", False, V),
        s("sysctl_write_reached_host", False, V),
        s("can_write_sysctl", True, V),
        *neighbour_runs("container", dict.fromkeys(STRESSORS, 1.6)),
        *neighbour_runs("vm", dict.fromkeys(STRESSORS, 1.05)),
    ]


def verdicts(samples: list[Sample]) -> dict[str, str]:
    return {result.claim: result.verdict for result in evaluate(samples, T)}


def test_every_claim_holds_on_a_run_where_it_should() -> None:
    assert set(verdicts([*good_run(), *new_variants_run()]).values()) == {"holds"}


def test_no_samples_is_inconclusive_not_holds() -> None:
    assert set(verdicts([]).values()) == {"inconclusive"}


@pytest.mark.parametrize(
    ("claim", "metric", "target", "bad_value"),
    [
        ("A1", "same_boot_id_as_host", V, True),
        ("A2", "init_system", C, "systemd"),
        ("U1", "kernel_release", V, "6.18"),
        ("I1", "seccomp_mode", C, 0),
        ("I2", "host_kernel_state_visible", V, True),
    ],
)
def test_a_contradicting_sample_flips_the_verdict(
    claim: str, metric: str, target: str, bad_value: Value
) -> None:
    run = [x for x in good_run() if not (x.metric == metric and x.target == target)]
    run.append(s(metric, bad_value, target))
    assert verdicts(run)[claim] == "does not hold"


def test_ratio_below_threshold_does_not_hold() -> None:
    run = [x for x in good_run() if x.metric != "memory_charged_mib"]
    run += [s("memory_charged_mib", v, C) for v in spread(100.0)]
    run += [s("memory_charged_mib", v, V) for v in spread(150.0)]
    assert verdicts(run)["R2"] == "does not hold"


def replaced(metric: str, container: list[float], vm: list[float], **meta: Value) -> list[Sample]:
    run = [x for x in good_run() if x.metric != metric]
    return [
        *run,
        *[s(metric, value, C, **meta) for value in container],
        *[s(metric, value, V, **meta) for value in vm],
    ]


# Per ratio claim: (claim, metric, extra metadata, container values, VM values) that make it
# fail (the whole CI of the ratio on the wrong side of the tcg threshold) ...
FAILING = [
    ("R1", "time_to_first_response_s", {}, spread(1.0), spread(2.0)),  # VM only 2x, need 3
    ("R2", "memory_charged_mib", {}, spread(100.0), spread(120.0)),  # 1.2x, need 2
    ("R3", "image_size_mib", {}, [300.0], [330.0]),  # 1.1x, need 1.5 (exact sizes)
    ("R4", "instances_healthy_in_budget", {"stop_reason": "x"}, [6.0], [6.0]),  # 1x, need 2
    # five density runs a kind (`fab resources`): the ratio's CI, 1x, need 2
    ("R4", "instances_healthy_in_budget", {"stop_reason": "x"}, spread(6.0), spread(6.0)),
    ("P1", "requests_per_s", {"endpoint": "static"}, spread(900.0), spread(1000.0)),  # 0.9x
]
# ... and inconclusive (the CI straddles the threshold, too few repeats, or one run too close).
INCONCLUSIVE = [
    # ratio 3 +- noise: the CI straddles 3
    ("R1", "time_to_first_response_s", {}, [1.0, 0.8, 1.2, 0.9, 1.1], [3.0, 2.4, 3.6, 2.7, 3.3]),
    ("R2", "memory_charged_mib", {}, spread(25.0)[:3], spread(250.0)[:3]),  # n=3 < 5
    ("R3", "image_size_mib", {}, [200.0], []),  # no VM size
    ("R4", "instances_healthy_in_budget", {"stop_reason": "x"}, [30.0], [10.0]),  # 3x: < 2x2
    # five runs a kind whose ratio's CI straddles 2
    ("R4", "instances_healthy_in_budget", {"stop_reason": "x"}, [8, 6.4, 9.6, 7.2, 8.8], [4] * 5),
    ("P1", "requests_per_s", {"endpoint": "static"}, spread(1000.0, 0.2), spread(1000.0, 0.2)),
]


@pytest.mark.parametrize(("claim", "metric", "meta", "container", "vm"), FAILING)
def test_each_ratio_claim_can_fail(
    claim: str, metric: str, meta: dict[str, Value], container: list[float], vm: list[float]
) -> None:
    (result,) = [
        r for r in evaluate(replaced(metric, container, vm, **meta), T) if r.claim == claim
    ]
    assert result.verdict == "does not hold", result.summary


@pytest.mark.parametrize(("claim", "metric", "meta", "container", "vm"), INCONCLUSIVE)
def test_each_ratio_claim_can_be_inconclusive(
    claim: str, metric: str, meta: dict[str, Value], container: list[float], vm: list[float]
) -> None:
    (result,) = [
        r for r in evaluate(replaced(metric, container, vm, **meta), T) if r.claim == claim
    ]
    assert result.verdict == "inconclusive", result.summary


def test_a_ratio_claim_says_n_median_ci_and_cv_per_variant() -> None:
    (r1,) = [r for r in evaluate(good_run(), T) if r.claim == "R1"]
    assert r1.cell("container").startswith("0.6 s (95 % CI 0.5-0.7, n=5, CV")
    assert r1.ratio_ci is not None and r1.ratio_ci[0] >= T.r1_min_start_ratio
    assert "the whole CI is at or above the threshold 3" in r1.summary
    assert r1.summaries["vm"].n == 5


def test_exact_sizes_are_judged_on_one_reading_and_say_so() -> None:
    (r3,) = [r for r in evaluate(good_run(), T) if r.claim == "R3"]
    assert r3.verdict == "holds" and "exact sizes" in r3.summary


def test_one_density_run_says_n_1_and_holds_only_by_a_wide_margin() -> None:
    (r4,) = [r for r in evaluate(good_run(), T) if r.claim == "R4"]
    assert r4.verdict == "holds" and "n=1" in r4.summary and r4.ratio == 10


def test_five_density_runs_a_kind_are_judged_by_the_ratios_ci() -> None:
    """3x past the threshold: one run a kind would need 2x2 = 4x; five decide by their CI."""
    run = replaced(METRIC_R4, spread(30.0), spread(10.0), stop_reason="oom", budget_mib=1536.0)
    (r4,) = [r for r in evaluate(run, T) if r.claim == "R4"]
    assert r4.verdict == "holds", r4.summary
    assert r4.ratio_ci is not None and r4.ratio_ci[0] >= T.r4_min_density_ratio
    assert "n=5/5 density runs per kind" in r4.summary and "no CI" not in r4.summary
    assert r4.cell("container").startswith("healthy in 1536 MiB: 30 instances (95 % CI")
    assert r4.cell("container").endswith("last run stopped: oom")


def test_five_runs_with_a_lower_bound_vm_count_cannot_hold() -> None:
    capped: dict[str, Value] = {"stop_reason": "wall clock", "count_is_lower_bound": True}
    run = [x for x in good_run() if x.metric != METRIC_R4]
    run += [s(METRIC_R4, v, C, stop_reason="oom") for v in spread(30.0)]
    run += [s(METRIC_R4, v, V, **capped) for v in spread(3.0)]
    (r4,) = [r for r in evaluate(run, T) if r.claim == "R4"]
    assert r4.verdict == "inconclusive" and "a lower-bound count cannot decide it" in r4.summary


def test_a_lower_bound_container_count_can_hold_but_never_fail() -> None:
    capped: dict[str, Value] = {"stop_reason": "max 40 reached", "count_is_lower_bound": True}
    run = [x for x in good_run() if x.metric != "instances_healthy_in_budget"]
    high = [*run, s(METRIC_R4, 40, C, **capped), s(METRIC_R4, 3, V, stop_reason="oom")]
    low = [*run, s(METRIC_R4, 4, C, **capped), s(METRIC_R4, 4, V, stop_reason="oom")]
    assert verdicts(high)["R4"] == "holds"
    (r4,) = [r for r in evaluate(low, T) if r.claim == "R4"]
    assert r4.verdict == "inconclusive" and "lower bound" in r4.summary


def test_no_vm_in_the_budget_is_inconclusive_not_infinite() -> None:
    run = replaced("instances_healthy_in_budget", [40.0], [0.0], stop_reason="x")
    (r4,) = [r for r in evaluate(run, T) if r.claim == "R4"]
    assert r4.verdict == "inconclusive" and "raise the budget" in r4.summary


def test_p1_judges_throughput_and_shows_open_loop_latency_beside_it() -> None:
    open_loop = [
        s(metric, value, target, loop="open")
        for target, base in ((C, 1.0), (V, 20.0))
        for value in spread(base)
        for metric in ("latency_p50_ms", "latency_p99_ms", "latency_p99_9_ms")
    ] + [s("offered_rate_per_s", 50, target, loop="open") for target in (C, V) for _ in range(5)]
    (p1,) = [r for r in evaluate([*good_run(), *open_loop], T) if r.claim == "P1"]
    assert p1.verdict == "holds"
    assert "open-loop at 50 req/s: p50 20 ms" in p1.cell("vm")
    assert "reported, not judged" in p1.summary


def test_weakened_container_that_looks_isolated_fails_i3() -> None:
    run = [x for x in good_run() if x.target != W] + isolated_container(W, weakened=True)
    assert verdicts(run)["I3"] == "does not hold"


def test_claims_compare_the_primary_variant_of_each_kind_and_show_every_variant() -> None:
    # A faster second VM and a slow sandbox must not move R1: it compares kind container's
    # primary ("container") with kind vm's ("vm"); both still get their column.
    run = [
        *good_run(),
        *[s("time_to_first_response_s", value, V2) for value in (0.1,) * 5],
        *[s("time_to_first_response_s", value, G) for value in (50.0,) * 5],
    ]
    (r1,) = [r for r in evaluate(run, T) if r.claim == "R1"]
    assert r1.verdict == "holds" and r1.ratio == pytest.approx(8.0 / 0.6)
    assert set(r1.cells) == {"container", "vm", "vm-restored", "gvisor"}
    assert r1.cell("gvisor").startswith("50 s (95 % CI 50-50, n=5")


def test_a_kind_without_its_plain_variant_is_judged_on_its_first() -> None:
    run = [x for x in good_run() if x.target != V] + [
        s("time_to_first_response_s", value, V2) for value in FIVE_STARTS_V
    ]
    (r1,) = [r for r in evaluate(run, T) if r.claim == "R1"]
    assert r1.verdict == "holds" and "vm-restored/container" in r1.summary


def test_kinds_decide_not_url_schemes() -> None:
    # A sandbox reached over docker:// is not a container: without a container-kind variant,
    # R1 cannot be judged, whatever the URL scheme says.
    run = [
        *[s("time_to_first_response_s", value, G) for value in (0.5, 0.6)],
        *[s("time_to_first_response_s", value, V) for value in (8.0, 9.0)],
    ]
    (r1,) = [r for r in evaluate(run, T) if r.claim == "R1"]
    assert r1.verdict == "inconclusive"


def test_threshold_overrides_are_validated() -> None:
    assert thresholds_for("tcg", '{"r1_min_start_ratio": 50}').r1_min_start_ratio == 50
    with pytest.raises(ThresholdError, match="unknown"):
        thresholds_for("tcg", '{"r9": 1}')
    with pytest.raises(ThresholdError, match="must be a number"):
        thresholds_for("tcg", '{"r1_min_start_ratio": -1}')
    assert Thresholds.from_dict(T.as_dict()) == T
    with pytest.raises(ThresholdError, match="missing"):
        Thresholds.from_dict({"r1_min_start_ratio": 3})


def test_a_threshold_past_the_measured_value_fails_the_claim() -> None:
    strict = thresholds_for("tcg", '{"r1_min_start_ratio": 1000}')
    result = {r.claim: r.verdict for r in evaluate(good_run(), strict)}
    assert result["R1"] == "does not hold"


def test_report_is_written_whole(tmp_path: Path) -> None:
    run = good_run()
    out = write_run(tmp_path / "run1", run, evaluate(run, T), {"virt_mode": "tcg"})
    assert read_samples(out / "samples.jsonl") == run
    markdown = (out / "report.md").read_text()
    assert markdown.count("**holds**") == 12 + 3  # every claim, and N1 per stressor
    assert "| claim | verdict | container | vm | ratio |" in markdown
    assert "software emulation" in markdown
    assert (out / "start_time.png").stat().st_size > 1000
    assert "| R1 | vm | 5 | 8 | 7-9 |" in markdown  # n, median, 95 % CI per claim and variant
    assert "(95 % CI" in markdown and "<h2>Distributions</h2>" in (out / "report.html").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_plots_show_every_sample_with_n_and_ci_and_log_scale_for_10x() -> None:
    from scripts.checks.results.report import _distribution_title, _wants_log_scale
    from scripts.checks.results.stats import summarize

    far = {"container": summarize(FIVE_STARTS_C), "vm": summarize(FIVE_STARTS_V)}
    near = {"container": summarize([1.0, 1.1, 1.2]), "vm": summarize([2.0, 2.1, 2.2])}
    assert _wants_log_scale(far) and not _wants_log_scale(near)
    assert _distribution_title(far) == "container n=5, 95 % CI 0.5-0.7; vm n=5, 95 % CI 7-9"


def test_report_has_one_column_per_variant(tmp_path: Path) -> None:
    run = [*good_run(), s("time_to_first_response_s", 0.9, G)]
    out = write_run(tmp_path / "run2", run, evaluate(run, T), {"virt_mode": "tcg"})
    markdown = (out / "report.md").read_text()
    assert "| claim | verdict | container | vm | gvisor (sandbox) | ratio |" in markdown
    assert "<th>gvisor (sandbox)</th>" in (out / "report.html").read_text()


# Per probe claim: the sample its verdict rests on, read by a probe that could not see on this
# host (metadata inconclusive), must make the claim inconclusive, never "holds".
BLIND = [
    ("A1", "same_boot_id_as_host", V),
    ("A2", "init_system", V),
    ("U1", "kernel_release", V),
    ("I1", "seccomp_mode", C),
    ("I2", "host_kernel_state_visible", V),
    ("I3", "host_processes_visible", W),
]


@pytest.mark.parametrize(("claim", "metric", "target"), BLIND)
def test_each_probe_claim_is_inconclusive_when_its_probe_is_blind(
    claim: str, metric: str, target: str
) -> None:
    run = [
        s(x.metric, x.value, x.target, **x.metadata, inconclusive=True)
        if (x.metric == metric and x.target == target)
        else x
        for x in good_run()
    ]
    assert verdicts(run)[claim] == "inconclusive"


def test_a_blind_module_list_is_named_in_i2_without_deciding_it() -> None:
    blind_modules = s(
        "kernel_modules_visible", False, V, inconclusive=True, reason="no /proc/modules"
    )
    run = [x for x in good_run() if x.metric != "kernel_modules_visible"] + [blind_modules]
    (i2,) = [r for r in evaluate(run, T) if r.claim == "I2"]
    assert i2.verdict == "holds"
    assert "kernel_modules_visible not measurable on this host (no /proc/modules)" in i2.summary
    seen = [x for x in good_run() if x.metric != "kernel_modules_visible"]
    seen.append(s("kernel_modules_visible", True, V))  # a reading that saw: it decides
    assert verdicts(seen)["I2"] == "does not hold"


def test_a_blind_value_only_displayed_does_not_change_a_verdict() -> None:
    run = [*good_run(), s("virtualization", "inconclusive", G, inconclusive=True)]
    assert verdicts(run)["A1"] == "holds"
