"""Verdict logic on hand-made samples: each claim can hold, fail, or be inconclusive."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.thresholds import ThresholdError, Thresholds, thresholds_for
from scripts.checks.claims import evaluate
from scripts.checks.report import write_run
from scripts.checks.samples import Sample, Value, read_samples

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
        *[s("time_to_first_response_s", value, C) for value in (0.5, 0.6, 0.7)],
        *[s("time_to_first_response_s", value, V) for value in (7.0, 8.0, 9.0)],
        s("memory_charged_mib", 25.0, C),
        s("memory_charged_mib", 250.0, V),
        s("image_size_mib", 150.0, C),
        s("image_size_mib", 330.0, V),
        s("instances_fit", 60, C),
        s("instances_fit", 6, V),
        s("requests_per_s", 900.0, C, endpoint="static"),
        s("requests_per_s", 100.0, V, endpoint="static"),
        *isolated_container(),
        s("host_processes_visible", True, W, weakened=True),
        s("cap_full", True, W, weakened=True),
        s("host_kernel_state_visible", False, V),
        s("host_processes_visible", False, V),
        s("kernel_modules_visible", False, V),
        s("module_load_reached_host", False, V),
        s("sysctl_write_reached_host", False, V),
        s("can_write_sysctl", True, V),
    ]


def verdicts(samples: list[Sample]) -> dict[str, str]:
    return {result.claim: result.verdict for result in evaluate(samples, T)}


def test_every_claim_holds_on_a_run_where_it_should() -> None:
    assert set(verdicts(good_run()).values()) == {"holds"}


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
    run += [s("memory_charged_mib", 100.0, C), s("memory_charged_mib", 150.0, V)]
    assert verdicts(run)["R2"] == "does not hold"


def test_weakened_container_that_looks_isolated_fails_i3() -> None:
    run = [x for x in good_run() if x.target != W] + isolated_container(W, weakened=True)
    assert verdicts(run)["I3"] == "does not hold"


def test_claims_compare_the_primary_variant_of_each_kind_and_show_every_variant() -> None:
    # A faster second VM and a slow sandbox must not move R1: it compares kind container's
    # primary ("container") with kind vm's ("vm"); both still get their column.
    run = [
        *good_run(),
        *[s("time_to_first_response_s", value, V2) for value in (0.1, 0.1, 0.1)],
        *[s("time_to_first_response_s", value, G) for value in (50.0, 50.0, 50.0)],
    ]
    (r1,) = [r for r in evaluate(run, T) if r.claim == "R1"]
    assert r1.verdict == "holds" and r1.ratio == pytest.approx(8.0 / 0.6)
    assert set(r1.cells) == {"container", "vm", "vm-restored", "gvisor"}
    assert r1.cell("gvisor") == "50 s"


def test_a_kind_without_its_plain_variant_is_judged_on_its_first() -> None:
    run = [x for x in good_run() if x.target != V] + [
        s("time_to_first_response_s", value, V2) for value in (7.0, 8.0, 9.0)
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
    assert markdown.count("**holds**") == 11
    assert "| claim | verdict | container | vm | ratio |" in markdown
    assert "software emulation" in markdown
    assert (out / "start_time.png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_report_has_one_column_per_variant(tmp_path: Path) -> None:
    run = [*good_run(), s("time_to_first_response_s", 0.9, G)]
    out = write_run(tmp_path / "run2", run, evaluate(run, T), {"virt_mode": "tcg"})
    markdown = (out / "report.md").read_text()
    assert "| claim | verdict | container | vm | gvisor (sandbox) | ratio |" in markdown
    assert "<th>gvisor (sandbox)</th>" in (out / "report.html").read_text()
