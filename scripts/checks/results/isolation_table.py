"""The report's isolation section: one row per probe, one column per variant, each cell green
(isolated), red (weak: the host is exposed) or grey (inconclusive, not measurable here, or not
applicable to the kind), with its CIS Docker Benchmark item; then one line per weakened
container saying what I1 flagged on it.

Misconfiguration findings come from probes/findings.py (`isolation_table`, its cells and
colours); the baseline probes of I1/I2/I3 are read here with the same cells, each by what it
says about the host: a reading that only concerns a kernel of the target's own (a VM's guest) is
"not applicable". Reads samples only.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from scripts.checks.probes import attack_surface, findings
from scripts.checks.results.samples import Value, VariantLabel
from scripts.checks.results.verdicts import Samples, container_isolation_problems, weakened

NOT_APPLICABLE = "not applicable"
HOST_KERNEL_KINDS = ("container", "sandbox")  # the host's kernel, or gVisor's in front of it


@dataclass(frozen=True)
class BaselineRow:
    metric: str
    cis: str  # "-" where no CIS item fits: the textbook property itself
    weak: Callable[[Value], bool]
    kinds: tuple[str, ...]  # the kinds the reading says something about the host for


BASELINE_ROWS = (
    BaselineRow(
        "host_processes_visible", "5.16", lambda v: v is True, ("container", "sandbox", "vm")
    ),
    BaselineRow(
        "host_kernel_state_visible", "-", lambda v: v is True, ("container", "sandbox", "vm")
    ),
    BaselineRow("kernel_modules_visible", "-", lambda v: v is True, ("vm",)),
    BaselineRow("cap_full", "5.4, 5.5", lambda v: v is True, HOST_KERNEL_KINDS),
    BaselineRow("seccomp_mode", "5.22", lambda v: v != 2, ("container",)),
    BaselineRow("can_write_sysctl", "5.5", lambda v: v is True, ("container",)),
    BaselineRow("module_load_reached_host", "-", lambda v: v is True, ("vm",)),
    BaselineRow("sysctl_write_reached_host", "-", lambda v: v is True, ("vm",)),
)


def columns(samples: Samples) -> list[tuple[VariantLabel, str]]:
    """(variant, its probed target) for every variant probed, the weakened containers aside."""
    found = []
    for label in samples.variants():
        targets = [
            t
            for t in samples.targets(label.name)
            if not weakened(samples, t) and samples.one("seccomp_mode", target=t) is not None
        ]
        if targets:
            found.append((label, targets[0]))
    return found


def _baseline_cell(
    row: BaselineRow, samples: Samples, label: VariantLabel, target: str
) -> findings.Cell:
    value = samples.one(row.metric, target=target)
    if label.kind not in row.kinds:
        why = "the guest's own kernel" if label.kind == "vm" else f"not probed on a {label.kind}"
        return findings.Cell(NOT_APPLICABLE, row.cis, "", why)
    if value is None:
        return findings.Cell(findings.INCONCLUSIVE, row.cis, "", "not measured")
    state = "weak" if row.weak(value) else "ok"
    return findings.Cell(state, row.cis, findings.HOST_SCOPE, f"{row.metric}={value}")


def _attack_surface_cell(samples: Samples, target: str) -> findings.Cell | None:
    found = [s for s in samples.all if s.metric == attack_surface.METRIC and s.target == target]
    if not found:
        return None
    sample = found[-1]
    if sample.value == findings.INCONCLUSIVE:
        return findings.Cell(findings.INCONCLUSIVE, "-", "", str(sample.metadata.get("reason", "")))
    return findings.Cell(NOT_APPLICABLE, "-", "", f"{sample.value} host kernel functions reached")


def rows(samples: Samples) -> list[tuple[str, dict[str, findings.Cell]]]:
    """(probe, {variant name: cell}) for every baseline probe and finding measured."""
    chosen = columns(samples)
    table: list[tuple[str, dict[str, findings.Cell]]] = []
    for row in BASELINE_ROWS:
        cells = {label.name: _baseline_cell(row, samples, label, t) for label, t in chosen}
        if any(samples.one(row.metric, target=t) is not None for _, t in chosen):
            table.append((row.metric, cells))
    by_target = findings.isolation_table(samples.all)
    for metric, by_url in by_target.items():
        cells = {label.name: by_url[t] for label, t in chosen if t in by_url}
        if cells:
            table.append((metric, cells))
    surface = {
        label.name: cell for label, t in chosen if (cell := _attack_surface_cell(samples, t))
    }
    if surface:
        table.append((attack_surface.METRIC, surface))
    return table


def weakened_lines(samples: Samples) -> list[tuple[bool, str]]:
    """(flagged, line) per weakened container: what I1 reports on it, with the CIS items."""
    lines = []
    for target in sorted({s.target for s in samples.all if s.metadata.get("weakened") is True}):
        name = target.removeprefix("docker://").split("?")[0]
        how = next(
            (
                s.metadata["weakening"]
                for s in samples.all
                if s.target == target and "weakening" in s.metadata
            ),
            None,
        )
        label = f"{name} ({how})" if how else name
        problems = container_isolation_problems(samples, target)
        if problems:
            lines.append((True, f"weakened: {label} -> flagged by I1: {'; '.join(problems)}"))
        else:
            lines.append((False, f"weakened: {label} -> NOT flagged by I1"))
    return lines


def _text(cell: findings.Cell) -> str:
    if cell.state == NOT_APPLICABLE:
        return f"{NOT_APPLICABLE} ({cell.detail})"
    return cell.text


COLOURS = {"green": "#1a7f37", "red": "#cf222e", "grey": "#6e7781"}


def _colour(cell: findings.Cell) -> str:
    return "grey" if cell.state == NOT_APPLICABLE else cell.colour


def markdown(samples: Samples) -> list[str]:
    table, weak = rows(samples), weakened_lines(samples)
    if not table and not weak:
        return []
    names = [label.name for label, _ in columns(samples)]
    lines = [
        "## Isolation",
        "",
        "One row per probe, one column per variant: green = isolated, red = weak (the host is "
        "exposed), grey = inconclusive, not measurable here or not applicable to the kind; "
        "each with its CIS Docker Benchmark v1.6.0 item ('-': the textbook property itself).",
        "",
        "| probe | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for metric, cells in table:
        texts = [f"{_colour(cells[n])}: {_text(cells[n])}" if n in cells else "" for n in names]
        lines.append(f"| {metric} | " + " | ".join(t.replace("|", "/") for t in texts) + " |")
    if weak:
        lines += ["", "Weakened controls (each a container weakened on purpose):", ""]
        lines += [f"- {line}" if flagged else f"- **{line}**" for flagged, line in weak]
    return lines


def html_section(samples: Samples) -> str:
    table, weak = rows(samples), weakened_lines(samples)
    if not table and not weak:
        return ""
    names = [label.name for label, _ in columns(samples)]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for metric, cells in table:
        tds = "".join(
            f'<td style="color:{COLOURS[_colour(cells[n])]}">{html.escape(_text(cells[n]))}</td>'
            if n in cells
            else "<td></td>"
            for n in names
        )
        body.append(f"<tr><td>{html.escape(metric)}</td>{tds}</tr>")
    items = "".join(
        f'<li style="color:{COLOURS["green" if flagged else "red"]}">{html.escape(line)}</li>'
        for flagged, line in weak
    )
    return (
        "<h2>Isolation</h2><p>green = isolated, red = weak (the host is exposed), grey = "
        "inconclusive, not measurable here or not applicable; CIS Docker Benchmark v1.6.0 items."
        f"</p><table><tr><th>probe</th>{head}</tr>{''.join(body)}</table>"
        + (f"<p>Weakened controls:</p><ul>{items}</ul>" if items else "")
    )
