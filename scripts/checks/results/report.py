"""The side-by-side report: one row per claim, one column per deployed variant, Markdown and
HTML, with PNG plots.

Reads samples and claim results only; writes the whole run directory atomically (a temporary
directory renamed into place), so a crash never leaves a half-written report.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from scripts.checks.claims import BY_ID
from scripts.checks.results import isolation_table, memory_breakdown, neighbour_table
from scripts.checks.results.samples import Sample, VariantLabel, write_samples
from scripts.checks.results.start_stages import plot_start_stages, stage_html, stage_lines
from scripts.checks.results.stats import Summary, summarize
from scripts.checks.results.verdicts import ClaimResult, Samples

# One colour per plotted variant, in column order.
COLOURS = ("#2b8cbe", "#e34a33", "#31a354", "#756bb1", "#636363")
START_DEFINITION = "start = from the create call to the first HTTP 200 from the app"


def reference(claim: str) -> str:
    """The claim's published reference (scripts/checks/claims/)."""
    return BY_ID[claim].reference if claim in BY_ID else ""


def column(label: VariantLabel) -> str:
    """A variant's column heading: its name, and its kind where that differs."""
    return label.name if label.name == label.kind else f"{label.name} ({label.kind})"


def _mode_note(metadata: Mapping[str, object]) -> str:
    mode = metadata.get("virt_mode", "?")
    if mode == "tcg":
        return (
            "VMs ran under software emulation (TCG, KVM unusable on this host): the VM side is "
            "far slower than the published KVM figures."
        )
    return f"VMs ran with {mode}."


# (file, metric, title, group key, metadata filter): each a distribution plot per variant.
CHARTS: tuple[tuple[str, str, str, str | None, dict[str, str]], ...] = (
    ("start_time.png", "time_to_first_response_s", "Create to first HTTP 200 (s)", None, {}),
    ("memory.png", "memory_charged_mib", "Memory charged (MiB)", None, {}),
    ("size.png", "image_size_mib", "Image / disk size (MiB)", None, {}),
    ("throughput.png", "requests_per_s", "Closed-loop throughput (req/s)", "endpoint", {}),
    (
        "latency_p99.png",
        "latency_p99_ms",
        "Open-loop latency p99 at one offered rate (ms)",
        None,
        {"loop": "open"},
    ),
    (
        "density.png",
        "density_time_to_first_200_s",
        "R4: start to first 200 in the budget (s)",
        None,
        {},
    ),
)
# Variants whose medians differ by this factor or more are drawn on a log scale.
LOG_SCALE_RATIO = 10.0


def _distribution_title(summaries: Mapping[str, Summary]) -> str:
    """'container n=5, CI 0.5-0.7; vm n=5, CI 7-9': what each box rests on."""
    return "; ".join(
        f"{name} n={s.n}, 95 % CI {s.ci_low:.3g}-{s.ci_high:.3g}" for name, s in summaries.items()
    )


def _wants_log_scale(summaries: Mapping[str, Summary]) -> bool:
    medians = [s.median for s in summaries.values() if s.median > 0]
    return len(medians) > 1 and max(medians) / min(medians) >= LOG_SCALE_RATIO


# pyplot keeps global state (current figure, mathtext parser) and is not thread-safe: the hosts
# of a fleet (scripts/checks/fleet.py) write their reports from parallel threads.
PLOTTING = threading.Lock()


def _plots(samples: Samples, out_dir: Path) -> list[str]:
    """Per chart, one panel per group (endpoint): every sample as a dot over a box per variant,
    n and the 95 % CI of each median in the panel's title, log scale where the variants'
    medians differ by LOG_SCALE_RATIO or more. Returns the file names written."""
    written = []
    variants = samples.variants()
    for file_name, metric, title, group_key, where in CHARTS:
        chosen = [
            s
            for s in samples.all
            if s.metric == metric and all(s.metadata.get(k) == v for k, v in where.items())
        ]
        groups = sorted({str(s.metadata.get(group_key, "")) if group_key else "" for s in chosen})
        if not chosen or not variants:
            continue
        fig, axes = plt.subplots(
            1, len(groups), figsize=(4.2 * len(groups) + 1.5, 3.8), dpi=100, squeeze=False
        )
        for ax, group in zip(axes[0], groups, strict=True):
            values: dict[str, list[float]] = {}
            for label in variants:
                found = [
                    float(s.value)
                    for s in chosen
                    if s.variant == label.name
                    and (group_key is None or str(s.metadata.get(group_key, "")) == group)
                    and isinstance(s.value, int | float)
                ]
                if found:
                    values[label.name] = found
            if not values:
                ax.set_visible(False)
                continue
            summaries = {name: summarize(found) for name, found in values.items()}
            names = list(values)
            ax.boxplot([values[n] for n in names], widths=0.5, showfliers=False)
            for index, name in enumerate(names, start=1):
                colour = COLOURS[(index - 1) % len(COLOURS)]
                found = values[name]
                # Spread the dots sideways a little (deterministic) so equal values stay visible.
                offsets = [((k % 5) - 2) * 0.04 for k in range(len(found))]
                ax.scatter([index + o for o in offsets], found, s=14, color=colour, zorder=3)
            ax.set_xticks(range(1, len(names) + 1), names)
            if _wants_log_scale(summaries):
                ax.set_yscale("log")
            heading = f"{title}{': ' + group if group else ''}"
            ax.set_title(f"{heading}\n{_distribution_title(summaries)}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / file_name)
        plt.close(fig)
        written.append(file_name)
    return written


def _ratio_text(result: ClaimResult) -> str:
    if result.ratio is None:
        return ""
    if result.ratio_ci is None:
        return f"{result.ratio:.3g}"
    low, high = result.ratio_ci
    return f"{result.ratio:.3g} (95 % CI {low:.3g}-{high:.3g})"


def distribution_lines(results: Sequence[ClaimResult]) -> list[str]:
    """Markdown: per claim and variant, n, median, 95 % CI and CV of the figure judged."""
    lines = [
        "## Distributions",
        "",
        "Every figure a verdict rests on: n repeats, median, 95 % bootstrap CI of the median, "
        "coefficient of variation and range. A verdict holds only when the whole CI of the ratio "
        "of medians clears the threshold.",
        "",
        "| claim | variant | n | median | 95 % CI | CV | range |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for name, s in result.summaries.items():
            cv = "n/a" if s.cv is None else f"{100 * s.cv:.1f} %"
            lines.append(
                f"| {result.claim} | {name} | {s.n} | {s.median:.4g} | "
                f"{s.ci_low:.4g}-{s.ci_high:.4g} | {cv} | {s.minimum:.4g}-{s.maximum:.4g} |"
            )
    return lines


def _timing_lines(metadata: Mapping[str, object]) -> list[str]:
    times = metadata.get("group_times_s")
    return [f"Check groups' wall time: {times}.", ""] if times else []


def render_markdown(
    results: Sequence[ClaimResult],
    metadata: Mapping[str, object],
    variants: Sequence[VariantLabel],
    sections: Sequence[str] = (),
) -> str:
    """`sections`: further Markdown lines after the distributions (isolation and neighbour
    tables, memory breakdown, start-up stages)."""
    headings = [column(label) for label in variants]
    lines = [
        "# twinlab: " + " vs ".join(headings or ["container", "VM"]) + ", measured",
        "",
        f"Run {metadata.get('run_id', '?')}, host kernel {metadata.get('host_kernel', '?')}, "
        f"virtualization mode **{metadata.get('virt_mode', '?')}**, app "
        f"{metadata.get('app_version', '?')}.",
        "",
        _mode_note(metadata) + f" ({START_DEFINITION}.)",
        "",
        *_timing_lines(metadata),
        "| "
        + " | ".join(["claim", "verdict", *headings, "ratio", "detail", "published reference"])
        + " |",
        "|" + "---|" * (len(headings) + 5),
    ]
    for result in results:
        ratio = _ratio_text(result)
        cells = [
            result.claim,
            f"**{result.verdict}**",
            *[result.cell(label.name) for label in variants],
            ratio,
            result.summary,
            reference(result.claim),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    lines += ["", *distribution_lines(results), "", *sections]
    return "\n".join(lines).rstrip("\n") + "\n"


def distribution_rows(results: Sequence[ClaimResult]) -> str:
    rows = []
    for result in results:
        for name, s in result.summaries.items():
            cv = "n/a" if s.cv is None else f"{100 * s.cv:.1f} %"
            cells = [
                result.claim,
                name,
                str(s.n),
                f"{s.median:.4g}",
                f"{s.ci_low:.4g}-{s.ci_high:.4g}",
                cv,
                f"{s.minimum:.4g}-{s.maximum:.4g}",
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "\n".join(rows)


def render_html(
    results: Sequence[ClaimResult],
    metadata: Mapping[str, object],
    plots: Sequence[str],
    variants: Sequence[VariantLabel],
    sections_html: str = "",
) -> str:
    colour = {"holds": "#1a7f37", "does not hold": "#cf222e", "inconclusive": "#9a6700"}
    headings = [column(label) for label in variants]
    rows = []
    for result in results:
        ratio = _ratio_text(result)
        cells = [*[result.cell(label.name) for label in variants], ratio, result.summary]
        rows.append(
            f"<tr><td><b>{html.escape(result.claim)}</b></td>"
            f'<td style="color:{colour[result.verdict]}"><b>{result.verdict}</b></td>'
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            + f"<td class=ref>{html.escape(reference(result.claim))}</td></tr>"
        )
    images = "".join(f'<img src="{html.escape(name)}" alt="{html.escape(name)}">' for name in plots)
    title = "twinlab: " + " vs ".join(headings or ["container", "VM"]) + ", measured"
    heading_cells = "".join(f"<th>{html.escape(heading)}</th>" for heading in headings)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
th, td {{ border: 1px solid #d0d7de; padding: 6px; vertical-align: top; text-align: left; }}
th {{ background: #f6f8fa; }} td.ref {{ color: #57606a; font-size: 12px; }}
img {{ margin: 8px; border: 1px solid #d0d7de; }}
</style></head><body>
<h1>{title}</h1>
<p>Run {html.escape(str(metadata.get("run_id", "?")))}, host kernel
{html.escape(str(metadata.get("host_kernel", "?")))}, virtualization mode
<b>{html.escape(str(metadata.get("virt_mode", "?")))}</b>, app
{html.escape(str(metadata.get("app_version", "?")))}.</p>
<p>{html.escape(_mode_note(metadata))} ({START_DEFINITION}.)</p>
{"".join(f"<p>{html.escape(line)}</p>" for line in _timing_lines(metadata) if line)}
<table><tr><th>claim</th><th>verdict</th>{heading_cells}<th>ratio</th>
<th>detail</th><th>published reference</th></tr>
{"".join(rows)}
</table>
<h2>Distributions</h2>
<p>n repeats, median, 95 % bootstrap CI of the median, CV and range of every figure a verdict
rests on; a verdict holds only when the whole CI of the ratio of medians clears the threshold.</p>
<table><tr><th>claim</th><th>variant</th><th>n</th><th>median</th><th>95 % CI</th><th>CV</th>
<th>range</th></tr>
{distribution_rows(results)}
</table>
{sections_html}
<h2>Plots</h2>{images}
</body></html>
"""


def write_run(
    run_dir: Path,
    samples: Sequence[Sample],
    results: Sequence[ClaimResult],
    metadata: Mapping[str, object],
) -> Path:
    """Write samples.jsonl, report.md, report.html and plots into `run_dir`, all or nothing."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
    try:
        write_samples(staging / "samples.jsonl", samples)
        lookup = Samples(samples)
        variants = lookup.variants()
        with PLOTTING:
            plots = _plots(lookup, staging) + plot_start_stages(samples, staging)
            bars = memory_breakdown.breakdown(lookup)
            breakdown_plot = memory_breakdown.plot(bars, staging)
        plots += [breakdown_plot] if breakdown_plot else []
        sections = [
            *isolation_table.markdown(lookup),
            "",
            *neighbour_table.markdown(results, lookup),
            "",
            *memory_breakdown.markdown_lines(bars),
            "",
            *stage_lines(samples),
        ]
        (staging / "report.md").write_text(
            render_markdown(results, metadata, variants, sections), encoding="utf-8"
        )
        (staging / "report.html").write_text(
            render_html(
                results,
                metadata,
                plots,
                variants,
                isolation_table.html_section(lookup)
                + neighbour_table.html_section(results, lookup)
                + memory_breakdown.html_table(bars)
                + stage_html(samples),
            ),
            encoding="utf-8",
        )
        if run_dir.exists():
            shutil.rmtree(run_dir)
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir
