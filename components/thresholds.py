"""Thresholds the claim verdicts use, with where each default comes from.

Defaults are set from measurements on the reference machines (2 cores, TCG) with a stated margin
for noise; a stack overrides any of them with `twinlab:thresholds` (a JSON object), e.g.
    pulumi config set twinlab:thresholds '{"r1_min_start_ratio": 3}'
Where physics differs by virtualization mode, the default differs by mode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from components.virt_mode import VirtMode


@dataclass(frozen=True)
class Thresholds:
    # R1: VM median start / container median start must be at least this.
    r1_min_start_ratio: float
    # R2: VM memory charged / container memory charged must be at least this.
    r2_min_memory_ratio: float
    # R3: VM disk (+kernel+initrd) / container image must be at least this.
    r3_min_size_ratio: float
    # R4: containers that fit by measured footprint / VMs that fit must be at least this.
    r4_min_density_ratio: float
    # P1: container req/s / VM req/s, per endpoint, must be at least this ("at least as fast").
    p1_min_throughput_ratio: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> Thresholds:
        """The thresholds a stack exported (its `thresholds` output); ThresholdError if any
        is missing or not a number."""
        missing = [name for name in NAMES if not isinstance(values.get(name), int | float)]
        if missing:
            raise ThresholdError(f"thresholds {dict(values)!r}: missing or not numbers: {missing}")
        return cls(**{name: float(values[name]) for name in NAMES})  # type: ignore[arg-type]


# Where each default comes from (the claim catalogue, scripts/checks/claims/, prints these).
# TCG values were measured on the reference machine (2 cores, TCG, Debian 12 guest): `fab run-all
# --stack lead` (run 20261126T163309, load average 2-7 from parallel builds) and the resource
# checks on a fresh ci- stack (helper run, load 1.4-3.8). KVM values could not be measured here
# (KVM unusable on these machines); they follow the published figures (Felter et al. 2015: KVM
# within 2-17 % on CPU; start and footprint gaps far smaller than under TCG) and are lower than
# TCG's: re-measure on a KVM host.
ORIGINS: dict[str, str] = {
    "r1_min_start_ratio": "TCG: container 0.59-0.86 s vs VM 9.7-21 s to first 200, ratio 15-35; "
    "threshold 3 is a 5x margin under the lowest ratio seen. KVM: 2, from the published gaps.",
    "r2_min_memory_ratio": "TCG: container 26-28 MiB vs QEMU PSS 443-906 MiB, ratio 17-32; "
    "threshold 3 (5x margin). KVM: 2.",
    "r3_min_size_ratio": "TCG: image 163.7 MiB vs disk+kernel+initrd 701 MiB, ratio 4.3; "
    "threshold 2 (2x margin: sizes vary only with the recipe). KVM: 1.3.",
    "r4_min_density_ratio": "TCG: 62 vs 4 instances fit by measured footprint, ratio 15.5; "
    "threshold 3 (5x margin). KVM: 2.",
    "p1_min_throughput_ratio": "TCG: container/VM req/s 14-25 per endpoint; the claim is 'at "
    "least as fast', so 0.9 (10 % noise margin), the same in both modes.",
}
DEFAULTS: dict[VirtMode, Thresholds] = {
    "tcg": Thresholds(
        r1_min_start_ratio=3.0,
        r2_min_memory_ratio=3.0,
        r3_min_size_ratio=2.0,
        r4_min_density_ratio=3.0,
        p1_min_throughput_ratio=0.9,
    ),
    "kvm": Thresholds(
        r1_min_start_ratio=2.0,
        r2_min_memory_ratio=2.0,
        r3_min_size_ratio=1.3,
        r4_min_density_ratio=2.0,
        p1_min_throughput_ratio=0.9,
    ),
}
NAMES = tuple(field.name for field in fields(Thresholds))


class ThresholdError(ValueError):
    pass


def thresholds_for(mode: VirtMode, overrides_json: str | None = None) -> Thresholds:
    """The defaults for `mode` with the stack's overrides (`twinlab:thresholds`, a JSON object)
    applied; bad overrides name the key. Parsed once, by the spec, before anything is created."""
    chosen = DEFAULTS[mode]
    if not overrides_json:
        return chosen
    try:
        overrides = json.loads(overrides_json)
    except json.JSONDecodeError as error:
        raise ThresholdError(f"twinlab:thresholds is not JSON ({error.msg})") from None
    if not isinstance(overrides, dict):
        raise ThresholdError("twinlab:thresholds must be a JSON object")
    unknown = sorted(set(overrides) - set(NAMES))
    if unknown:
        raise ThresholdError(f"twinlab:thresholds: unknown {unknown}; known: {list(NAMES)}")
    for name, value in overrides.items():
        if not isinstance(value, int | float) or value <= 0:
            raise ThresholdError(f"twinlab:thresholds.{name} = {value!r}: must be a number > 0")
    return replace(chosen, **{name: float(value) for name, value in overrides.items()})
