"""Summaries and ratio verdicts on known data: the interval is right where theory says, every
verdict has a case that makes it hold, one that makes it fail and ones that leave it
inconclusive (too few samples, a zero, overlapping samples)."""

from __future__ import annotations

import random
import statistics

import pytest

from scripts.checks.results.stats import (
    MIN_N,
    StatsError,
    judge_at_least_as_fast,
    judge_ratio,
    ratio_of_medians,
    summarize,
)

pytestmark = pytest.mark.unit


def gauss(mean: float, sd: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


# --- summarize ---------------------------------------------------------------------------------


def test_summary_of_known_data() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (summary.n, summary.median, summary.minimum, summary.maximum) == (5, 3.0, 1.0, 5.0)
    assert summary.cv == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]) / 3)  # 0.527
    # With n = 5 each extreme is the resampled median 5.8 % of the time (> 2.5 %): the 95 %
    # interval of the median is the whole range.
    assert (summary.ci_low, summary.ci_high) == (1.0, 5.0)


def test_interval_width_matches_the_median_standard_error() -> None:
    # For a normal sample the median's standard error is 1.2533 sd / sqrt(n): 0.0627 here, so
    # the 95 % interval is about 2 * 1.96 * 0.0627 = 0.246 wide around the true median 10.
    data = gauss(10.0, 1.0, 400, seed=3)
    summary = summarize(data)
    assert summary.ci_low < statistics.median(data) < summary.ci_high
    assert summary.ci_high - summary.ci_low == pytest.approx(0.246, rel=0.3)
    assert summary.ci_low < 10.0 < summary.ci_high
    assert summary.cv == pytest.approx(0.1, rel=0.15)


def test_interval_covers_the_true_median_about_95_percent_of_the_time() -> None:
    trials = 200
    summaries = [summarize(gauss(50.0, 5.0, 20, seed=t), resamples=1000) for t in range(trials)]
    covered = sum(s.ci_low <= 50.0 <= s.ci_high for s in summaries)
    # Percentile bootstrap of a median at n = 20: nominal 95 %, a little over or under.
    assert 0.88 * trials <= covered <= 0.995 * trials


def test_summary_is_reproducible_and_depends_on_the_seed() -> None:
    data = gauss(5.0, 1.0, 12, seed=1)
    assert summarize(data) == summarize(data)
    # Few resamples make the seed visible: the interval is drawn, not computed.
    intervals = {
        (s.ci_low, s.ci_high) for s in (summarize(data, resamples=30, seed=k) for k in range(5))
    }
    assert len(intervals) > 1


def test_identical_values_have_no_spread() -> None:
    summary = summarize([2.5] * 6)
    assert (summary.median, summary.ci_low, summary.ci_high, summary.cv) == (2.5, 2.5, 2.5, 0.0)


def test_one_value_has_no_cv_and_a_point_interval() -> None:
    summary = summarize([7.0])
    assert (summary.n, summary.ci_low, summary.ci_high, summary.cv) == (1, 7.0, 7.0, None)


def test_zero_mean_has_no_cv() -> None:
    assert summarize([-1.0, 0.0, 1.0]).cv is None


def test_summary_as_dict_and_words() -> None:
    summary = summarize([1.0, 1.1, 1.2, 1.3, 1.4])
    assert summary.as_dict()["n"] == 5 and summary.as_dict()["ci95_low"] == 1.0
    assert summary.describe("s") == "1.2 s (95 % CI 1-1.4, n=5, CV 13.2 %, range 1-1.4)"


@pytest.mark.parametrize(
    ("values", "message"),
    [([], "no values"), ([1.0, float("nan")], "finite"), ([float("inf")], "finite")],
)
def test_bad_values_are_refused(values: list[float], message: str) -> None:
    with pytest.raises(StatsError, match=message):
        summarize(values)


# --- ratio of medians --------------------------------------------------------------------------


def test_ratio_of_medians_of_known_data() -> None:
    b = gauss(1.0, 0.05, 30, seed=4)
    a = [3 * v for v in gauss(1.0, 0.05, 30, seed=5)]
    ratio = ratio_of_medians(a, b)
    assert ratio.value == pytest.approx(statistics.median(a) / statistics.median(b))
    assert ratio.ci_low < ratio.value < ratio.ci_high
    assert ratio.ci_low < 3.0 < ratio.ci_high
    assert ratio.ci_high - ratio.ci_low < 0.3  # 5 % noise, n = 30: a tight interval


def test_ratio_of_identical_constant_samples_is_exactly_one() -> None:
    ratio = ratio_of_medians([4.0] * 5, [4.0] * 5)
    assert (ratio.value, ratio.ci_low, ratio.ci_high) == (1.0, 1.0, 1.0)


def test_ratio_refuses_zero() -> None:
    with pytest.raises(StatsError, match="> 0"):
        ratio_of_medians([1.0, 2.0], [0.0, 1.0])


# --- judge_ratio: each verdict reached, each failure path ---------------------------------------

# Ten VM start times around 10 s, ten container ones around 1 s, as R1 would see them.
VM_START_S = gauss(10.0, 0.8, 10, seed=11)
CONTAINER_START_S = gauss(1.0, 0.08, 10, seed=12)


def test_holds_when_the_whole_interval_clears_the_threshold() -> None:
    judgement = judge_ratio(
        VM_START_S, CONTAINER_START_S, 3.0, "at least", a_name="VM", b_name="container"
    )
    assert judgement.verdict == "holds", judgement.reason
    assert judgement.ratio is not None and judgement.ratio.ci_low >= 3.0
    assert judgement.reason.startswith("VM/container ")
    assert "whole CI is at or above the threshold 3" in judgement.reason
    assert judgement.a is not None and judgement.a.n == 10


def test_does_not_hold_when_the_whole_interval_is_on_the_wrong_side() -> None:
    # The same data with the threshold past anything seen: the negative control of R1.
    judgement = judge_ratio(VM_START_S, CONTAINER_START_S, 20.0, "at least")
    assert judgement.verdict == "does not hold", judgement.reason
    assert "whole CI is below the threshold 20" in judgement.reason


def test_inconclusive_when_the_interval_straddles_the_threshold() -> None:
    judgement = judge_ratio(VM_START_S, CONTAINER_START_S, 10.0, "at least")
    assert judgement.ratio is not None
    assert judgement.ratio.ci_low < 10.0 < judgement.ratio.ci_high
    assert judgement.verdict == "inconclusive"
    assert "straddles the threshold 10" in judgement.reason


def test_overlapping_samples_are_inconclusive_against_one() -> None:
    a = [1.0, 1.2, 0.9, 1.1, 1.05]
    b = [1.1, 0.95, 1.0, 1.15, 0.9]
    judgement = judge_ratio(a, b, 1.0, "at least")
    assert judgement.verdict == "inconclusive"
    assert judgement.ratio is not None and judgement.ratio.ci_low < 1.0 < judgement.ratio.ci_high


@pytest.mark.parametrize("count", [0, 1, 3, MIN_N - 1])
def test_too_few_samples_are_inconclusive(count: int) -> None:
    # Clear-cut data would hold; too few repeats of the VM leave it undecided.
    judgement = judge_ratio(
        VM_START_S[:count], CONTAINER_START_S, 3.0, "at least", a_name="VM", b_name="container"
    )
    assert judgement.verdict == "inconclusive"
    expected = "no samples" if count == 0 else f"only {count} samples"
    assert judgement.reason == f"{expected} of VM, need {MIN_N}"
    assert judgement.ratio is None
    assert (judgement.a is None) == (count == 0)


def test_min_n_is_the_callers_choice() -> None:
    judgement = judge_ratio(VM_START_S[:3], CONTAINER_START_S[:3], 3.0, "at least", min_n=3)
    assert judgement.verdict == "holds", judgement.reason


def test_a_zero_value_is_inconclusive() -> None:
    judgement = judge_ratio(
        [1.0, 2.0, 0.0, 1.5, 1.2], CONTAINER_START_S, 1.0, "at least", a_name="VM"
    )
    assert judgement.verdict == "inconclusive"
    assert judgement.reason == "a value is zero (VM): the ratio is undefined"
    assert judgement.ratio is None and judgement.a is not None


def test_a_negative_value_is_inconclusive() -> None:
    judgement = judge_ratio(CONTAINER_START_S, [1.0, 2.0, -1.0, 1.5, 1.2], 1.0, "at least")
    assert judgement.verdict == "inconclusive"
    assert "negative (b)" in judgement.reason


def test_identical_values_sit_on_the_threshold_and_hold() -> None:
    same = [3.0] * 5
    assert judge_ratio(same, same, 1.0, "at least").verdict == "holds"
    assert judge_ratio(same, same, 1.0, "at most").verdict == "holds"
    assert judge_ratio(same, same, 1.1, "at least").verdict == "does not hold"
    assert judge_ratio(same, same, 0.9, "at most").verdict == "does not hold"


def test_at_most_direction() -> None:
    # Container latency about a tenth of the VM's: "container/VM at most 0.5".
    container_ms = gauss(2.0, 0.1, 8, seed=21)
    vm_ms = gauss(20.0, 1.0, 8, seed=22)
    assert judge_ratio(container_ms, vm_ms, 0.5, "at most").verdict == "holds"
    failed = judge_ratio(container_ms, vm_ms, 0.05, "at most")
    assert failed.verdict == "does not hold"
    assert "whole CI is above the threshold 0.05" in failed.reason
    assert judge_ratio(container_ms, vm_ms, 0.1, "at most").verdict == "inconclusive"


def test_judgement_is_reproducible() -> None:
    first = judge_ratio(VM_START_S, CONTAINER_START_S, 3.0, "at least")
    assert first == judge_ratio(VM_START_S, CONTAINER_START_S, 3.0, "at least")


@pytest.mark.parametrize(
    ("threshold", "direction", "min_n", "message"),
    [
        (0.0, "at least", 5, "threshold"),
        (float("nan"), "at least", 5, "threshold"),
        (1.0, "above", 5, "direction"),
        (1.0, "at least", 0, "min_n"),
    ],
)
def test_bad_arguments_are_refused(
    threshold: float, direction: str, min_n: int, message: str
) -> None:
    with pytest.raises(StatsError, match=message):
        judge_ratio([1.0] * 5, [1.0] * 5, threshold, direction, min_n)  # type: ignore[arg-type]


# --- "at least as fast" -------------------------------------------------------------------------

CONTAINER_RPS = gauss(1300.0, 30.0, 6, seed=31)
VM_RPS = gauss(140.0, 6.0, 6, seed=32)


def test_at_least_as_fast_holds_for_a_clearly_faster_candidate() -> None:
    judgement = judge_at_least_as_fast(
        CONTAINER_RPS, VM_RPS, higher_is_better=True, candidate_name="container", other_name="VM"
    )
    assert (judgement.verdict, judgement.threshold, judgement.direction) == (
        "holds",
        1.0,
        "at least",
    )


def test_at_least_as_fast_fails_for_a_ten_percent_slower_candidate() -> None:
    # The old point threshold 0.9 let a 10 % slower container "hold"; with 1.0 it fails.
    slower = [0.9 * v for v in gauss(1300.0, 10.0, 8, seed=41)]
    judgement = judge_at_least_as_fast(
        slower, gauss(1300.0, 10.0, 8, seed=42), higher_is_better=True
    )
    assert judgement.verdict == "does not hold", judgement.reason


def test_at_least_as_fast_is_inconclusive_for_equal_speeds() -> None:
    a = gauss(1300.0, 40.0, 8, seed=51)
    b = gauss(1300.0, 40.0, 8, seed=52)
    judgement = judge_at_least_as_fast(a, b, higher_is_better=True)
    assert judgement.verdict == "inconclusive"
    assert "straddles the threshold 1" in judgement.reason


def test_at_least_as_fast_for_latencies_means_lower() -> None:
    container_ms = gauss(3.0, 0.2, 6, seed=61)
    vm_ms = gauss(30.0, 2.0, 6, seed=62)
    assert judge_at_least_as_fast(container_ms, vm_ms, higher_is_better=False).verdict == "holds"
    slower = judge_at_least_as_fast(vm_ms, container_ms, higher_is_better=False)
    assert slower.verdict == "does not hold"
    few = judge_at_least_as_fast(container_ms[:2], vm_ms, higher_is_better=False)
    assert few.verdict == "inconclusive" and "only 2 samples" in few.reason
