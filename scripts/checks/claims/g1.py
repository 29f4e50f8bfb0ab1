"""G1: a gVisor sandbox costs performance: system calls, file opens and networking are several
times slower than under runc, and it starts slower."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.claims.parts import combined_verdict
from scripts.checks.results.verdicts import (
    ClaimResult,
    Samples,
    summary_cells,
    variants_ratio_claim,
)

# The app's syscall-heavy endpoints (workloads/app/webapp.py): /io creates, writes, fsyncs and
# unlinks a file per request (the Gofer's path in gVisor); /static is little more than the
# socket calls of one request. /cpu is user-space hashing, which gVisor does not intercept: it
# is shown beside them as the control, not judged.
SYSCALL_ENDPOINTS = ("io", "static")
CONTROL_ENDPOINT = "cpu"
# The sample naming the gVisor configuration that ran (scripts/checks/resources/sandbox_runtime.py).
RUNTIME_METRIC = "sandbox_runtime"


def judge(samples: Samples, t: Thresholds) -> ClaimResult:
    """Every part must hold: runc/sandbox req/s on each syscall-heavy endpoint at least
    g1_min_syscall_slowdown, sandbox/runc start time at least g1_min_start_slowdown."""
    container, sandbox = samples.primary("container"), samples.primary("sandbox")
    if container is None or sandbox is None:
        missing = "container" if container is None else "sandbox"
        return ClaimResult("G1", "inconclusive", f"no variant of kind {missing} measured")
    labels = [*SYSCALL_ENDPOINTS, "start"]
    parts = [
        variants_ratio_claim(
            "G1",
            samples,
            "requests_per_s",
            "req/s",
            t.g1_min_syscall_slowdown,
            container,
            sandbox,
            endpoint=endpoint,
        )
        for endpoint in SYSCALL_ENDPOINTS
    ]
    parts.append(
        variants_ratio_claim(
            "G1",
            samples,
            "time_to_first_response_s",
            "s",
            t.g1_min_start_slowdown,
            sandbox,
            container,
        )
    )
    thresholds = [t.g1_min_syscall_slowdown] * len(SYSCALL_ENDPOINTS) + [t.g1_min_start_slowdown]
    # The runc container and every sandbox variant get a cell; the VMs are no part of G1.
    shown = [container] + [v.name for v in samples.variants() if v.kind == "sandbox"]
    control, _ = summary_cells(samples, "requests_per_s", "req/s", endpoint=CONTROL_ENDPOINT)
    texts: dict[str, list[str]] = {name: [] for name in shown}
    for label, part in zip(labels, parts, strict=True):
        for name in shown:
            if part.cell(name):
                texts[name].append(f"{label} {part.cell(name)}")
    for name in shown:
        if name in control:
            texts[name].append(f"{CONTROL_ENDPOINT} (control, not judged) {control[name]}")
    cells = {name: "; ".join(lines) for name, lines in texts.items() if lines}
    summary = "; ".join(
        f"{label}: {part.summary}" for label, part in zip(labels, parts, strict=True)
    )
    summary += "; " + runtime_note(samples, sandbox)
    closest = min(
        ((part, threshold) for part, threshold in zip(parts, thresholds, strict=True)),
        key=lambda pair: (pair[0].ratio or 0.0) / pair[1],
    )[0]
    return ClaimResult(
        "G1",
        combined_verdict(parts),
        summary,
        cells,
        ratio=closest.ratio,
        ratio_ci=closest.ratio_ci,
        summaries={
            f"{name} ({label})": figure
            for label, part in zip(labels, parts, strict=True)
            for name, figure in part.summaries.items()
            if name in shown
        },
    )


def runtime_note(samples: Samples, sandbox: str) -> str:
    """Which gVisor configuration ran and what it gives up, from the run's samples."""
    found = [s for s in samples.all if s.metric == RUNTIME_METRIC and s.variant == sandbox]
    if not found:
        return f"{sandbox}: the gVisor configuration that ran is not recorded in this run"
    sample = found[-1]
    gives_up = sample.metadata.get("gives_up", "")
    return f"{sandbox} ran {sample.value}" + (f" ({gives_up})" if gives_up else "")


CLAIM = Claim(
    id="G1",
    statement="A gVisor sandbox costs performance: system calls, file opens and networking are "
    "several times slower than under runc",
    measured="HTTP throughput (wrk, P1's closed-loop runs) on the app's syscall-heavy endpoints "
    "(/io: create, write, fsync, unlink a file per request; /static: a request's socket calls), "
    "/cpu as the control gVisor should not slow; create-to-first-200 (R1's clones); the gVisor "
    "platform and network mode that ran, from the deployed container's runtime (on this host "
    "Debian's runsc 2022 runs only with the ptrace platform and the host network stack, which "
    "bypasses gVisor's own netstack: the app's socket calls reach the host kernel's TCP/IP stack)",
    expected="runc req/s at least g1_min_syscall_slowdown times the sandbox's on each "
    "syscall-heavy endpoint; the sandbox's start at least g1_min_start_slowdown times runc's",
    reference="Young et al., 'The True Cost of Containing: A gVisor Case Study', HotCloud'19: "
    "opening and closing files on an external tmpfs 216x slower than runc, reading small files "
    "11x, downloading large files 2.8x; system calls, startup and memory also cost more. van "
    "Rijn & Rellermeyer 2021: gVisor starts in about 190 ms vs about 100 ms for runc.",
    judge=judge,
    thresholds=("g1_min_syscall_slowdown", "g1_min_start_slowdown"),
    kinds=("container", "sandbox"),
)
