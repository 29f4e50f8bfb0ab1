"""Shared fixtures: one real deployment of both variants for the whole session."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from typing import IO, Any

import pytest

from components.naming import stack_prefix
from components.paths import state_dir
from scripts import leftovers
from tests.deploy import TEST_PREFIX, ci_stack_config, deployed, sweep_test_stacks

_SESSION_LOCK: list[IO[str]] = []


def _one_session_at_a_time() -> None:
    """The sweep removes every test stack: only safe when no other session is deploying."""
    path = state_dir() / "test-session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pytest.fail(f"another twinlab test session holds {path}; wait for it", pytrace=False)
    _SESSION_LOCK.append(lock)  # held until the process exits


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
    _one_session_at_a_time()
    swept = sweep_test_stacks()
    print(f"swept earlier test leftovers: {swept}")
    with deployed(ci_stack_config()) as (stack, outputs):
        yield outputs | {"stack": stack.name}
    remaining = leftovers.find(stack_prefix(stack.name))
    assert remaining.count() == 0, f"destroy left: {remaining.describe()}"
    assert leftovers.find(TEST_PREFIX).count() == 0
