"""Figures as distributions, and verdicts on the ratio of two of them.

A figure is never one number: `summarize` gives n, median, a 95 % confidence interval of the
median, the coefficient of variation and the range. A claim compares two variants through the
ratio of their medians, whose 95 % interval `ratio_of_medians` bootstraps from both samples;
`judge_ratio` says "holds" only when that whole interval clears the claim's threshold, "does not
hold" when it lies wholly on the wrong side, and "inconclusive" otherwise, with the reason.

Why the median and a percentile bootstrap: repeats here are few (5 to 20) and skewed (one slow
run when the machine is busy), so a median and a distribution-free interval describe them better
than a mean with a t interval (pyperf and Firecracker's test suite report medians too). The
resampling uses a fixed seed, so the same samples always give the same interval and a report can
be reproduced from its samples.jsonl. With n = 5 the 95 % interval of a median is the sample's
whole range (each extreme is the resampled median more than 2.5 % of the time); from n = 7 on it
narrows inside the range. Few repeats thus give wide intervals and honest "inconclusive"
verdicts, which is the point: MIN_N is 5, never fewer.

Standard library only: statistics and random are enough for these sample sizes.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

CONFIDENCE = 0.95
RESAMPLES = 10_000
# Any fixed number would do: fixed so the same samples always give the same interval.
SEED = 20261130
# The measurement standard asks for n >= 5 independent repeats per figure.
MIN_N = 5

Verdict = Literal["holds", "does not hold", "inconclusive"]
# How a ratio must relate to its threshold for the claim to hold.
Direction = Literal["at least", "at most"]
DIRECTIONS: tuple[Direction, ...] = ("at least", "at most")


class StatsError(ValueError):
    """Input the statistics cannot use (no values, NaN, infinity); the message says which."""


def _checked(values: Sequence[float], name: str) -> list[float]:
    checked = [float(v) for v in values]
    if not checked:
        raise StatsError(f"{name}: no values to summarize")
    bad = [v for v in checked if not math.isfinite(v)]
    if bad:
        raise StatsError(f"{name}: values must be finite numbers, got {bad[:3]}")
    return checked


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between order statistics (numpy's default, Hyndman-Fan type 7)."""
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    weight = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * weight


def _percentile_interval(estimates: list[float]) -> tuple[float, float]:
    estimates.sort()
    tail = (1.0 - CONFIDENCE) / 2.0
    return _percentile(estimates, tail), _percentile(estimates, 1.0 - tail)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True)
class Summary:
    """One figure as a distribution of its repeats."""

    n: int
    median: float
    ci_low: float  # 95 % bootstrap percentile interval of the median
    ci_high: float
    cv: float | None  # sample stdev / mean; None when n < 2 or the mean is 0
    minimum: float
    maximum: float

    def as_dict(self) -> dict[str, float | int | None]:
        """Flat fields for a sample's metadata or a report row."""
        return {
            "n": self.n,
            "median": self.median,
            "ci95_low": self.ci_low,
            "ci95_high": self.ci_high,
            "cv": self.cv,
            "min": self.minimum,
            "max": self.maximum,
        }

    def describe(self, unit: str = "") -> str:
        """E.g. '1.23 s (95 % CI 1.1-1.4, n=5, CV 4.2 %, range 1.05-1.5)'."""
        suffix = f" {unit}" if unit else ""
        cv = "n/a" if self.cv is None else f"{100 * self.cv:.1f} %"
        return (
            f"{_fmt(self.median)}{suffix} (95 % CI {_fmt(self.ci_low)}-{_fmt(self.ci_high)}, "
            f"n={self.n}, CV {cv}, range {_fmt(self.minimum)}-{_fmt(self.maximum)})"
        )


def summarize(
    values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED, name: str = "values"
) -> Summary:
    """n, median, bootstrap 95 % CI of the median, CV, min and max of `values`."""
    data = _checked(values, name)
    rng = random.Random(seed)
    n = len(data)
    medians = [statistics.median(rng.choices(data, k=n)) for _ in range(resamples)]
    low, high = _percentile_interval(medians)
    mean = statistics.fmean(data)
    cv = statistics.stdev(data) / mean if n >= 2 and mean != 0 else None
    return Summary(
        n=n,
        median=statistics.median(data),
        ci_low=low,
        ci_high=high,
        cv=cv,
        minimum=min(data),
        maximum=max(data),
    )


@dataclass(frozen=True)
class Ratio:
    """median(a) / median(b) with its 95 % bootstrap percentile interval."""

    value: float
    ci_low: float
    ci_high: float

    def describe(self) -> str:
        return f"{_fmt(self.value)} (95 % CI {_fmt(self.ci_low)}-{_fmt(self.ci_high)})"


def ratio_of_medians(
    a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Ratio:
    """median(a) / median(b) of two independent samples, with a bootstrap 95 % CI.

    Each resample draws from a and from b separately (they are independent repeats of two
    variants, not pairs) and takes the ratio of the two medians. All values must be > 0: a
    ratio with a zero or negative median has no meaning for the quantities compared here
    (times, sizes, memory, request rates).
    """
    first, second = _checked(a, "a"), _checked(b, "b")
    for name, data in (("a", first), ("b", second)):
        if min(data) <= 0:
            raise StatsError(f"{name}: every value must be > 0 for a ratio, got {min(data)}")
    rng = random.Random(seed)
    ratios = [
        statistics.median(rng.choices(first, k=len(first)))
        / statistics.median(rng.choices(second, k=len(second)))
        for _ in range(resamples)
    ]
    low, high = _percentile_interval(ratios)
    return Ratio(statistics.median(first) / statistics.median(second), low, high)


@dataclass(frozen=True)
class RatioJudgement:
    """A claim's verdict on median(a) / median(b) against a threshold, with its evidence."""

    verdict: Verdict
    reason: str
    threshold: float
    direction: Direction
    a: Summary | None  # None when a had no values
    b: Summary | None
    ratio: Ratio | None  # None when it cannot be computed (no values, a zero)


def _inconclusive(
    reason: str,
    threshold: float,
    direction: Direction,
    a: Summary | None,
    b: Summary | None,
    ratio: Ratio | None = None,
) -> RatioJudgement:
    return RatioJudgement("inconclusive", reason, threshold, direction, a, b, ratio)


def judge_ratio(
    a: Sequence[float],
    b: Sequence[float],
    threshold: float,
    direction: Direction,
    min_n: int = MIN_N,
    *,
    a_name: str = "a",
    b_name: str = "b",
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> RatioJudgement:
    """Judge "median(a) / median(b) is `direction` `threshold`" from two samples.

    "holds" when the whole 95 % CI of the ratio is on the claimed side (the bound itself counts
    as on it), "does not hold" when the whole CI is on the other side, "inconclusive" when the CI
    straddles the threshold, either sample has fewer than `min_n` values, or a value is zero.
    `a_name`/`b_name` (e.g. "VM", "container") name the samples in the reason.
    """
    if direction not in DIRECTIONS:
        raise StatsError(f"direction {direction!r}: choose from {list(DIRECTIONS)}")
    if not math.isfinite(threshold) or threshold <= 0:
        raise StatsError(f"threshold {threshold!r}: must be a finite number > 0")
    if min_n < 1:
        raise StatsError(f"min_n {min_n}: must be at least 1")
    summaries: dict[str, Summary | None] = {}
    for name, data in ((a_name, a), (b_name, b)):
        summaries[name] = (
            summarize(data, resamples=resamples, seed=seed, name=name) if data else None
        )
    sa, sb = summaries[a_name], summaries[b_name]
    for name, data in ((a_name, a), (b_name, b)):
        if len(data) < min_n:
            count = "no samples" if not data else f"only {len(data)} samples"
            return _inconclusive(f"{count} of {name}, need {min_n}", threshold, direction, sa, sb)
    for name, data in ((a_name, a), (b_name, b)):
        if any(float(v) == 0 for v in data):
            return _inconclusive(
                f"a value is zero ({name}): the ratio is undefined", threshold, direction, sa, sb
            )
        if any(float(v) < 0 for v in data):
            return _inconclusive(
                f"a value is negative ({name}): the ratio is undefined",
                threshold,
                direction,
                sa,
                sb,
            )
    ratio = ratio_of_medians(a, b, resamples=resamples, seed=seed)
    verdict, reason = _place_ci(
        f"{a_name}/{b_name} {ratio.describe()}",
        ratio.ci_low,
        ratio.ci_high,
        f"the threshold {_fmt(threshold)}",
        threshold,
        direction,
    )
    return RatioJudgement(verdict, reason, threshold, direction, sa, sb, ratio)


def _place_ci(
    what: str, low: float, high: float, named: str, bound: float, direction: Direction
) -> tuple[Verdict, str]:
    """Where the CI low-high lies against `bound`: "holds" when wholly on the claimed side
    (the bound itself counts as on it), "does not hold" when wholly on the other, else
    "inconclusive"; with the reason in words (`what` names the figure, `named` the bound)."""
    if direction == "at least":
        clears, wrong = low >= bound, high < bound
        claimed, other = "at or above", "below"
    else:
        clears, wrong = high <= bound, low > bound
        claimed, other = "at or below", "above"
    if clears:
        return "holds", f"{what}: the whole CI is {claimed} {named}"
    if wrong:
        return "does not hold", f"{what}: the whole CI is {other} {named}"
    return "inconclusive", f"{what}: CI {_fmt(low)}-{_fmt(high)} straddles {named}"


@dataclass(frozen=True)
class MedianJudgement:
    """A claim's verdict on one figure's median against a bound, with its evidence."""

    verdict: Verdict
    reason: str
    summary: Summary | None  # None when there were no values


def judge_median(
    values: Sequence[float],
    bound: float,
    direction: Direction,
    min_n: int = MIN_N,
    *,
    name: str = "values",
    unit: str = "",
) -> MedianJudgement:
    """Judge "the median of `values` is `direction` `bound`" by judge_ratio's rule: "holds"
    when the whole 95 % CI of the median is on the claimed side, "does not hold" when wholly on
    the other, "inconclusive" when it straddles the bound or there are fewer than `min_n`."""
    if direction not in DIRECTIONS:
        raise StatsError(f"direction {direction!r}: choose from {list(DIRECTIONS)}")
    suffix = f" {unit}" if unit else ""
    summary = summarize(values, name=name) if values else None
    if summary is None or summary.n < min_n:
        count = "no samples" if summary is None else f"only {summary.n} samples"
        return MedianJudgement("inconclusive", f"{count} of {name}, need {min_n}", summary)
    verdict, reason = _place_ci(
        f"{name} {summary.describe(unit)}",
        summary.ci_low,
        summary.ci_high,
        f"{_fmt(bound)}{suffix}",
        bound,
        direction,
    )
    return MedianJudgement(verdict, reason, summary)


def judge_at_least_as_fast(
    candidate: Sequence[float],
    other: Sequence[float],
    *,
    higher_is_better: bool,
    min_n: int = MIN_N,
    candidate_name: str = "a",
    other_name: str = "b",
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> RatioJudgement:
    """Judge "candidate is at least as fast as other" with the threshold 1.0 and no margin.

    For a rate (req/s, `higher_is_better=True`) the claim is candidate/other >= 1; for a latency
    or a duration (`higher_is_better=False`) it is candidate/other <= 1. Two variants that are
    equally fast give a CI around 1.0 and so "inconclusive": the data cannot tell which is faster.
    """
    direction: Direction = "at least" if higher_is_better else "at most"
    return judge_ratio(
        candidate,
        other,
        1.0,
        direction,
        min_n,
        a_name=candidate_name,
        b_name=other_name,
        resamples=resamples,
        seed=seed,
    )
