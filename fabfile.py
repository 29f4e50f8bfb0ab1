"""Fabric tasks: the comparison checks against every deployed variant (`fab --list`).

Tasks only parse arguments, call scripts.checks and print. Targets and their variants come
from the stack's outputs (`--stack`, default dev); `--target` names any container or VM by hand
instead, with `--variant NAME:KIND` for each (else its kind is guessed from the URL scheme and
labelled as a guess):
    docker://NAME      ssh://USER@HOST:PORT?key=/path/to/key
Every task writes results/<run id>/ (samples.jsonl, report.md, report.html, plots) and links
results/latest to it. Run `source scripts/env.sh` first (or use scripts/run.sh).
"""

from __future__ import annotations

import json
import signal
import subprocess
import warnings
from dataclasses import replace

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.console import Console
from rich.table import Table

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from components.errors import TwinlabError  # noqa: E402
from components.fleet import fleet_urls  # noqa: E402
from components.naming import stack_prefix  # noqa: E402
from components.remote_ssh import twinlab_sshd_ports  # noqa: E402
from scripts import leftovers  # noqa: E402
from scripts import recover as recovery  # noqa: E402
from scripts.checks.fleet import run_fleet  # noqa: E402
from scripts.checks.lifecycle import QUICK_RUN, RUN_ALL_LOAD, RunOptions  # noqa: E402
from scripts.checks.load.closed_loop import LoadPlan  # noqa: E402
from scripts.checks.neighbours.measure import NeighbourPlan  # noqa: E402
from scripts.checks.resources.runner import DENSITY_REPEATS, DensityBounds  # noqa: E402
from scripts.checks.results.report import column  # noqa: E402
from scripts.checks.results.samples import VariantLabel  # noqa: E402
from scripts.checks.results.verdicts import Samples  # noqa: E402
from scripts.checks.runall import RunOutcome, run_checks  # noqa: E402
from scripts.checks.targets.deployed import ROOT, read_deployed  # noqa: E402
from scripts.checks.targets.subjects import Subject, Subjects  # noqa: E402
from scripts.termination import Terminated, unwind_on_termination  # noqa: E402

# `kill`, `timeout` or a dropped SSH session: clean up as after Ctrl-C (scripts/termination.py).
unwind_on_termination()

CONSOLE = Console(stderr=True)
DAEMON_KEYS = ("dockerHost", "libvirtUri")
COLOUR = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}
TARGET_HELP = {
    "stack": "stack whose outputs name the targets (default dev)",
    "target": "a target URL instead of the stack's (repeatable)",
    "http": "the app URL of each --target, in the same order (load only)",
    "variant": "NAME:KIND of each --target, in the same order (e.g. gvisor:sandbox)",
    "weakened": "a container weakened by hand, probed for I3 (repeatable)",
}


HandTargets = tuple[str, list[str], list[str], list[str], list[str]]


def _label(value: str) -> VariantLabel:
    name, sep, kind = value.partition(":")
    if not sep or not name or not kind:
        raise TwinlabError(f"--variant {value!r}: expected NAME:KIND, e.g. container:container")
    return VariantLabel(name, kind)


def _subjects(
    stack: str, targets: list[str], https: list[str], weakened: list[str], variants: list[str]
) -> Subjects:
    if not targets:
        return replace(Subjects.of_stack(read_deployed(stack)), weakened_targets=tuple(weakened))
    if https and len(https) != len(targets):
        raise TwinlabError("give one --http per --target, in the same order")
    if variants and len(variants) != len(targets):
        raise TwinlabError("give one --variant per --target, in the same order")
    urls: list[str | None] = list(https) if https else [None] * len(targets)
    labels: list[VariantLabel | None] = (
        [_label(v) for v in variants] if variants else [None] * len(targets)
    )
    items = tuple(
        Subject(t, u, label=label) for t, u, label in zip(targets, urls, labels, strict=True)
    )
    return Subjects(items, weakened_targets=tuple(weakened))


def _run(subjects_of: HandTargets, options: RunOptions) -> None:
    try:
        outcome = run_checks(_subjects(*subjects_of), options, CONSOLE)
    except TwinlabError as error:
        raise Exit(f"error: {error}", code=1) from None
    except Terminated as terminated:
        raise _stopped(terminated) from None
    _print(outcome)


def _stopped(terminated: Terminated) -> Exit:
    message = f"stopped by {terminated}, after removing what the checks had made"
    return Exit(message, code=terminated.exit_code)


def _print(outcome: RunOutcome) -> None:
    variants = Samples(outcome.samples).variants()
    headings = [column(label) for label in variants]
    table = Table("claim", "verdict", *headings, "ratio", title="twinlab claims")
    for result in outcome.results:
        ratio = "" if result.ratio is None else f"{result.ratio:.2f}"
        verdict = f"[{COLOUR[result.verdict]}]{result.verdict}[/]"
        cells = [result.cell(label.name) for label in variants]
        table.add_row(result.claim, verdict, *cells, ratio)
    Console().print(table)
    Console().print(f"{len(outcome.samples)} samples; report: {outcome.run_dir / 'report.html'}")


@task(
    iterable=["target", "weakened", "variant"],
    help={k: v for k, v in TARGET_HELP.items() if k != "http"},
)
def isolation(
    c: Context,
    stack: str = "dev",
    target: list[str] | None = None,
    weakened: list[str] | None = None,
    variant: list[str] | None = None,
) -> None:
    """OS and isolation probes (A1 A2 U1 I1 I2 I3) inside each target."""
    options = RunOptions(groups=("isolation",))
    _run((stack, target or [], [], weakened or [], variant or []), options)


@task(
    iterable=["target", "http", "variant"],
    help={
        **{k: v for k, v in TARGET_HELP.items() if k != "weakened"},
        "duration_s": "seconds per wrk run",
        "repeats": "runs per endpoint",
    },
)
def load(
    c: Context,
    stack: str = "dev",
    target: list[str] | None = None,
    http: list[str] | None = None,
    variant: list[str] | None = None,
    duration_s: int = RUN_ALL_LOAD.duration_s,
    repeats: int = RUN_ALL_LOAD.repeats,
    connections: int = RUN_ALL_LOAD.connections,
) -> None:
    """Bounded HTTP load with wrk on the static, CPU-bound and fsync endpoints (P1)."""
    plan = LoadPlan(
        duration_s=duration_s, warmup_s=1, repeats=repeats, connections=connections, threads=2
    )
    subjects: HandTargets = (stack, target or [], http or [], [], variant or [])
    _run(subjects, RunOptions(groups=("load",), load_plan=plan, judged_only=False))


@task(
    help={
        "stack": TARGET_HELP["stack"],
        "budget_mib": "R4 memory budget in MiB",
        "repeats": "R1 starts per variant",
        "density_repeats": "R4 density runs per kind (each fills the budget; n >= 5 gives a CI)",
    }
)
def resources(
    c: Context,
    stack: str = "dev",
    repeats: int = RunOptions().start_repeats,
    budget_mib: int = int(RunOptions().density_budget_mib),
    density_repeats: int = DENSITY_REPEATS,
) -> None:
    """Start time (R1), memory and idle CPU (R2), sizes (R3), density (R4) of the stack."""
    options = RunOptions(
        groups=("resources",),
        start_repeats=repeats,
        density_budget_mib=float(budget_mib),
        density=DensityBounds(repeats=density_repeats),
    )
    _run((stack, [], [], [], []), options)


@task(
    iterable=["stressor"],
    help={
        "stack": TARGET_HELP["stack"],
        "stressor": "cpu, memory or fsync (repeatable; default all three)",
        "repeats": "runs per stressor, each paired with a baseline run",
        "duration_s": "seconds per open-loop run",
        "rate": "the fixed offered rate, requests per second",
    },
)
def neighbours(
    c: Context,
    stack: str = "dev",
    stressor: list[str] | None = None,
    repeats: int = NeighbourPlan().repeats,
    duration_s: float = NeighbourPlan().duration_s,
    rate: int = NeighbourPlan().rate_per_s,
) -> None:
    """N1: each variant's latency alone and beside a noisy sibling on other CPUs."""
    plan = NeighbourPlan(
        stressors=tuple(stressor or NeighbourPlan().stressors),
        repeats=repeats,
        duration_s=duration_s,
        rate_per_s=rate,
    )
    options = RunOptions(groups=("neighbours",), neighbours=plan, judged_only=False)
    _run((stack, [], [], [], []), options)


@task(
    name="run-all",
    help={
        "stack": TARGET_HELP["stack"],
        "quick": "short runs, n = 3 (lifecycle.QUICK_RUN)",
        "serial_hosts": "a stack with several hosts: measure them one after another (fair "
        "numbers when hosts share a machine) instead of all at once",
    },
)
def run_all(
    c: Context, stack: str = "dev", quick: bool = False, serial_hosts: bool = False
) -> None:
    """Every check against the stack (on every host), then the side-by-side report (--quick:
    short runs)."""
    options = QUICK_RUN if quick else RunOptions()
    try:
        deployed = read_deployed(stack)
    except TwinlabError as error:
        raise Exit(f"error: {error}", code=1) from None
    if len(deployed.hosts) < 2:
        _run((stack, [], [], [], []), options)
        return
    try:
        fleet = run_fleet(deployed, options, CONSOLE, serial=serial_hosts)
    except TwinlabError as error:
        raise Exit(f"error: {error}", code=1) from None
    for host, outcome in fleet.outcomes.items():
        CONSOLE.print(f"[bold]host {host}[/]")
        _print(outcome)
    Console().print(f"fleet report: {fleet.run_dir / 'report.md'}")


@task(help={"stack": "stack to recover (a crashed or interrupted `pulumi up`)"})
def recover(c: Context, stack: str = "dev") -> None:
    """After a crash: clear a dead process's lock, drop pending creates, destroy, sweep by name."""
    CONSOLE.print(f"recovering stack {stack}")
    try:
        recovery.recover(stack, say=CONSOLE.print)
    except recovery.RecoveryError as error:
        raise Exit(f"error: {error}", code=1) from None
    CONSOLE.print(f"stack {stack} recovered: nothing of it is left on this machine")


def _start_twinlab_sshd_if_used(stack: str) -> None:
    """A stack that reaches its daemons through twinlab's own sshd gets it started (the setup
    does not start it: most users never use it)."""
    done = subprocess.run(
        ["pulumi", "config", "--json", "--stack", stack],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    config = json.loads(done.stdout or "{}") if done.returncode == 0 else {}
    urls = [str(config.get(f"twinlab:{key}", {}).get("value", "")) for key in DAEMON_KEYS]
    urls += fleet_urls(str(config.get("twinlab:hosts", {}).get("value", "")))
    ports = twinlab_sshd_ports(*urls)
    for port in ports:
        started = subprocess.run([str(ROOT / "scripts/remote_access.sh"), "start", str(port)])
        if started.returncode != 0:
            raise Exit(f"error: scripts/remote_access.sh could not start sshd :{port}", code=1)
    if not ports:
        return
    CONSOLE.print(
        "twinlab's sshd runs for this stack; stop it with `scripts/remote_access.sh stop [PORT]`"
    )


@task(
    name="up-and-check",
    help={"stack": "stack to deploy (created if missing)", "keep": "leave the stack up"},
)
def up_and_check(c: Context, stack: str = "dev", keep: bool = False) -> None:
    """`pulumi up`, then run-all, then `pulumi destroy` unless --keep."""

    def pulumi(*args: str) -> None:
        child = subprocess.Popen(["pulumi", *args, "--stack", stack], cwd=ROOT)
        try:
            code = child.wait()
        except Terminated:
            # Pulumi got no signal: ask it to cancel as Ctrl-C would (it finishes the
            # operations under way and records them); killing it would leave them pending.
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
        except KeyboardInterrupt:
            child.wait()  # Ctrl-C reached Pulumi too, from the terminal; a second one aborts it
            raise
        if code != 0:
            raise Exit(f"error: pulumi {' '.join(args)} failed (exit {code})", code=1)

    subprocess.run(
        ["pulumi", "stack", "select", "--create", stack], cwd=ROOT, check=False, capture_output=True
    )
    _start_twinlab_sshd_if_used(stack)
    try:
        # Inside: an `up` that failed or was stopped half-way is torn down too (unless --keep).
        pulumi("up", "--yes", "--skip-preview")
        run_all(c, stack=stack)
    except Terminated as terminated:
        raise _stopped(terminated) from None
    finally:
        if not keep:
            try:
                pulumi("destroy", "--yes", "--skip-preview")
            finally:
                _remove_what_destroy_left(stack)


def _remove_what_destroy_left(stack: str) -> None:
    """pulumi-libvirt 0.5.4 can leave a domain or pool it failed to start or build defined but
    unrecorded (tests/integration/test_reliability.py), and its destroy fails on a pool whose
    directory holds a file the state never owned (a clone's overlay, an upload cut short);
    remove those too, also when the destroy failed."""
    removed = leftovers.remove(f"{stack_prefix(stack)}-")
    if removed.count():
        CONSOLE.print(f"removed what destroy could not see: {removed.describe()}")
    for host in recovery.fleet_hosts(stack):  # each host of a fleet, through its SSH
        removed = leftovers.remove(
            f"{stack_prefix(stack)}-", host.virsh_uri, run=recovery.on_host(host)
        )
        host.close()
        if removed.count():
            CONSOLE.print(f"removed on host {host}: {removed.describe()}")
