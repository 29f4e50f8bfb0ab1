"""The claim catalogue: one module per claim of the textbook account that twinlab puts to the
test (statement, what is measured, what is expected, the published reference, the thresholds
and the judge), and `evaluate`, which turns one run's samples into one result per claim.

`python -m scripts.checks.claims` writes the Markdown catalogue (README.md next to this file)
from these modules; tests/unit/test_claims_catalogue.py checks the committed file is current.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from components.thresholds import Thresholds
from scripts.checks.claims import a1, a2, g1, i1, i2, i3, n1, p1, r1, r2, r3, r4, s1, u1
from scripts.checks.claims.claim import Claim, Judge
from scripts.checks.results.samples import Sample
from scripts.checks.results.verdicts import ClaimResult, Missing, Samples

CATALOGUE: tuple[Claim, ...] = tuple(
    module.CLAIM for module in (a1, a2, r1, r2, r3, r4, p1, i1, i2, i3, u1, g1, s1, n1)
)
CLAIMS: dict[str, Judge] = {claim.id: claim.judge for claim in CATALOGUE}
BY_ID: dict[str, Claim] = {claim.id: claim for claim in CATALOGUE}

__all__ = ["BY_ID", "CATALOGUE", "CLAIMS", "Claim", "evaluate"]


def evaluate(samples: Sequence[Sample], thresholds: Thresholds) -> list[ClaimResult]:
    """One result per claim of the catalogue. A judge missing a sample says inconclusive; so
    does a verdict that read a probe which could not tell on this host (a blind probe), with
    the verdict it would have given."""
    results = []
    for claim in CATALOGUE:
        lookup = Samples(samples)
        try:
            result = claim.judge(lookup, thresholds)
        except Missing as missing:
            result = ClaimResult(claim.id, "inconclusive", f"missing sample: {missing}")
        blind = lookup.blind_reasons()
        if blind and result.verdict != "inconclusive":
            result = dataclasses.replace(
                result,
                verdict="inconclusive",
                summary=f"rests on probes blind on this host ({'; '.join(blind)}); "
                f"without them: {result.verdict}: {result.summary}",
            )
        results.append(result)
    return results
