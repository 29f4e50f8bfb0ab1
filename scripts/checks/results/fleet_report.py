"""The report of a run over several hosts: the hosts side by side, and the spread across them.

results/<run>-fleet/ holds each host's own full run under hosts/<host>/ (its report.md/.html,
plots, samples) and, here: samples.jsonl (every host's samples, each tagged with its host) and
report.md with three tables: the hosts (how each was reached, its virtualization mode, how it
was measured), the claims with a column group per host (verdict, ratio and its 95 % CI), and
the spread: for every distribution a claim was judged on, each host's median and CI and the
ratio of the largest median to the smallest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from scripts.checks.results.samples import Sample, write_samples
from scripts.checks.results.stats import Summary
from scripts.checks.results.verdicts import ClaimResult

HOST_KEY = "host"  # sample metadata: the host a sample was measured on
SHARED_MACHINE_NOTE = (
    "Hosts measured at the same time share nothing when they are separate machines; when "
    "several are one machine (here every host is reached on 127.0.0.1: one 2-core machine "
    "behind several SSH endpoints), they compete for its cores and disturb each other's "
    "figures. Run `fab run-all --serial-hosts` for fair numbers."
)


@dataclass(frozen=True)
class HostRun:
    """One host's finished run, as the fleet report reads it."""

    name: str
    reached_through: str  # "local" or user@host:port
    on_loopback: bool  # reached on 127.0.0.1: the same machine as the others on loopback
    run_dir: Path
    samples: Sequence[Sample]
    results: Sequence[ClaimResult]

    @property
    def virt_mode(self) -> str:
        modes = {
            str(s.metadata.get("virt_mode")) for s in self.samples if "virt_mode" in s.metadata
        }
        return ", ".join(sorted(modes)) or "?"


def tagged(run: HostRun) -> list[Sample]:
    """The host's samples, each naming its host."""
    return [replace(s, metadata={**s.metadata, HOST_KEY: run.name}) for s in run.samples]


def _ratio_cell(result: ClaimResult | None) -> str:
    if result is None or result.ratio is None:
        return ""
    if result.ratio_ci is None:
        return f"{result.ratio:.2f}"
    low, high = result.ratio_ci
    return f"{result.ratio:.2f} ({low:.2f}-{high:.2f})"


def _summary_cell(summary: Summary | None) -> str:
    if summary is None:
        return ""
    return f"{summary.median:.4g} ({summary.ci_low:.4g}-{summary.ci_high:.4g}, n={summary.n})"


def spread(values: Sequence[float]) -> float | None:
    """Largest over smallest of the hosts' medians; None with fewer than two or a zero."""
    if len(values) < 2 or min(values) <= 0:
        return None
    return max(values) / min(values)


def overlap(summaries: Sequence[Summary]) -> bool:
    """Whether every host's 95 % CI shares a point with every other's."""
    return max(s.ci_low for s in summaries) <= min(s.ci_high for s in summaries)


def claims_table(runs: Sequence[HostRun]) -> list[str]:
    by_host = [{r.claim: r for r in run.results} for run in runs]
    claims = list(dict.fromkeys(r.claim for run in runs for r in run.results))
    head = ["claim"]
    for run in runs:
        head += [f"{run.name}: verdict", f"{run.name}: ratio (95 % CI)"]
    head.append("spread of the ratio")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for claim in claims:
        results = [results.get(claim) for results in by_host]
        row = [claim]
        for result in results:
            row += [result.verdict if result else "(not run)", _ratio_cell(result)]
        ratios = [r.ratio for r in results if r is not None and r.ratio is not None]
        ratio_spread = spread(ratios)
        row.append("" if ratio_spread is None else f"{ratio_spread:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def spread_table(runs: Sequence[HostRun]) -> list[str]:
    head = ["claim", "variant", *[f"{run.name}: median (95 % CI, n)" for run in runs]]
    head += ["spread (max/min)", "CIs overlap"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = list(
        dict.fromkeys((r.claim, v) for run in runs for r in run.results for v in r.summaries)
    )
    for claim, variant in keys:
        summaries: list[Summary | None] = []
        for run in runs:
            result = next((r for r in run.results if r.claim == claim), None)
            summaries.append(None if result is None else result.summaries.get(variant))
        present = [s for s in summaries if s is not None]
        ratio = spread([s.median for s in present])
        row = [claim, variant, *[_summary_cell(s) for s in summaries]]
        row.append("" if ratio is None else f"{ratio:.2f}x")
        row.append("" if len(present) < 2 else ("yes" if overlap(present) else "no"))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render_markdown(
    runs: Sequence[HostRun],
    *,
    stack: str,
    serial: bool,
    load_host: str | None,
    failures: Mapping[str, str],
) -> str:
    how = (
        "one host after another (`--serial-hosts`)"
        if serial
        else "all hosts at the same time, one thread per host"
    )
    lines = [
        f"# twinlab fleet report: stack {stack}",
        "",
        f"Hosts measured: {how}. Load generated: "
        + (
            f"on the machine of host {load_host} (`twinlab:loadHost`), which every host "
            "shares (same boot id)."
            if load_host
            else "on each host itself."
        ),
        "",
    ]
    shared = sum(run.on_loopback for run in runs) > 1
    if shared and not serial:
        lines += [f"**Note.** {SHARED_MACHINE_NOTE}", ""]
    lines += [
        "| host | reached through | virtualization | samples | its own report |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.name} | {run.reached_through} | {run.virt_mode} | {len(run.samples)} "
            f"| hosts/{run.name}/{run.run_dir.name}/report.md |"
        )
    for host, why in failures.items():
        lines.append(f"| {host} | | | checks failed: {why} | |")
    lines += ["", "## Claims, host by host", "", *claims_table(runs), ""]
    lines += [
        "## Spread across hosts",
        "",
        "Each distribution a claim was judged on, per host: median, 95 % bootstrap CI and n; "
        "the spread is the largest host median over the smallest.",
        "",
        *spread_table(runs),
        "",
    ]
    return "\n".join(lines)


def write_fleet_report(
    run_dir: Path,
    runs: Sequence[HostRun],
    *,
    stack: str,
    serial: bool,
    load_host: str | None,
    failures: Mapping[str, str],
) -> Path:
    """samples.jsonl (every host's, tagged) and report.md in `run_dir`; returns the report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_samples(run_dir / "samples.jsonl", [s for run in runs for s in tagged(run)])
    report = run_dir / "report.md"
    text = render_markdown(runs, stack=stack, serial=serial, load_host=load_host, failures=failures)
    tmp = report.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(report)
    return report
