"""`fab run-all` over a fleet (scripts/checks/fleet.py, results/fleet_report.py) with the checks
replaced by a recorder: each host checked as a stack of its own, in parallel or one after
another, a failing host named while the others are reported, and the report's side-by-side
and spread tables."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rich.console import Console

from components.errors import TwinlabError
from components.thresholds import thresholds_for
from scripts.checks.claims import evaluate
from scripts.checks.fleet import (
    BOOT_ID,
    FleetRunError,
    host_views,
    require_load_host_reaches,
    run_fleet,
)
from scripts.checks.lifecycle import RunOptions
from scripts.checks.results.fleet_report import HOST_KEY, HostRun, overlap, render_markdown, spread
from scripts.checks.results.report import write_run
from scripts.checks.results.samples import Sample, read_samples
from scripts.checks.results.stats import summarize
from scripts.checks.results.verdicts import ClaimResult
from scripts.checks.runall import RunOutcome
from scripts.checks.targets.deployed import DeployedStack, DeployedVariant
from scripts.checks.targets.host import HostHandle, SshAccess
from scripts.checks.targets.subjects import Subjects
from tests.unit.test_verdicts import good_run

pytestmark = pytest.mark.unit


def handle(name: str, port: int) -> HostHandle:
    return HostHandle(
        name,
        f"ssh://root@127.0.0.1:{port}",
        f"qemu+ssh://root@127.0.0.1:{port}/system",
        SshAccess("root", "127.0.0.1", port, None),
    )


def variant(name: str, kind: str, host: str) -> DeployedVariant:
    return DeployedVariant(
        name, kind, "http://127.0.0.1:1", f"docker://twinlab-f-{host}-{name}", "i", "id", 1.0, host
    )


def fleet_stack() -> DeployedStack:
    return DeployedStack(
        stack="f",
        variants=tuple(
            variant(n, k, h) for h in "ab" for n, k in (("container", "container"), ("vm", "vm"))
        ),
        virt_mode="tcg",
        app_version="1.0.0",
        limits={},
        thresholds=thresholds_for("tcg"),
        skipped_variants={},
        hosts={"a": handle("a", 2222), "b": handle("b", 2223)},
        host_virt_modes={"a": "tcg", "b": "kvm"},
    )


def result(median_c: float, median_v: float) -> ClaimResult:
    return ClaimResult(
        "R1",
        "holds",
        "vm starts slower",
        ratio=median_v / median_c,
        ratio_ci=(median_v / median_c * 0.9, median_v / median_c * 1.1),
        summaries={
            "container": summarize([median_c * f for f in (0.95, 1.0, 1.05, 1.0, 0.98)]),
            "vm": summarize([median_v * f for f in (0.95, 1.0, 1.05, 1.0, 0.98)]),
        },
    )


class Recorder:
    def __init__(self, fail: str | None = None, pause_s: float = 0.0) -> None:
        self.seen: dict[str, Subjects] = {}
        self.threads: set[str] = set()
        self.fail = fail
        self.pause_s = pause_s
        self.overlapped = False
        self.running = 0
        self.lock = threading.Lock()

    def __call__(self, subjects: Subjects, options: RunOptions, console: Console) -> RunOutcome:
        assert subjects.stack is not None
        host = subjects.stack.rsplit("-", 1)[1]
        with self.lock:
            self.running += 1
            self.overlapped |= self.running > 1
            self.seen[host] = subjects
            self.threads.add(threading.current_thread().name)
        time.sleep(self.pause_s)
        with self.lock:
            self.running -= 1
        if host == self.fail:
            raise TwinlabError("libvirtd does not answer")
        samples = [
            Sample(
                "requests_per_s",
                100.0,
                "req/s",
                i.target,
                i.label.name,
                ("P1",),
                {"virt_mode": "tcg"},
                kind=i.label.kind,
            )
            for i in subjects.items
            if i.label is not None
        ]
        factor = 1.0 if host == "a" else 1.5
        return RunOutcome(options.results_dir / "run1", samples, [result(1.0 * factor, 10.0)])


def test_each_host_is_checked_as_a_stack_of_its_own() -> None:
    views = host_views(fleet_stack())
    assert sorted(views) == ["a", "b"]
    assert views["b"].stack == "f-b"  # so clones are twinlab-f-b-clone-N, budgets f-b too
    assert [v.host for v in views["b"].variants] == ["b", "b"]
    assert list(views["b"].hosts) == ["b"]
    assert (views["a"].virt_mode, views["b"].virt_mode) == ("tcg", "kvm")  # each host's own


def test_hosts_run_in_parallel_and_the_report_has_both_side_by_side(tmp_path: Path) -> None:
    recorder = Recorder(pause_s=0.3)
    fleet = run_fleet(
        fleet_stack(), RunOptions(results_dir=tmp_path), Console(), run_checks_on=recorder
    )
    assert recorder.overlapped and len(recorder.threads) == 2
    assert sorted(fleet.outcomes) == ["a", "b"] and fleet.run_dir.parent == tmp_path
    assert {s.label.name for s in recorder.seen["a"].items if s.label} == {"container", "vm"}
    report = (fleet.run_dir / "report.md").read_text()
    assert "| claim | a: verdict | a: ratio (95 % CI) | b: verdict | b: ratio (95 % CI) |" in report
    assert "all hosts at the same time" in report and "--serial-hosts" in report
    # R1's container median is 1.0 on a and 1.5 on b: spread 1.50x, CIs apart.
    assert "| R1 | container | 1 (" in report and "| 1.50x | no |" in report
    tagged = read_samples(fleet.run_dir / "samples.jsonl")
    assert {s.metadata[HOST_KEY] for s in tagged} == {"a", "b"}


def test_serial_hosts_never_overlap(tmp_path: Path) -> None:
    recorder = Recorder(pause_s=0.1)
    fleet = run_fleet(
        fleet_stack(),
        RunOptions(results_dir=tmp_path),
        Console(),
        serial=True,
        run_checks_on=recorder,
    )
    assert not recorder.overlapped and sorted(fleet.outcomes) == ["a", "b"]
    assert "one host after another" in (fleet.run_dir / "report.md").read_text()


def test_a_failing_host_is_named_and_the_others_are_still_reported(tmp_path: Path) -> None:
    with pytest.raises(FleetRunError, match="host b: libvirtd does not answer") as caught:
        run_fleet(
            fleet_stack(),
            RunOptions(results_dir=tmp_path),
            Console(),
            run_checks_on=Recorder(fail="b"),
        )
    (run_dir,) = tmp_path.iterdir()
    report = (run_dir / "report.md").read_text()
    assert "| b | | | checks failed: libvirtd does not answer | |" in report
    assert str(run_dir / "report.md") in str(caught.value)


def test_spread_and_overlap() -> None:
    assert spread([2.0, 3.0]) == 1.5 and spread([2.0]) is None and spread([0.0, 1.0]) is None
    close = [summarize([1.0, 1.1, 1.2, 1.0, 1.1]), summarize([1.1, 1.2, 1.0, 1.15, 1.05])]
    apart = [summarize([1.0, 1.1, 1.0, 1.05, 1.0]), summarize([3.0, 3.1, 3.0, 3.2, 3.1])]
    assert overlap(close) and not overlap(apart)


def test_one_machine_measured_in_parallel_is_said_in_the_report() -> None:
    runs = [
        HostRun(n, f"root@127.0.0.1:{p}", True, Path("r"), [], [result(1.0, 10.0)])
        for n, p in (("a", 2222), ("b", 2223))
    ]
    text = render_markdown(runs, stack="f", serial=False, load_host=None, failures={})
    assert "disturb each other" in text and "on each host itself" in text
    apart = [HostRun("x", "root@10.0.0.1:22", False, Path("r"), [], []), runs[0]]
    assert "disturb" not in render_markdown(
        apart, stack="f", serial=False, load_host="x", failures={}
    )


class OtherMachine(HostHandle):
    """A host whose boot id differs from this machine's."""

    def read_text(self, path: str) -> str:
        return "00000000-0000-0000-0000-000000000000\n" if path == BOOT_ID else ""


def test_a_load_host_must_share_the_machine_of_every_host(tmp_path: Path) -> None:
    local = {
        name: HostHandle(name, "unix:///var/run/docker.sock", "qemu:///system") for name in "ab"
    }
    require_load_host_reaches("a", local, ["a", "b"])  # one machine: one boot id
    apart = {**local, "b": OtherMachine("b", "ssh://root@h", "qemu+ssh://root@h/system")}
    with pytest.raises(FleetRunError, match=r"another machine than host\(s\) b"):
        require_load_host_reaches("a", apart, ["a", "b"])
    stack = fleet_stack()
    stack = DeployedStack(**{**stack.__dict__, "hosts": apart, "load_host": "a"})
    recorder = Recorder()
    with pytest.raises(FleetRunError, match="leave loadHost empty"):
        run_fleet(stack, RunOptions(results_dir=tmp_path), Console(), run_checks_on=recorder)
    assert recorder.seen == {}, "refused before any check ran"


def test_hosts_write_their_reports_from_parallel_threads(tmp_path: Path) -> None:
    """pyplot is not thread-safe (a fleet run once failed in its mathtext parser with two
    hosts plotting log-scale charts at once): write_run plots under one lock."""
    run = good_run()
    results = evaluate(run, thresholds_for("tcg"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(write_run, tmp_path / f"run{i}", run, results, {"virt_mode": "tcg"})
            for i in range(8)
        ]
        written = [future.result() for future in futures]
    assert all((out / "start_time.png").stat().st_size > 1000 for out in written)
