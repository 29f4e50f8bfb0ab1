"""A claim judged on several figures at once (P1's endpoints, G1's endpoints and start-up, S1's
bound and ratio): it holds only when every part holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from scripts.checks.results.verdicts import Verdict


class Judged(Protocol):
    @property
    def verdict(self) -> Verdict: ...


def combined_verdict(parts: Sequence[Judged]) -> Verdict:
    """ "does not hold" if any part does not, else "inconclusive" if any part is, else "holds"
    (no parts: inconclusive)."""
    verdicts = {part.verdict for part in parts}
    if not verdicts:
        return "inconclusive"
    if "does not hold" in verdicts:
        return "does not hold"
    if "inconclusive" in verdicts:
        return "inconclusive"
    return "holds"
