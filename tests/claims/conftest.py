"""One comparison run on the session's real deployment, shared by every claim test."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from components.thresholds import Thresholds
from scripts.checks.lifecycle import RunOptions
from scripts.checks.results.verdicts import Samples
from scripts.checks.runall import RunOutcome, run_checks
from scripts.checks.targets.deployed import parse_outputs, stack_thresholds, write_private_keys
from scripts.checks.targets.subjects import Subjects


@pytest.fixture(scope="session")
def claim_run(
    deployed_stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> RunOutcome:
    stack = deployed_stack["stack"]
    deployed = parse_outputs(stack, deployed_stack, write_private_keys(stack, deployed_stack))
    results_dir: Path = tmp_path_factory.mktemp("results")
    started = time.monotonic()
    outcome = run_checks(Subjects.of_stack(deployed), RunOptions(results_dir=results_dir))
    # The same options as `fab run-all`: this is how long a run-all takes on this stack.
    print(
        f"claim run written to {outcome.run_dir} in {time.monotonic() - started:.0f} s "
        f"(load average {os.getloadavg()[0]:.2f})"
    )
    return outcome


@pytest.fixture(scope="session")
def thresholds(deployed_stack: dict[str, Any]) -> Thresholds:
    """The stack's thresholds: defaults for its virtualization mode plus its overrides."""
    return stack_thresholds(deployed_stack)


@pytest.fixture(scope="session")
def samples(claim_run: RunOutcome) -> Samples:
    return Samples(claim_run.samples)
