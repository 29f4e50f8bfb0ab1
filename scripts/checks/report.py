"""The side-by-side report: one row per claim, Markdown and HTML, with PNG plots.

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

from scripts.checks.samples import Sample, write_samples
from scripts.checks.verdicts import ClaimResult, Samples

# Published reference figures (../shared/claims.md), measured with KVM on bare metal.
REFERENCES: dict[str, str] = {
    "A1": "Textbook: containers share the host kernel; a VM boots its own.",
    "A2": "Textbook: a container packages the app and its dependencies, not a full OS.",
    "R1": "Container start ~100 ms via the runtime, +~250 ms Docker daemon (van Rijn & "
    "Rellermeyer 2021); Firecracker microVM boot to init < 125 ms (Agache et al. 2020); "
    "LightVM 2.3 ms (Manco et al. 2017).",
    "R2": "Firecracker: < 5 MiB memory overhead per microVM (Agache et al. 2020).",
    "R3": "No single figure: depends on the guest OS image.",
    "R4": "Firecracker: up to 150 microVMs started per second per host; LightVM: thousands "
    "per server.",
    "P1": "KVM: CPU-bound Linpack 2-17 % slower, random I/O about half the IOPS; Docker NAT "
    "roughly doubles network latency (Felter et al. 2015).",
    "I1": "Textbook: process-level isolation on a shared kernel.",
    "I2": "Textbook: hardware-virtualized isolation with its own kernel.",
    "I3": "Textbook: container isolation holds only if managed properly.",
    "U1": "Textbook: a VM can run another kernel or OS; a container cannot.",
}
START_DEFINITION = "start = from the create call to the first HTTP 200 from the app"


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
        if not groups:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        width = 0.38
        for offset, variant, color in (
            (-width / 2, "container", "#2b8cbe"),
            (width / 2, "vm", "#e34a33"),
        ):
            heights = []
            for group in groups:
                where = {group_key: group} if group_key else {}
                heights.append(samples.median(metric, variant=variant, **where) or 0.0)
            positions = [index + offset for index in range(len(groups))]
            ax.bar(positions, heights, width, label=variant, color=color)
        ax.set_xticks(range(len(groups)), groups or [""])
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / file_name)
        plt.close(fig)
        written.append(file_name)
    return written


def render_markdown(results: Sequence[ClaimResult], metadata: Mapping[str, object]) -> str:
    lines = [
        "# twinlab: container vs VM, measured",
        "",
        f"Run {metadata.get('run_id', '?')}, host kernel {metadata.get('host_kernel', '?')}, "
        f"virtualization mode **{metadata.get('virt_mode', '?')}**, app "
        f"{metadata.get('app_version', '?')}.",
        "",
        _mode_note(metadata) + f" ({START_DEFINITION}.)",
        "",
        "| claim | verdict | container | VM | ratio | detail | published reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        ratio = "" if result.ratio is None else f"{result.ratio:.2f}"
        cells = [
            result.claim,
            f"**{result.verdict}**",
            result.container,
            result.vm,
            ratio,
            result.summary,
            REFERENCES.get(result.claim, ""),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def render_html(
    results: Sequence[ClaimResult], metadata: Mapping[str, object], plots: Sequence[str]
) -> str:
    colour = {"holds": "#1a7f37", "does not hold": "#cf222e", "inconclusive": "#9a6700"}
    rows = []
    for result in results:
        ratio = "" if result.ratio is None else f"{result.ratio:.2f}"
        cells = [result.container, result.vm, ratio, result.summary]
        rows.append(
            f"<tr><td><b>{html.escape(result.claim)}</b></td>"
            f'<td style="color:{colour[result.verdict]}"><b>{result.verdict}</b></td>'
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            + f"<td class=ref>{html.escape(REFERENCES.get(result.claim, ''))}</td></tr>"
        )
    images = "".join(f'<img src="{html.escape(name)}" alt="{html.escape(name)}">' for name in plots)
    title = "twinlab: container vs VM, measured"
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
<table><tr><th>claim</th><th>verdict</th><th>container</th><th>VM</th><th>ratio</th>
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
        plots = _plots(Samples(samples), staging)
        (staging / "report.md").write_text(render_markdown(results, metadata), encoding="utf-8")
        (staging / "report.html").write_text(
            render_html(results, metadata, plots), encoding="utf-8"
        )
        if run_dir.exists():
            shutil.rmtree(run_dir)
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir
