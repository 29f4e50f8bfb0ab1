"""The probe metric contract: each metric declared once, next to the probe that produces it,
collected into one table; a reading of an undeclared metric raises."""

from __future__ import annotations

from types import ModuleType

import pytest

from scripts.checks.probes.catalog import (
    ISOLATION,
    Metric,
    Reading,
    collect,
    declaring_modules,
    metrics,
)
from scripts.checks.results.samples import CLAIM_IDS

pytestmark = pytest.mark.unit


def module(name: str, declared: dict[str, Metric]) -> ModuleType:
    made = ModuleType(name)
    made.METRICS = declared  # type: ignore[attr-defined]
    return made


def test_every_metric_comes_from_the_module_that_declares_it() -> None:
    owners = {name: found.__name__ for found in declaring_modules() for name in found.METRICS}
    assert set(owners) == set(metrics())
    assert owners["kernel_release"] == "scripts.checks.probes.system"
    assert owners["host_processes_visible"] == "scripts.checks.probes.isolation"
    assert owners["dangerous_syscalls_blocked"] == "scripts.checks.probes.misconfig_seccomp"
    assert metrics()["dangerous_syscalls_blocked"] == Metric("syscalls", ISOLATION)


def test_every_declared_metric_serves_known_claims() -> None:
    for name, declared in metrics().items():
        assert declared.claims and set(declared.claims) <= set(CLAIM_IDS), name


def test_a_metric_declared_twice_is_refused_naming_both_modules() -> None:
    first = module("probes.one", {"x_visible": Metric("", ISOLATION)})
    second = module("probes.two", {"x_visible": Metric("", ("A1",))})
    assert collect((first,)) == {"x_visible": Metric("", ISOLATION)}
    with pytest.raises(
        ValueError, match=r"'x_visible' declared twice: in probes\.one and probes\.two"
    ):
        collect((first, second))


def test_a_reading_of_an_undeclared_metric_raises() -> None:
    with pytest.raises(ValueError, match="unknown probe metric 'nonsense'"):
        Reading("nonsense", True)
    assert Reading("kernel_release", "6.1").metric == "kernel_release"
