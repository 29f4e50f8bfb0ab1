"""R3: what each variant stores: a container image vs a VM's base disk + kernel + initrd."""

from __future__ import annotations

from collections.abc import Sequence

from scripts.checks.resources.meters import Meter
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample


def measure_sizes(meters: Sequence[Meter], tags: RunTags) -> list[Sample]:
    samples = []
    for meter in meters:
        size = meter.size()
        instance = meter.instance
        samples.append(
            tags.sample(
                "image_size_mib",
                round(size.mib, 3),
                "MiB",
                instance.target,
                instance.label,
                "R3",
                **size.metadata,
            )
        )
    return samples
