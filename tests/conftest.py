"""Shared fixtures: one real deployment of both variants for the whole session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from scripts import leftovers
from tests.deploy import TEST_PREFIX, deployed, sweep_test_stacks, test_stack_config


def _require_toolchain() -> None:
    if shutil.which("pulumi") is None:
        pytest.fail(
            "pulumi is not on PATH: run the tests with scripts/test.sh "
            "(or scripts/setup.sh, then `source scripts/env.sh`)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def deployed_stack() -> Iterator[dict[str, Any]]:
    """Both variants deployed once with default limits; destroyed at the end, and checked to
    have left nothing behind."""
    _require_toolchain()
    swept = sweep_test_stacks()
    print(f"swept earlier test leftovers: {swept}")
    with deployed(test_stack_config()) as (stack, outputs):
        yield outputs | {"stack": stack.name}
    remaining = leftovers.find(f"twinlab-{stack.name}")
    assert remaining.count() == 0, f"destroy left: {remaining.describe()}"
    assert leftovers.find(TEST_PREFIX).count() == 0
