"""The metadata every sample of a run carries: virt_mode, host_kernel, run_id."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from scripts.checks.results.samples import Sample, Value, VariantLabel


@dataclass(frozen=True)
class RunTags:
    virt_mode: str  # "kvm" | "tcg": how the VMs of this run are accelerated
    host_kernel: str
    run_id: str

    def metadata(self, **extra: Value) -> dict[str, Value]:
        return {
            "virt_mode": self.virt_mode,
            "host_kernel": self.host_kernel,
            "run_id": self.run_id,
            **extra,
        }

    def sample(
        self,
        metric: str,
        value: float | int,
        unit: str,
        target: str,
        label: VariantLabel,
        claim: str,
        **metadata: Value,
    ) -> Sample:
        """A sample of one claim carrying this run's tags."""
        tags = self.metadata(**label.metadata(), **metadata)
        return Sample(metric, value, unit, target, label.name, (claim,), tags, kind=label.kind)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"


def run_tags(virt_mode: str, run_id: str | None = None) -> RunTags:
    return RunTags(virt_mode, os.uname().release, run_id or new_run_id())
