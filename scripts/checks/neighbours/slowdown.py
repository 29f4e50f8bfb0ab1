"""Slowdowns from the neighbour runs' samples: a stressed run's latency over the baseline (the
sibling idle) of the same repeat.

Pairing by repeat, not a ratio of two pooled medians: the baseline and the stressed runs of one
repeat follow each other within seconds, so a drift of the machine's load over the whole run
cancels out of each ratio. A stressed run whose stress did not cover its load window (the
stressor started late) is left out, and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scripts.checks.neighbours.stressors import NONE, STRESSORS
from scripts.checks.results.samples import Sample

# The app's latency in a neighbour run (measure.py writes it, with "stressor", "percentile" and
# "repeat" in its metadata).
LATENCY_METRIC = "neighbour_latency_ms"


@dataclass(frozen=True)
class Slowdowns:
    values: list[float]  # one per repeat with a baseline and a covered stressed run
    uncovered: int  # stressed runs left out: the stress did not cover the load window


def _by_repeat(
    samples: Iterable[Sample], variant: str, stressor: str, percentile: str
) -> dict[int, tuple[float, bool]]:
    found = {}
    for s in samples:
        if (
            s.metric == LATENCY_METRIC
            and s.variant == variant
            and s.metadata.get("stressor") == stressor
            and s.metadata.get("percentile") == percentile
            and isinstance(s.value, int | float)
        ):
            covered = s.metadata.get("stress_covered_window", True) is not False
            found[int(s.metadata.get("repeat", -1))] = (float(s.value), covered)
    return found


def slowdowns(samples: Iterable[Sample], variant: str, stressor: str, percentile: str) -> Slowdowns:
    """Per repeat: `percentile` latency with `stressor` over the baseline's, for `variant`."""
    chosen = list(samples)
    baseline = _by_repeat(chosen, variant, NONE, percentile)
    stressed = _by_repeat(chosen, variant, stressor, percentile)
    values, uncovered = [], 0
    for repeat in sorted(stressed):
        value, covered = stressed[repeat]
        if not covered:
            uncovered += 1
        elif repeat in baseline and baseline[repeat][0] > 0:
            values.append(value / baseline[repeat][0])
    return Slowdowns(values, uncovered)


def stressors_run(samples: Iterable[Sample]) -> list[str]:
    """The stressors the samples have runs of, in the catalogue's order."""
    seen = {str(s.metadata.get("stressor")) for s in samples if s.metric == LATENCY_METRIC}
    return [name for name in STRESSORS if name in seen]
