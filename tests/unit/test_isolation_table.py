"""The report's isolation table and noisy-neighbour table, from hand-made samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.thresholds import thresholds_for
from scripts.checks.claims import evaluate
from scripts.checks.neighbours.stressors import STRESSORS
from scripts.checks.results import isolation_table
from scripts.checks.results.report import write_run
from scripts.checks.results.samples import Sample, Value
from scripts.checks.results.verdicts import Samples
from tests.unit.test_neighbours import neighbour_runs

pytestmark = pytest.mark.unit
C, V, W = "docker://app", "ssh://twin@127.0.0.1:12222", "docker://twinlab-dev-weakened"
KINDS = {C: ("container", "container"), W: ("container", "container"), V: ("vm", "vm")}


def s(metric: str, value: Value, target: str, **meta: Value) -> Sample:
    variant, kind = KINDS[target]
    return Sample(metric, value, "", target, variant, ("I1",), dict(meta), kind=kind)


def finding(metric: str, value: Value, target: str, cis: str, scope: str, **meta: Value) -> Sample:
    return s(metric, value, target, cis=cis, scope=scope, finding=metric.replace("_", " "), **meta)


def probed() -> list[Sample]:
    weak: dict[str, Value] = {"weakened": True, "weakening": "--privileged --pid=host"}
    return [
        s("host_processes_visible", False, C),
        s("host_kernel_state_visible", True, C),
        s("cap_full", False, C),
        s("seccomp_mode", 2, C),
        s("can_write_sysctl", False, C),
        finding("runtime_socket_reachable", False, C, "5.32", "host"),
        finding("lsm_unconfined", "inconclusive", C, "5.2", "host", reason="no LSM in this kernel"),
        s("host_processes_visible", False, V),
        s("host_kernel_state_visible", False, V),
        s("seccomp_mode", 0, V),
        s("can_write_sysctl", True, V),
        s("module_load_reached_host", False, V),
        finding("runtime_socket_reachable", True, V, "5.32", "guest-only"),
        s("host_processes_visible", True, W, **weak),
        s("cap_full", True, W, **weak),
        s("seccomp_mode", 0, W, **weak),
        finding("host_pid_namespace_shared", True, W, "5.16", "host", **weak),
    ]


def cell_text(rows: list[tuple[str, dict[str, object]]], metric: str, variant: str) -> str:
    cells = dict(rows)[metric]
    return str(cells[variant])


def test_one_row_per_probe_one_column_per_variant_the_weakened_container_aside() -> None:
    lookup = Samples(probed())
    assert [label.name for label, _ in isolation_table.columns(lookup)] == ["container", "vm"]
    rows = dict(isolation_table.rows(lookup))
    assert rows["host_processes_visible"]["container"].colour == "green"
    assert rows["host_kernel_state_visible"]["container"].colour == "red"  # the shared kernel
    assert rows["host_kernel_state_visible"]["vm"].colour == "green"
    # The guest's own seccomp and sysctl say nothing about the host.
    assert rows["seccomp_mode"]["vm"].state == isolation_table.NOT_APPLICABLE
    assert rows["runtime_socket_reachable"]["vm"].text == "weak (CIS 5.32) guest-only"
    assert rows["lsm_unconfined"]["container"].colour == "grey"
    assert "host_pid_namespace_shared" not in rows  # only the weakened container has it


def test_each_weakened_container_gets_a_line_with_what_i1_flagged_and_its_cis_items() -> None:
    lines = isolation_table.weakened_lines(Samples(probed()))
    assert len(lines) == 1
    flagged, line = lines[0]
    assert flagged
    assert line.startswith(
        "weakened: twinlab-dev-weakened (--privileged --pid=host) -> flagged by I1: "
    )
    assert "(CIS 5.16)" in line and "host pid namespace shared (CIS 5.16)" in line


def test_a_weakened_container_nothing_flags_is_shown_as_such() -> None:
    quiet = [
        s(m, v, W, weakened=True)
        for m, v in (
            ("host_processes_visible", False),
            ("cap_full", False),
            ("seccomp_mode", 2),
            ("host_kernel_state_visible", True),
            ("can_write_sysctl", False),
        )
    ]
    assert isolation_table.weakened_lines(Samples(quiet)) == [
        (False, "weakened: twinlab-dev-weakened -> NOT flagged by I1")
    ]


def test_the_report_carries_the_isolation_and_the_neighbour_tables(tmp_path: Path) -> None:
    samples = [
        *probed(),
        *neighbour_runs("container", dict.fromkeys(STRESSORS, 1.6), app_cpus="0"),
        *neighbour_runs("vm", dict.fromkeys(STRESSORS, 1.05), app_cpus="0"),
    ]
    results = evaluate(samples, thresholds_for("tcg"))
    out = write_run(tmp_path / "run", samples, results, {"virt_mode": "tcg"})
    markdown = (out / "report.md").read_text()
    assert "## Isolation" in markdown and "| probe | container | vm |" in markdown
    assert "| host_kernel_state_visible | red: weak (CIS -) | green: ok (CIS -) |" in markdown
    assert "- weakened: twinlab-dev-weakened (--privileged --pid=host) -> flagged by I1" in markdown
    assert "## Noisy neighbour (N1)" in markdown
    cpu_row = next(line for line in markdown.splitlines() if line.startswith("| cpu |"))
    assert "p99 x1.6 (95 % CI" in cpu_row and "**holds**" in cpu_row
    page = (out / "report.html").read_text()
    assert "<h2>Isolation</h2>" in page and "<h2>Noisy neighbour (N1)</h2>" in page
