"""R2's memory breakdown in the report: what each variant's memory is made of.

A VM's reading splits into guest RAM touched, TCG's translation cache and QEMU with its devices
(samples `memory_part_mib`, scripts/checks/parsers/qemu_memory.py); a container's is one piece
(its cgroup, `memory_charged_mib`). One stacked bar per variant, each segment the median of
its readings, and a table with n and the 95 % CI per part. The TCG cache is what software
emulation adds: a VM under KVM has no such cache, so its figure is the rest.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from scripts.checks.results.stats import Summary, summarize
from scripts.checks.results.verdicts import Samples

# One sample per part of a memory reading (metadata `part`), written by resources/usage.py.
PART_METRIC = "memory_part_mib"
WHOLE_METRIC = "memory_charged_mib"
FILE_NAME = "memory_breakdown.png"
# Parts in stacking order, with what the legend and the table call them: the TCG cache on top,
# so the edge below it is what the same VM would take under KVM.
PARTS = {
    "guest_ram": "guest RAM touched",
    "qemu_other": "QEMU + devices",
    "tcg_cache": "TCG translation cache",
}
WHOLE = "whole (cgroup)"
COLOURS = {"guest_ram": "#2b8cbe", "tcg_cache": "#e34a33", "qemu_other": "#fdae6b"}
WHOLE_COLOUR = "#31a354"


@dataclass(frozen=True)
class Bar:
    """One variant's bar: its segments (part -> distribution of its readings), bottom first."""

    variant: str
    segments: dict[str, Summary]

    @property
    def total_mib(self) -> float:
        return sum(s.median for s in self.segments.values())


def breakdown(samples: Samples) -> list[Bar]:
    """One bar per variant with memory readings: its parts if it has them, else one segment."""
    bars = []
    for label in samples.variants():
        segments = {}
        for part in PARTS:
            values = samples.numbers(PART_METRIC, variant=label.name, part=part)
            if values:
                segments[part] = summarize(values)
        if not segments:
            whole = samples.numbers(WHOLE_METRIC, variant=label.name)
            if not whole:
                continue
            segments[WHOLE] = summarize(whole)
        bars.append(Bar(label.name, segments))
    return bars


def plot(bars: list[Bar], out_dir: Path) -> str | None:
    """The stacked bars as a PNG in `out_dir`; its file name, or None with nothing to draw."""
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(1.6 * len(bars) + 4.5, 4.2), dpi=100)
    drawn: set[str] = set()
    for index, bar in enumerate(bars):
        bottom = 0.0
        for part, summary in bar.segments.items():
            name = PARTS.get(part, part)
            ax.bar(
                index,
                summary.median,
                bottom=bottom,
                width=0.6,
                color=COLOURS.get(part, WHOLE_COLOUR),
                label=name if name not in drawn else None,
            )
            drawn.add(name)
            if part == "tcg_cache":
                ax.text(index + 0.32, bottom, f"without it (as KVM): {bottom:.0f}", fontsize=7)
            bottom += summary.median
        ax.text(index, bottom, f"{bottom:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(bars)), [bar.variant for bar in bars])
    ax.set_xlim(-0.5, len(bars) + 0.2)  # room for the "as KVM" note right of the last bar
    ax.set_ylabel("MiB (median of the readings)")
    n = min(s.n for bar in bars for s in bar.segments.values())
    ax.set_title(
        f"R2: what the memory is made of (n={n} readings each; VM parts from QEMU's smaps PSS, "
        "containers from their cgroup)",
        fontsize=8,
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / FILE_NAME)
    plt.close(fig)
    return FILE_NAME


def markdown_lines(bars: list[Bar]) -> list[str]:
    """The breakdown as a table (median, 95 % CI, n per part), and what the TCG cache costs."""
    if not bars:
        return []
    lines = [
        "## Memory breakdown (R2)",
        "",
        "Median MiB of the readings with its 95 % CI. A VM's parts come from its QEMU process's "
        "/proc/PID/smaps (PSS: guest RAM touched, TCG's translated-code cache, QEMU itself with "
        "its devices and libraries); a container is one piece, its cgroup. n counts readings "
        "of one deployed instance over the idle window, not instances: each reading shows how "
        "steady that instance is, not how instances differ.",
        "",
        "| variant | part | n | median MiB | 95 % CI |",
        "|---|---|---|---|---|",
    ]
    for bar in bars:
        for part, s in bar.segments.items():
            lines.append(
                f"| {bar.variant} | {PARTS.get(part, part)} | {s.n} | {s.median:.1f} | "
                f"{s.ci_low:.1f}-{s.ci_high:.1f} |"
            )
    lines.append("")
    lines += [cost_sentence(bar) for bar in bars if "tcg_cache" in bar.segments]
    return lines


def cost_sentence(bar: Bar) -> str:
    """What software emulation costs this VM: its cache, and the figure a KVM VM would show."""
    cache = bar.segments["tcg_cache"].median
    total = bar.total_mib
    share = 100 * cache / total if total else 0.0
    return (
        f"- {bar.variant}: the TCG translation cache holds {cache:.1f} MiB, {share:.0f} % of "
        f"its {total:.1f} MiB; under KVM there is no such cache, so the same VM would be "
        f"about {total - cache:.1f} MiB (guest RAM + QEMU). Set its size with "
        "`twinlab:tcgCacheMiB`."
    )


def html_table(bars: list[Bar]) -> str:
    """The same table and sentences as markdown_lines, for the HTML report."""
    if not bars:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(bar.variant)}</td><td>{html.escape(PARTS.get(part, part))}</td>"
        f"<td>{s.n}</td><td>{s.median:.1f}</td><td>{s.ci_low:.1f}-{s.ci_high:.1f}</td></tr>"
        for bar in bars
        for part, s in bar.segments.items()
    )
    notes = "".join(
        f"<li>{html.escape(cost_sentence(bar)[2:])}</li>"
        for bar in bars
        if "tcg_cache" in bar.segments
    )
    return (
        "<h2>Memory breakdown (R2)</h2><table><tr><th>variant</th><th>part</th><th>n</th>"
        f"<th>median MiB</th><th>95 % CI</th></tr>{rows}</table><ul>{notes}</ul>"
    )
