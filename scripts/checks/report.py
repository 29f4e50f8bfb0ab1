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
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from scripts.checks.claims import BY_ID
from scripts.checks.samples import Sample, VariantLabel, write_samples
from scripts.checks.verdicts import ClaimResult, Samples

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


def _plots(samples: Samples, out_dir: Path) -> list[str]:
    """Bar charts comparing both variants; returns the file names written."""
    charts = [
        ("start_time.png", "time_to_first_response_s", "Create to first HTTP 200 (s)", None),
        ("memory.png", "memory_charged_mib", "Memory charged (MiB)", None),
        ("size.png", "image_size_mib", "Image / disk size (MiB)", None),
        ("throughput.png", "requests_per_s", "Throughput (req/s)", "endpoint"),
        ("latency_p99.png", "latency_p99_ms", "Latency p99 (ms)", "endpoint"),
    ]
    written = []
    for file_name, metric, title, group_key in charts:
        groups = sorted(
            {
                str(s.metadata.get(group_key, "")) if group_key else ""
                for s in samples.all
                if s.metric == metric
            }
        )
        variants = samples.variants()
        if not groups or not variants:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        width = 0.8 / max(1, len(variants))
        for index, label in enumerate(variants):
            offset = (index - (len(variants) - 1) / 2) * width
            heights = []
            for group in groups:
                where = {group_key: group} if group_key else {}
                heights.append(samples.median(metric, variant=label.name, **where) or 0.0)
            positions = [place + offset for place in range(len(groups))]
            colour = COLOURS[index % len(COLOURS)]
            ax.bar(positions, heights, width, label=column(label), color=colour)
        ax.set_xticks(range(len(groups)), groups or [""])
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / file_name)
        plt.close(fig)
        written.append(file_name)
    return written


def render_markdown(
    results: Sequence[ClaimResult],
    metadata: Mapping[str, object],
    variants: Sequence[VariantLabel],
) -> str:
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
        "| "
        + " | ".join(["claim", "verdict", *headings, "ratio", "detail", "published reference"])
        + " |",
        "|" + "---|" * (len(headings) + 5),
    ]
    for result in results:
        ratio = "" if result.ratio is None else f"{result.ratio:.2f}"
        cells = [
            result.claim,
            f"**{result.verdict}**",
            *[result.cell(label.name) for label in variants],
            ratio,
            result.summary,
            reference(result.claim),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def render_html(
    results: Sequence[ClaimResult],
    metadata: Mapping[str, object],
    plots: Sequence[str],
    variants: Sequence[VariantLabel],
) -> str:
    colour = {"holds": "#1a7f37", "does not hold": "#cf222e", "inconclusive": "#9a6700"}
    headings = [column(label) for label in variants]
    rows = []
    for result in results:
        ratio = "" if result.ratio is None else f"{result.ratio:.2f}"
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
<table><tr><th>claim</th><th>verdict</th>{heading_cells}<th>ratio</th>
<th>detail</th><th>published reference</th></tr>
{"".join(rows)}
</table>
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
        plots = _plots(lookup, staging)
        (staging / "report.md").write_text(
            render_markdown(results, metadata, variants), encoding="utf-8"
        )
        (staging / "report.html").write_text(
            render_html(results, metadata, plots, variants), encoding="utf-8"
        )
        if run_dir.exists():
            shutil.rmtree(run_dir)
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir
