"""Misconfiguration findings in samples: the one place that says what a finding sample is.

A finding is a probe sample whose metadata names a CIS Docker Benchmark item ("cis"). Its value
is True (the weakness is there), False (it is not) or "inconclusive" (this host cannot show the
property; metadata "reason" says why). "scope" says whose kernel the weakness exposes: "host"
when the target runs on the host's kernel, "guest-only" when it runs on a kernel of its own (a
Docker socket inside a VM reaches the guest's daemon, not the host's).

The verdicts (I1, I2, I3) and the report's isolation table read findings through this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scripts.checks.results.samples import Sample

CIS_KEY = "cis"
CIS_TITLE_KEY = "cis_title"
FINDING_KEY = "finding"
SCOPE_KEY = "scope"
REASON_KEY = "reason"
HOST_SCOPE = "host"
GUEST_ONLY = "guest-only"
INCONCLUSIVE = "inconclusive"


def is_finding(sample: Sample) -> bool:
    return CIS_KEY in sample.metadata


def weak(sample: Sample) -> bool:
    return is_finding(sample) and sample.value is True


def inconclusive(sample: Sample) -> bool:
    return is_finding(sample) and (
        sample.value == INCONCLUSIVE or sample.metadata.get(INCONCLUSIVE) is True
    )


def guest_only(sample: Sample) -> bool:
    return sample.metadata.get(SCOPE_KEY) == GUEST_ONLY


def describe(sample: Sample) -> str:
    """One line a reviewer reads: what is wrong, the CIS item, and whose kernel it exposes."""
    text = f"{sample.metadata.get(FINDING_KEY, sample.metric)} (CIS {sample.metadata[CIS_KEY]})"
    return text + (" [guest-only]" if guest_only(sample) else "")


def describe_unmeasurable(sample: Sample) -> str:
    reason = sample.metadata.get(REASON_KEY, "no reason given")
    return f"{sample.metric} (CIS {sample.metadata[CIS_KEY]}): not measurable here: {reason}"


def of_target(samples: Iterable[Sample], target: str) -> list[Sample]:
    return [s for s in samples if s.target == target and is_finding(s)]


def weaknesses(samples: Iterable[Sample], target: str, *, scope: str | None = None) -> list[str]:
    """Every weakness found on `target` (only those of `scope` when given), described."""
    return [
        describe(s)
        for s in of_target(samples, target)
        if weak(s) and (scope is None or s.metadata.get(SCOPE_KEY) == scope)
    ]


def unmeasurable(samples: Iterable[Sample], target: str) -> list[str]:
    return [describe_unmeasurable(s) for s in of_target(samples, target) if inconclusive(s)]


COLOURS = {"weak": "red", "ok": "green", INCONCLUSIVE: "grey"}


@dataclass(frozen=True)
class Cell:
    """One cell of the isolation table: "weak", "ok" or "inconclusive", with its evidence."""

    state: str
    cis: str
    scope: str
    detail: str

    @property
    def colour(self) -> str:
        return COLOURS[self.state]

    @property
    def text(self) -> str:
        """What the cell shows: state, CIS item, and "guest-only" where it applies."""
        scope = " guest-only" if self.scope == GUEST_ONLY else ""
        return f"{self.state} (CIS {self.cis}){scope}"


def cell(sample: Sample) -> Cell:
    state = INCONCLUSIVE if inconclusive(sample) else ("weak" if weak(sample) else "ok")
    detail = str(sample.metadata.get(REASON_KEY if state == INCONCLUSIVE else FINDING_KEY, ""))
    return Cell(
        state, str(sample.metadata[CIS_KEY]), str(sample.metadata.get(SCOPE_KEY, "")), detail
    )


def isolation_table(samples: Iterable[Sample]) -> dict[str, dict[str, Cell]]:
    """Rows by finding metric, columns by target URL: the report's isolation table."""
    rows: dict[str, dict[str, Cell]] = {}
    for sample in samples:
        if is_finding(sample):
            rows.setdefault(sample.metric, {})[sample.target] = cell(sample)
    return rows
