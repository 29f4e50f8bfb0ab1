"""The probe metric contract: each probe module declares the metrics it produces next to its
code (a module-level `METRICS = {name: Metric(unit, claims)}`), and this module collects them
into one table (`metrics()`), so a metric's unit and claim IDs are written once, where it is
measured. Probes return Readings (metric, value, metadata); `to_sample` adds the declared unit
and claims, so no probe can disagree with the contract, and a Reading of a metric no probe
declares raises.

Adding a probe module that produces new metrics: declare them in it, and add the module to
`declaring_modules()` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.target import Target

ISOLATION = ("I1", "I2", "I3")


@dataclass(frozen=True)
class Metric:
    """What a probe metric is measured in ("" for a fact or a flag) and the claims it serves."""

    unit: str
    claims: tuple[str, ...]


def declaring_modules() -> tuple[ModuleType, ...]:
    """Every probe module that declares METRICS (imported here, not at the top: they import
    Reading from this module)."""
    from scripts.checks.probes import attack_surface, isolation, kernel_writes, system
    from scripts.checks.probes.misconfig import MISCONFIG_MODULES

    return (system, isolation, kernel_writes, *MISCONFIG_MODULES, attack_surface)


def collect(modules: tuple[ModuleType, ...]) -> dict[str, Metric]:
    """The modules' METRICS in one table; ValueError if two modules declare one metric."""
    table: dict[str, Metric] = {}
    owner: dict[str, str] = {}
    for module in modules:
        declared: Mapping[str, Metric] = module.METRICS
        for name, metric in declared.items():
            if name in table:
                raise ValueError(
                    f"probe metric {name!r} declared twice: in {owner[name]} and {module.__name__}"
                )
            table[name], owner[name] = metric, module.__name__
    return table


@cache
def metrics() -> dict[str, Metric]:
    """Every probe metric, collected once from the modules that declare them."""
    return collect(declaring_modules())


@dataclass(frozen=True)
class Reading:
    metric: str
    value: Value
    metadata: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in metrics():
            raise ValueError(
                f"unknown probe metric {self.metric!r}: declare it in its probe module's METRICS"
            )


def to_sample(reading: Reading, target: Target, probe: str) -> Sample:
    declared = metrics()[reading.metric]
    metadata: dict[str, Value] = {"probe": probe, **target.label.metadata(), **reading.metadata}
    return Sample(
        reading.metric,
        reading.value,
        declared.unit,
        target.url,
        target.variant,
        declared.claims,
        metadata,
        kind=target.kind,
    )
