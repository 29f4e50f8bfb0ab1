"""The vocabulary of verdicts: a run's samples looked up by variant and kind, one result per
claim (holds, does not hold, or inconclusive, with numbers), and the isolation expectations.

The judges themselves, one module per claim, are in scripts/checks/claims/; the report and the
claim tests both read their results, neither re-derives a verdict. The textbook claims compare
kinds ("container vs VM"): each judge compares the primary variant of each kind (the one named
like its kind, else the first deployed), and fills a cell for every variant of the run, so a
sandboxed container or a second VM variant gets its column without being averaged into either.
Isolation expectations are written as functions that list what is wrong, so a test can assert
"no problems" on a real deployment and "these problems" on a deliberately weakened one.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from scripts.checks.results.samples import HOST, Sample, Value, VariantLabel, primary_variant
from scripts.checks.results.stats import MIN_N, RatioJudgement, Summary, judge_ratio, summarize

Verdict = Literal["holds", "does not hold", "inconclusive"]


@dataclass(frozen=True)
class ClaimResult:
    claim: str
    verdict: Verdict
    summary: str
    cells: Mapping[str, str] = field(default_factory=dict)  # variant name -> what it showed
    ratio: float | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)
    ratio_ci: tuple[float, float] | None = None  # 95 % bootstrap CI of `ratio`
    # variant name -> the distribution its cell describes (ratio claims)
    summaries: Mapping[str, Summary] = field(default_factory=dict)
    # A claim judged case by case (N1 per stressor): one result per case, the verdict above
    # combining them.
    parts: tuple[ClaimResult, ...] = ()

    def cell(self, variant: str) -> str:
        return self.cells.get(variant, "")


def blind(sample: Sample) -> bool:
    """A reading by a probe that could not tell on this host (its metadata says why)."""
    return sample.metadata.get("inconclusive") is True or sample.value == "inconclusive"


class Samples:
    """Lookup over one run's samples by variant, kind, target and metric.

    Every blind sample a judge reads (`one`, `values`, `numbers`) is remembered in `blind_read`:
    a verdict resting on a probe that could not see is inconclusive (claims.evaluate). A judge
    reads with `shown` what it only displays, and with `optional` what it treats as optional
    evidence and reports itself when blind.
    """

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.all = list(samples)
        self.blind_read: dict[tuple[str, str], Sample] = {}

    def matching(
        self,
        metric: str,
        *,
        variant: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        **meta: Value,
    ) -> list[Sample]:
        return [
            s
            for s in self.all
            if s.metric == metric
            and (variant is None or s.variant == variant)
            and (kind is None or s.kind == kind)
            and (target is None or s.target == target)
            and all(s.metadata.get(k) == v for k, v in meta.items())
        ]

    def values(self, metric: str, **where: str | Value | None) -> list[Value]:
        found = self.matching(metric, **where)  # type: ignore[arg-type]
        for sample in found:
            if blind(sample):
                self.blind_read[(sample.metric, sample.variant)] = sample
        return [s.value for s in found]

    def one(self, metric: str, **where: str | Value | None) -> Value | None:
        found = self.values(metric, **where)
        return found[-1] if found else None

    def optional(self, metric: str, **where: str | Value | None) -> Sample | None:
        """The last matching sample, blind or not, without marking the verdict."""
        found = self.matching(metric, **where)  # type: ignore[arg-type]
        return found[-1] if found else None

    def shown(self, metric: str, **where: str | Value | None) -> Value | None:
        """A value a judge only displays in a cell."""
        found = self.optional(metric, **where)
        return found.value if found else None

    def blind_reasons(self) -> list[str]:
        return [
            f"{metric} on {variant}: "
            f"{sample.metadata.get('reason') or sample.metadata.get('detail') or 'no reading'}"
            for (metric, variant), sample in self.blind_read.items()
        ]

    def numbers(self, metric: str, **where: str | Value | None) -> list[float]:
        """The numeric values of `metric` (booleans and text left out)."""
        found = self.values(metric, **where)
        return [float(v) for v in found if isinstance(v, int | float) and not isinstance(v, bool)]

    def median(self, metric: str, **where: str | Value | None) -> float | None:
        found = [float(v) for v in self.values(metric, **where)]
        return statistics.median(found) if found else None

    def variants(self) -> list[VariantLabel]:
        """Every deployed variant of the run (not the host), in the order first measured."""
        seen: dict[str, VariantLabel] = {}
        for s in self.all:
            if s.kind != HOST and s.variant not in seen:
                seen[s.variant] = VariantLabel(s.variant, s.kind)
        return list(seen.values())

    def primary(self, kind: str) -> str | None:
        """The variant a claim about `kind` is judged on (samples.primary_variant)."""
        return primary_variant(self.variants(), kind)

    def targets(self, variant: str | None = None, *, kind: str | None = None) -> list[str]:
        return sorted(
            {
                s.target
                for s in self.all
                if (variant is None or s.variant == variant) and (kind is None or s.kind == kind)
            }
        )


class Missing(Exception):
    """A sample a verdict needs is absent: the verdict is inconclusive."""


def need(value: Value | None, what: str) -> Value:
    if value is None:
        raise Missing(what)
    return value


def need_primary(samples: Samples, kind: str) -> str:
    name = samples.primary(kind)
    if name is None:
        raise Missing(f"no variant of kind {kind} measured")
    return name


def summary_cells(
    samples: Samples, metric: str, unit: str, **where: Value
) -> tuple[dict[str, str], dict[str, Summary]]:
    """Every variant's `metric` as a distribution: the cell text ("median (95 % CI lo-hi, n,
    CV, range)") and the Summary, for the variants that have values."""
    summaries: dict[str, Summary] = {}
    for label in samples.variants():
        values = samples.numbers(metric, variant=label.name, **where)
        if values:
            summaries[label.name] = summarize(values, name=f"{label.name} {metric}")
    cells = {name: summary.describe(unit) for name, summary in summaries.items()}
    return cells, summaries


def ratio_claim(
    claim: str,
    samples: Samples,
    metric: str,
    unit: str,
    minimum: float,
    *,
    vm_over_container: bool,
    min_n: int = MIN_N,
    note: str = "",
    **where: Value,
) -> ClaimResult:
    """`metric` on every variant as a distribution; the verdict from the ratio of the primary
    VM's and the primary container's medians (VM/container, or container/VM), which must be at
    least `minimum`: "holds" only when its whole 95 % CI is at or above it, "does not hold" when
    wholly below, "inconclusive" otherwise or with fewer than `min_n` values a side (stats.py).
    `note` is added to the reason (e.g. why n=1 is enough)."""
    container_name, vm_name = samples.primary("container"), samples.primary("vm")
    if container_name is None or vm_name is None:
        cells, _ = summary_cells(samples, metric, unit, **where)
        missing = "container" if container_name is None else "vm"
        return ClaimResult(
            claim, "inconclusive", f"{metric}: no variant of kind {missing} measured", cells
        )
    a_name, b_name = (vm_name, container_name) if vm_over_container else (container_name, vm_name)
    return variants_ratio_claim(
        claim, samples, metric, unit, minimum, a_name, b_name, min_n=min_n, note=note, **where
    )


def variants_ratio_claim(
    claim: str,
    samples: Samples,
    metric: str,
    unit: str,
    minimum: float,
    a_name: str,
    b_name: str,
    *,
    min_n: int = MIN_N,
    note: str = "",
    **where: Value,
) -> ClaimResult:
    """`metric` on every variant as a distribution; the verdict from median(variant a) /
    median(variant b), which must be at least `minimum` (judge_ratio's rule)."""
    cells, summaries = summary_cells(samples, metric, unit, **where)
    a = samples.numbers(metric, variant=a_name, **where)
    b = samples.numbers(metric, variant=b_name, **where)
    judgement = judge_ratio(a, b, minimum, "at least", min_n, a_name=a_name, b_name=b_name)
    reason = f"{metric} {judgement.reason}" + (f"; {note}" if note else "")
    return judged(claim, judgement, reason, cells, summaries)


def judged(
    claim: str,
    judgement: RatioJudgement,
    reason: str,
    cells: Mapping[str, str],
    summaries: Mapping[str, Summary],
) -> ClaimResult:
    """A claim's result from the judgement of its ratio: verdict, ratio and CI from there."""
    ratio = judgement.ratio
    return ClaimResult(
        claim,
        judgement.verdict,
        reason,
        cells,
        ratio=ratio.value if ratio else None,
        ratio_ci=(ratio.ci_low, ratio.ci_high) if ratio else None,
        summaries=summaries,
    )


# --- isolation expectations, shared by verdicts and claim tests --------------------------------


def container_isolation_problems(samples: Samples, target: str) -> list[str]:
    """What breaks I1's "process-level isolation on a shared kernel" for this container: the
    baseline expectations, then every misconfiguration finding, each with its CIS item."""
    from scripts.checks.probes import findings

    problems = []
    if samples.one("host_processes_visible", target=target) is not False:
        problems.append("host processes are visible (PID namespace not separate; CIS 5.16)")
    if samples.one("cap_full", target=target) is not False:
        problems.append("it holds the full capability set (CIS 5.4, 5.5)")
    if samples.one("seccomp_mode", target=target) != 2:
        problems.append("seccomp filter is off (CIS 5.22)")
    if samples.one("host_kernel_state_visible", target=target) is not True:
        problems.append("host kernel state is not visible: not a shared kernel")
    if samples.one("can_write_sysctl", target=target) is not False:
        problems.append("root inside can write kernel settings (CIS 5.5)")
    return problems + findings.weaknesses(samples.all, target)


def sandbox_isolation_problems(samples: Samples, target: str) -> list[str]:
    """What breaks a sandbox's claim (gVisor): an application kernel between the app and the
    host, so nothing of the host kernel or its processes visible from inside, no capabilities,
    and no misconfiguration reaching the host. Its seccomp and NoNewPrivs readings are the
    application kernel's own view and are not judged here."""
    from scripts.checks.probes import findings

    problems = []
    kind = samples.one("kernel_kind", target=target)
    if kind != "application":
        problems.append(f"kernel_kind is {kind}: no application kernel between app and host")
    for metric in ("host_processes_visible", "host_kernel_state_visible", "cap_full"):
        if samples.one(metric, target=target) is not False:
            problems.append(f"{metric} is {samples.one(metric, target=target)}")
    # Findings that expose only the application kernel (its seccomp view, its syscalls) are
    # "guest-only"; what comes from the host through the gofer (a socket) is host scope.
    return problems + findings.weaknesses(samples.all, target, scope=findings.HOST_SCOPE)


def vm_isolation_problems(samples: Samples, target: str) -> list[str]:
    """What breaks I2's "own kernel, nothing of the host kernel visible" for this VM. Findings
    that only expose the guest's own kernel ("guest-only") are not problems; host-scope ones
    (e.g. a host directory shared into the guest) are."""
    from scripts.checks.probes import findings

    problems = []
    for metric in (
        "host_kernel_state_visible",
        "host_processes_visible",
        "sysctl_write_reached_host",
    ):
        if samples.one(metric, target=target) in (True, None):
            problems.append(f"{metric} is {samples.one(metric, target=target)}")
    # Corroborating evidence: a host without module support has no module list to recognise
    # (the probe says so); the verdict then rests on the three readings above (vm_blind_notes).
    for metric in VM_OPTIONAL_EVIDENCE:
        sample = samples.optional(metric, target=target)
        if sample is not None and not blind(sample) and sample.value is not False:
            problems.append(f"{metric} is {sample.value}")
    if samples.one("can_write_sysctl", target=target) is not True:
        problems.append("root in the guest cannot change its own kernel settings")
    return problems + findings.weaknesses(samples.all, target, scope=findings.HOST_SCOPE)


VM_OPTIONAL_EVIDENCE = ("kernel_modules_visible", "module_load_reached_host")


def vm_blind_notes(samples: Samples, target: str) -> list[str]:
    """The corroborating VM readings this host could not take, with the probe's reason."""
    notes = []
    for metric in VM_OPTIONAL_EVIDENCE:
        sample = samples.optional(metric, target=target)
        if sample is not None and blind(sample):
            reason = sample.metadata.get("reason") or sample.metadata.get("detail") or "no reading"
            notes.append(f"{metric} not measurable on this host ({reason})")
    return notes


def weakening_reported(samples: Samples, target: str) -> list[str]:
    """I3: what the checks report as weakened for a (deliberately weakened) container."""
    from scripts.checks.probes import findings

    reported = []
    if samples.one("host_processes_visible", target=target) is True:
        reported.append("host processes visible")
    if samples.one("cap_full", target=target) is True:
        reported.append("full capabilities")
    if samples.one("seccomp_mode", target=target) == 0:
        reported.append("seccomp off")
    return reported + findings.weaknesses(samples.all, target)


def probed_targets(samples: Samples, variant: str | None) -> list[str]:
    """The targets of `variant` the isolation probes ran on (a run of other check groups files
    its samples under the same targets without probing them)."""
    return [
        t
        for t in samples.targets(variant)
        if samples.one("host_processes_visible", target=t) is not None
    ]


def weakened(samples: Samples, target: str) -> bool:
    return any(s.target == target and s.metadata.get("weakened") is True for s in samples.all)


def isolation_line(samples: Samples, target: str) -> str:
    names = ("host_processes_visible", "cap_eff_count", "seccomp_mode", "no_new_privs")
    return ", ".join(f"{name}={samples.shown(name, target=target)}" for name in names)
