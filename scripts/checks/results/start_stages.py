"""R1's start-up stages in the report: a stacked bar per variant and a table per stage.

Reads the `start_stage_s` samples (scripts/checks/resources/start_time.py): per repeat, the
seconds from the create call to each stage. A bar stacks the stages' medians in stage order:
each segment runs from the previous stage's median to this one's (never below zero), so the
bar's top is the median first 200. The table gives every stage's n, median, 95 % CI and CV.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from scripts.checks.results.samples import Sample
from scripts.checks.results.stats import Summary, summarize

METRIC = "start_stage_s"
PLOT_FILE = "start_stages.png"
# One colour per stage name, whichever kind has it (a stage means the same on every kind).
STAGE_COLOURS = {
    "start_call": "#9ecae1",
    "qemu_running": "#c6dbef",
    "process_exec": "#3182bd",
    "kernel_entry": "#6baed6",
    "initramfs": "#a1d99b",
    "init": "#31a354",
    "app_listening": "#fd8d3c",
    "first_200": "#d62728",
}
OTHER_COLOUR = "#bdbdbd"

StageRows = dict[str, list[tuple[str, Summary]]]  # variant -> [(stage, summary)] in stage order


def stage_summaries(samples: Sequence[Sample]) -> StageRows:
    """Per variant (in the order first seen), each stage's summary, in stage order."""
    values: dict[str, dict[str, list[float]]] = {}
    order: dict[tuple[str, str], int] = {}
    for s in samples:
        if s.metric != METRIC or not isinstance(s.value, int | float):
            continue
        stage = str(s.metadata.get("stage", "?"))
        values.setdefault(s.variant, {}).setdefault(stage, []).append(float(s.value))
        index = s.metadata.get("stage_index", 0)
        order.setdefault((s.variant, stage), int(index) if isinstance(index, int) else 0)
    return {
        variant: [
            (stage, summarize(found))
            for stage, found in sorted(stages.items(), key=lambda item: order[(variant, item[0])])
        ]
        for variant, stages in values.items()
    }


def plot_start_stages(samples: Sequence[Sample], out_dir: Path) -> list[str]:
    """The stacked bar per variant, as PLOT_FILE in out_dir; [] when no stage was sampled."""
    rows = stage_summaries(samples)
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(8, 2.2 + 0.6 * len(rows)), dpi=100)
    labelled: set[str] = set()
    for position, stages in enumerate(rows.values()):
        bottom = 0.0
        for stage, summary in stages:
            width = max(0.0, summary.median - bottom)
            ax.barh(
                position,
                width,
                left=bottom,
                color=STAGE_COLOURS.get(stage, OTHER_COLOUR),
                edgecolor="white",
                label=stage if stage not in labelled else None,
            )
            labelled.add(stage)
            bottom = max(bottom, summary.median)
        ax.text(bottom, position, f" {bottom:.3g} s", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the create call (median of each stage)")
    smallest_n = min(summary.n for stages in rows.values() for _, summary in stages)
    ax.set_title(
        f"R1 start-up in stages (n >= {smallest_n} per stage; CIs in the report's table)",
        fontsize=9,
    )
    ax.margins(x=0.12)
    ax.legend(
        title="segment ends at",
        title_fontsize=7,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncol=4,
    )
    fig.tight_layout()
    fig.savefig(out_dir / PLOT_FILE)
    plt.close(fig)
    return [PLOT_FILE]


def _cells(summary: Summary) -> list[str]:
    cv = "n/a" if summary.cv is None else f"{100 * summary.cv:.1f} %"
    return [
        str(summary.n),
        f"{summary.median:.3g}",
        f"{summary.ci_low:.3g}-{summary.ci_high:.3g}",
        cv,
    ]


def stage_lines(samples: Sequence[Sample]) -> list[str]:
    """Markdown: the stage table ([] without stage samples)."""
    rows = stage_summaries(samples)
    if not rows:
        return []
    lines = [
        "## Start-up stages (R1)",
        "",
        "Seconds from the create call to each stage, per repeat (scripts/checks/resources/"
        "start_watch.py says how each stage is seen); the poller waits for the app's own "
        "listening mark.",
        "",
        "| variant | stage | n | median (s) | 95 % CI | CV |",
        "|---|---|---|---|---|---|",
    ]
    for variant, stages in rows.items():
        for stage, summary in stages:
            lines.append("| " + " | ".join([variant, stage, *_cells(summary)]) + " |")
    return lines


def stage_html(samples: Sequence[Sample]) -> str:
    """HTML: the same table ("" without stage samples)."""
    rows = stage_summaries(samples)
    if not rows:
        return ""
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in [variant, stage, *_cells(summary)])
        + "</tr>"
        for variant, stages in rows.items()
        for stage, summary in stages
    )
    return (
        "<h2>Start-up stages (R1)</h2><p>Seconds from the create call to each stage; the poller "
        "waits for the app's own listening mark.</p><table><tr><th>variant</th><th>stage</th>"
        "<th>n</th><th>median (s)</th><th>95 % CI</th><th>CV</th></tr>" + body + "</table>"
    )
