"""Which instances the resource checks run on: R4 on the primary container and primary VM,
its runs interleaved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest

from scripts.checks.resources.errors import ResourceCheckError
from scripts.checks.resources.meters import Instance, Meter
from scripts.checks.resources.runner import (
    DensityBounds,
    density_schedule,
    primary_meters,
    run_resource_checks,
)
from scripts.checks.results.samples import VariantLabel

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Stand:
    """What primary_meters reads of a meter: its instance."""

    instance: Instance


def meters(*labels: tuple[str, str]) -> list[Meter]:
    return [
        cast(Meter, Stand(Instance(VariantLabel(name, kind), f"i-{name}", f"t-{name}")))
        for name, kind in labels
    ]


def names(chosen: list[Meter]) -> list[str]:
    return [meter.instance.label.name for meter in chosen]


def test_density_runs_on_the_variant_named_like_its_kind() -> None:
    found = meters(
        ("gvisor", "sandbox"), ("vm-restored", "vm"), ("vm", "vm"), ("container", "container")
    )
    assert names(primary_meters(found)) == ["container", "vm"]


def test_without_a_plain_variant_the_first_of_its_kind_is_used() -> None:
    assert names(primary_meters(meters(("vm-restored", "vm"), ("c2", "container")))) == [
        "c2",
        "vm-restored",
    ]


def test_a_missing_kind_is_left_out_not_invented() -> None:
    assert names(primary_meters(meters(("gvisor", "sandbox"), ("container", "container")))) == [
        "container"
    ]


def test_density_runs_alternate_the_kinds_repeat_by_repeat() -> None:
    found = meters(("container", "container"), ("gvisor", "sandbox"), ("vm", "vm"))
    schedule = [(repeat, meter.instance.label.name) for repeat, meter in density_schedule(found, 3)]
    assert schedule == [
        (1, "container"), (1, "vm"), (2, "container"), (2, "vm"), (3, "container"), (3, "vm")
    ]  # fmt: skip


def test_no_density_run_is_refused_before_anything_is_measured() -> None:
    with pytest.raises(ResourceCheckError, match="density repeats 0: give at least 1"):
        run_resource_checks([], ("r4",), density=DensityBounds(repeats=0))
