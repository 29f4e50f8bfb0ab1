"""What a claim of the catalogue is: its statement, what is measured, what is expected, the
published reference, the thresholds its judge uses, and the judge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from components.thresholds import Thresholds
from scripts.checks.results.verdicts import ClaimResult, Samples

Judge = Callable[[Samples, Thresholds], ClaimResult]


@dataclass(frozen=True)
class Claim:
    id: str  # "A1", "R1", ...: what samples, verdicts, the report and the tests use
    statement: str  # the claim as commonly stated
    measured: str  # what is measured on every variant, in one run
    expected: str
    reference: str  # published figures or the textbook source, for the report
    judge: Judge
    # Thresholds (components/thresholds.py fields) the judge uses; defaults and origins there.
    thresholds: tuple[str, ...] = ()
    # The kinds the claim compares (a claim about one kind is judged on its primary variant).
    kinds: tuple[str, ...] = ("container", "vm")
