"""S1: restoring a VM from a memory snapshot is much faster than booting it."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.claims.parts import combined_verdict
from scripts.checks.results.stats import judge_median, judge_ratio
from scripts.checks.results.verdicts import ClaimResult, Samples, summary_cells

METRIC = "time_to_first_response_s"
# Why a run has no restored figure (scripts/checks/resources/restored_start.py).
UNAVAILABLE_METRIC = "restored_start_unavailable"
# The claim's two parts: an absolute start-time target (issue 10's <= 1.5 s under TCG) and the
# ratio the claim is about.
TARGET_PART = "S1 restored start"
SPEEDUP_PART = "S1 cold boot/restore"


def started_by(samples: Samples, method: str) -> list[str]:
    """The VM-kind variants whose R1 clones were started by `method` ("boot" or "restore",
    the cloner's start_method in each sample), the one named like the kind first."""
    names = list(
        dict.fromkeys(
            s.variant
            for s in samples.all
            if s.metric == METRIC and s.kind == "vm" and s.metadata.get("start_method") == method
        )
    )
    return sorted(names, key=lambda name: name != "vm")


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    """Both must hold: the restored VM's median create-to-first-200 at most
    s1_max_restored_start_s (the whole CI), and cold boot / restore at least
    s1_min_restore_speedup."""
    cells, summaries = summary_cells(samples, METRIC, "s")
    vms = {label.name for label in samples.variants() if label.kind == "vm"}
    cells = {name: text for name, text in cells.items() if name in vms}
    restored, booted = started_by(samples, "restore"), started_by(samples, "boot")
    if not restored or not booted:
        missing = "restored from a snapshot" if not restored else "booted"
        reasons = sorted({str(v) for v in samples.values(UNAVAILABLE_METRIC)})
        why = f": {'; '.join(reasons)}" if reasons else ""
        return ClaimResult("S1", "inconclusive", f"no VM start {missing} measured{why}", cells)
    restored_name, booted_name = restored[0], booted[0]
    restored_values = samples.numbers(METRIC, variant=restored_name, start_method="restore")
    booted_values = samples.numbers(METRIC, variant=booted_name, start_method="boot")
    bound = judge_median(
        restored_values,
        t.s1_max_restored_start_s,
        "at most",
        name=f"{restored_name} create-to-first-200",
        unit="s",
    )
    speedup = judge_ratio(
        booted_values,
        restored_values,
        t.s1_min_restore_speedup,
        "at least",
        a_name=f"{booted_name} (boot)",
        b_name=f"{restored_name} (restore)",
    )
    ratio = speedup.ratio
    return ClaimResult(
        "S1",
        combined_verdict([bound, speedup]),
        f"restored start: {bound.reason}; cold boot/restore: {METRIC} {speedup.reason}",
        cells,
        ratio=ratio.value if ratio else None,
        ratio_ci=(ratio.ci_low, ratio.ci_high) if ratio else None,
        summaries={name: summaries[name] for name in cells},
        parts=(
            ClaimResult(TARGET_PART, bound.verdict, bound.reason),
            ClaimResult(SPEEDUP_PART, speedup.verdict, f"{METRIC} {speedup.reason}"),
        ),
    )


CLAIM = Claim(
    id="S1",
    statement="Restoring a VM from a memory snapshot is much faster than booting it",
    measured="create call to first HTTP 200 of clones restored from the VM's cached memory "
    "snapshot (virsh restore of a fresh overlay) vs clones of the deployed VM booted from its "
    "kernel, repeated and interleaved with R1's other variants; the restored figure is R1's "
    "third figure, measured whenever a VM is deployed",
    expected="restored start at most s1_max_restored_start_s (the whole CI); cold boot / "
    "restore at least s1_min_restore_speedup",
    reference="Agache et al., NSDI'20 (Firecracker) measure boot, not restore: a microVM boots "
    "to guest init in under 125 ms. Snapshot restore came after the paper; its follow-ups "
    "(Brooker et al., 'Restoring Uniqueness in MicroVM Snapshots', 2021) restore "
    "post-initialization snapshots because code initialization dominates cold starts, and "
    "show what clones then share (random state, identifiers) and must make unique again.",
    judge=judge,
    thresholds=("s1_max_restored_start_s", "s1_min_restore_speedup"),
    kinds=("vm",),
)
