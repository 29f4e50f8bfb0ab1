"""The report's noisy-neighbour section (N1): the app's slowdown per stressor and variant, with
its 95 % CI and n, and the verdict per stressor with its reason. Reads the N1 result only (its
parts, one per stressor, are judged in scripts/checks/claims/n1.py)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from scripts.checks.results.samples import Sample
from scripts.checks.results.verdicts import ClaimResult, Samples

CLAIM = "N1"
NOTE = (
    "Slowdown = the app's open-loop latency with a sibling of the same variant running the "
    "stressor, over its latency with the sibling idle, paired by repeat; the sibling runs on a "
    "CPU set disjoint from the app's. The verdict per stressor judges the container's p99 "
    "slowdown over the VM's (a VM neighbour should disturb less)."
)


def _n1(results: Sequence[ClaimResult]) -> ClaimResult | None:
    return next((r for r in results if r.claim == CLAIM and r.parts), None)


def _placement(samples: Sequence[Sample]) -> str:
    """Where the app, the neighbour and the load generator ran, from the samples."""
    seen = {
        (
            s.variant,
            s.metadata.get("app_cpus"),
            s.metadata.get("neighbour_cpus"),
            s.metadata.get("generator_cpus"),
            s.metadata.get("rate_per_s"),
        )
        for s in samples
        if s.metric == "neighbour_latency_ms" and "app_cpus" in s.metadata
    }
    return "; ".join(
        f"{variant}: app on CPU {app}, neighbour on {neighbour}, vegeta on {generator}, "
        f"{rate} req/s"
        for variant, app, neighbour, generator, rate in sorted(seen, key=str)
    )


def markdown(results: Sequence[ClaimResult], samples: Samples) -> list[str]:
    n1 = _n1(results)
    if n1 is None:
        return []
    names = [label.name for label in samples.variants()]
    lines = [
        "## Noisy neighbour (N1)",
        "",
        NOTE + f" Placement: {_placement(samples.all)}.",
        "",
        "| stressor | " + " | ".join(names) + " | verdict | why |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for part in n1.parts:
        cells = [part.cell(name) for name in names]
        row = [part.claim.removeprefix("N1 "), *cells, f"**{part.verdict}**", part.summary]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return lines


def html_section(results: Sequence[ClaimResult], samples: Samples) -> str:
    n1 = _n1(results)
    if n1 is None:
        return ""
    colour = {"holds": "#1a7f37", "does not hold": "#cf222e", "inconclusive": "#9a6700"}
    names = [label.name for label in samples.variants()]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for part in n1.parts:
        cells = "".join(f"<td>{html.escape(part.cell(n))}</td>" for n in names)
        rows.append(
            f"<tr><td>{html.escape(part.claim.removeprefix('N1 '))}</td>{cells}"
            f'<td style="color:{colour[part.verdict]}"><b>{part.verdict}</b></td>'
            f"<td>{html.escape(part.summary)}</td></tr>"
        )
    return (
        f"<h2>Noisy neighbour (N1)</h2><p>{html.escape(NOTE)} Placement: "
        f"{html.escape(_placement(samples.all))}.</p><table><tr><th>stressor</th>{head}"
        f"<th>verdict</th><th>why</th></tr>{''.join(rows)}</table>"
    )
