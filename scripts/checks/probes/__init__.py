"""Probes run inside targets: kernel/OS facts (A1, A2, U1) and isolation (I1, I2, I3).

A probe is a callable (Target, HostBaseline) -> list[Sample], written once for every target.

    with host_baseline() as baseline:
        os_samples = run_os_probes(targets, run_id=..., virt_mode="tcg", baseline=baseline)
        isolation = run_isolation(targets, run_id=..., virt_mode="tcg", baseline=baseline)

run_os_probes also measures the host itself (target local://, variant "host") as the baseline
row of the report. run_isolation runs the read-only probes, then the two state-changing ones
(module load, sysctl write), which are harmless and undone. Every sample's metadata gets
virt_mode, host_kernel and run_id, plus target_metadata[target URL] (e.g. {"weakened": True}).

Each probe module declares the metrics it produces, with unit and claim IDs, next to its code
(`METRICS = {name: Metric(unit, claims)}`); catalog.py collects them. The unit tests interpret
raw output captured from live targets (tests/unit/data/probes/<label>/), written by one command:

    python -m scripts.checks.probes.capture --stack dev    # every deployed variant + the host
    python -m scripts.checks.probes.capture --controls     # the one-way weakened containers
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace

from scripts.checks.probes.base import ReadProbe, run_batch
from scripts.checks.probes.baseline import HostBaseline, host_baseline
from scripts.checks.probes.isolation import READ_ONLY_PROBES
from scripts.checks.probes.kernel_writes import STATE_CHANGING_PROBES
from scripts.checks.probes.system import OS_PROBES
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.target import HostTarget, LocalTarget, Target, TargetError

Probe = Callable[[Target, HostBaseline], list[Sample]]
ProbeStarted = Callable[[Target, str], None]

ISOLATION_PROBES: tuple[Probe, ...] = (*READ_ONLY_PROBES, *STATE_CHANGING_PROBES)

__all__ = [
    "ISOLATION_PROBES",
    "OS_PROBES",
    "HostBaseline",
    "ProbesFailedError",
    "host_baseline",
    "run_isolation",
    "run_os_probes",
]


class ProbesFailedError(TargetError):
    """Some targets could not be probed; `samples` holds what the others gave."""

    def __init__(self, failures: list[str], samples: list[Sample]) -> None:
        self.failures = failures
        self.samples = samples
        super().__init__("probes failed on " + "; ".join(failures))


def probe_name(probe: Probe) -> str:
    return str(getattr(probe, "name", getattr(probe, "__name__", repr(probe))))


def batches(probes: Sequence[Probe]) -> Iterator[list[ReadProbe] | Probe]:
    """Consecutive read-only probes grouped into one batch; other probes one by one."""
    batch: list[ReadProbe] = []
    for probe in probes:
        if isinstance(probe, ReadProbe):
            batch.append(probe)
            continue
        if batch:
            yield batch
            batch = []
        yield probe
    if batch:
        yield batch


def probe_target(
    probes: Sequence[Probe], target: Target, baseline: HostBaseline, on_probe: ProbeStarted | None
) -> list[Sample]:
    samples: list[Sample] = []
    for step in batches(probes):
        names = [probe_name(p) for p in step] if isinstance(step, list) else [probe_name(step)]
        if on_probe is not None:
            on_probe(target, ", ".join(names))
        if isinstance(step, list):
            samples.extend(run_batch(step, target, baseline))
        else:
            samples.extend(step(target, baseline))
    return samples


def run_probes(
    probes: Sequence[Probe],
    targets: Sequence[Target],
    baseline: HostBaseline,
    common: Mapping[str, Value],
    per_target: Mapping[str, Mapping[str, Value]],
    on_probe: ProbeStarted | None,
) -> list[Sample]:
    """Every probe on every target, one target after another; one combined error at the end."""
    samples: list[Sample] = []
    failures: list[str] = []
    for target in targets:
        extra = {**common, **per_target.get(target.url, {})}
        try:
            found = probe_target(probes, target, baseline, on_probe)
        except TargetError as error:
            failures.append(str(error))
            continue
        samples.extend(replace(sample, metadata={**sample.metadata, **extra}) for sample in found)
    if failures:
        raise ProbesFailedError(failures, samples)
    return samples


def select(probes: Sequence[Probe], only: Sequence[str] | None) -> Sequence[Probe]:
    """The probes named in `only` (all when None); ValueError naming the known ones."""
    if only is None:
        return probes
    known = {probe_name(probe): probe for probe in probes}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; known: {sorted(known)}")
    return [known[name] for name in only]


def baseline_or_new(stack: ExitStack, baseline: HostBaseline | None) -> HostBaseline:
    return baseline if baseline is not None else stack.enter_context(host_baseline())


def common_metadata(baseline: HostBaseline, run_id: str, virt_mode: str) -> dict[str, Value]:
    return {"virt_mode": virt_mode, "host_kernel": baseline.kernel_release, "run_id": run_id}


def with_host(targets: Sequence[Target], host: Target) -> Iterator[Target]:
    if not any(isinstance(target, LocalTarget | HostTarget) for target in targets):
        yield host
    yield from targets


def run_os_probes(
    targets: Sequence[Target],
    *,
    run_id: str,
    virt_mode: str,
    baseline: HostBaseline | None = None,
    include_host: bool = True,
    only: Sequence[str] | None = None,
    target_metadata: Mapping[str, Mapping[str, Value]] | None = None,
    on_probe: ProbeStarted | None = None,
) -> list[Sample]:
    """A1/A2/U1 samples for each target, plus the host (local://) unless include_host=False;
    `only` names a subset of OS_PROBES to run."""
    probes = select(OS_PROBES, only)
    with ExitStack() as stack:
        base = baseline_or_new(stack, baseline)
        chosen = list(with_host(targets, base.host)) if include_host else list(targets)
        common = common_metadata(base, run_id, virt_mode)
        return run_probes(probes, chosen, base, common, target_metadata or {}, on_probe)


def run_isolation(
    targets: Sequence[Target],
    *,
    run_id: str,
    virt_mode: str,
    baseline: HostBaseline | None = None,
    state_changing: bool = True,
    only: Sequence[str] | None = None,
    target_metadata: Mapping[str, Mapping[str, Value]] | None = None,
    on_probe: ProbeStarted | None = None,
) -> list[Sample]:
    """I1/I2/I3 samples for each target; state_changing=False skips the module/sysctl probes,
    `only` names a subset of ISOLATION_PROBES to run."""
    probes = select(ISOLATION_PROBES if state_changing else READ_ONLY_PROBES, only)
    with ExitStack() as stack:
        base = baseline_or_new(stack, baseline)
        common = common_metadata(base, run_id, virt_mode)
        return run_probes(probes, targets, base, common, target_metadata or {}, on_probe)
