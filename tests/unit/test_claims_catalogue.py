"""The claim catalogue: the committed Markdown is what the claim modules render, every claim ID
is known to the samples, and every claim's thresholds exist with an origin."""

from __future__ import annotations

import pytest

from components.thresholds import NAMES, ORIGINS
from scripts.checks.claims import CATALOGUE
from scripts.checks.claims.__main__ import main as catalogue_main
from scripts.checks.claims.catalogue import CATALOGUE_PATH, render
from scripts.checks.results.samples import CLAIM_IDS

pytestmark = pytest.mark.unit


def test_the_committed_catalogue_is_current() -> None:
    assert CATALOGUE_PATH.read_text(encoding="utf-8") == render(), (
        "scripts/checks/claims/README.md is out of date: run python -m scripts.checks.claims"
    )
    assert catalogue_main(["--check"]) == 0


def test_every_claim_has_its_id_statement_reference_and_module() -> None:
    assert tuple(claim.id for claim in CATALOGUE) == CLAIM_IDS
    for claim in CATALOGUE:
        assert claim.statement and claim.measured and claim.expected and claim.reference
        assert claim.judge.__module__ == f"scripts.checks.claims.{claim.id.lower()}"


def test_every_threshold_is_used_by_a_claim_and_has_an_origin() -> None:
    used = {name for claim in CATALOGUE for name in claim.thresholds}
    assert used == set(NAMES) == set(ORIGINS)
