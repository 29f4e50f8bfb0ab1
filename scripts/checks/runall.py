"""One comparison run: every check group against every deployed variant, then verdicts and the
report.

Fabric tasks (fabfile.py) and the claim tests call `run_checks`; they only choose options and
print. Targets and their variants come from the stack's outputs (`read_deployed`), or are named
by hand (then their variant is given, or guessed from the URL scheme and labelled as a guess).
Each group is `run(context) -> samples` (lifecycle.py); this runner opens the targets once,
runs the chosen groups in order, stamps the run's metadata once and writes the run directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from components.errors import TwinlabError
from components.thresholds import DEFAULTS as THRESHOLD_DEFAULTS
from components.virt_mode import load_record
from scripts.checks.claims import evaluate
from scripts.checks.lifecycle import CheckGroup, RunContext, RunOptions, stamp
from scripts.checks.load import group as load_group
from scripts.checks.load.on_host import host_kernel_release
from scripts.checks.neighbours import group as neighbours_group
from scripts.checks.probes import group as isolation_group
from scripts.checks.resources import group as resources_group
from scripts.checks.resources.errors import InstanceNotFoundError
from scripts.checks.results.report import write_run
from scripts.checks.results.run_tags import new_run_id
from scripts.checks.results.samples import Sample
from scripts.checks.results.verdicts import ClaimResult
from scripts.checks.targets.host import local_host
from scripts.checks.targets.libvirt_domains import Virsh
from scripts.checks.targets.subjects import Subjects
from scripts.checks.targets.target import DockerTarget, parse_target

# The check groups, in the order a run takes them (probes before load disturbs the hosts).
GROUPS: dict[str, CheckGroup] = {
    "isolation": isolation_group.run,
    "load": load_group.run,
    "resources": resources_group.run,
    "neighbours": neighbours_group.run,
}
CHECK_GROUPS = tuple(GROUPS)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    samples: list[Sample]
    results: list[ClaimResult]


def _virt_mode(subjects: Subjects) -> str:
    if subjects.virt_mode in ("kvm", "tcg"):
        return subjects.virt_mode
    record = load_record()
    return record.mode if record else "tcg"


def _chosen_groups(options: RunOptions) -> tuple[str, ...]:
    chosen = options.groups if options.groups is not None else CHECK_GROUPS
    unknown = [name for name in chosen if name not in GROUPS]
    if unknown:
        raise TwinlabError(f"unknown check groups {unknown}; known: {', '.join(CHECK_GROUPS)}")
    return tuple(chosen)


def run_checks(
    subjects: Subjects,
    options: RunOptions,
    console: Console | None = None,
) -> RunOutcome:
    """Run the chosen check groups against the subjects and write the run directory."""
    console = console or Console(stderr=True)
    groups = _chosen_groups(options)
    require_instances(subjects)
    run_id = new_run_id()
    virt_mode = _virt_mode(subjects)
    targets = [subject.parsed() for subject in subjects.items]
    container = subjects.container()
    # A container weakened by hand is filed under the container variant it weakens.
    weak_label = container.parsed().label if container is not None else None
    weakened = [parse_target(url, weak_label) for url in subjects.weakened_targets]
    context = RunContext(subjects, targets, weakened, run_id, virt_mode, options, console)
    samples: list[Sample] = []
    group_times_s: dict[str, float] = {}
    try:
        for name in groups:
            started_s = time.monotonic()
            samples += GROUPS[name](context)
            group_times_s[name] = time.monotonic() - started_s
            console.print(f"[dim]check group {name}: {group_times_s[name]:.0f} s[/dim]")
    finally:
        for target in [*targets, *weakened]:
            target.close()
    host_kernel = host_kernel_release(subjects.host)  # the checked host's, not this machine's
    run_metadata = {"run_id": run_id, "virt_mode": virt_mode, "host_kernel": host_kernel}
    samples = stamp(samples, run_metadata)
    thresholds = (
        options.thresholds
        or subjects.thresholds
        or THRESHOLD_DEFAULTS["kvm" if virt_mode == "kvm" else "tcg"]
    )
    results = evaluate(samples, thresholds)
    metadata = {
        **run_metadata,
        "app_version": subjects.app_version,
        "stack": subjects.stack or "(targets named by hand)",
        "groups": ",".join(groups),
        "group_times_s": group_times_text(group_times_s),
        "variants": ",".join(f"{t.variant}:{t.kind}" for t in targets),
    }
    run_dir = write_run(options.results_dir / run_id, samples, results, metadata)
    _link_latest(run_dir)
    return RunOutcome(run_dir, samples, results)


def group_times_text(group_times_s: dict[str, float]) -> str:
    """Where a run's time went, for the report: each group's wall time, then the total."""
    parts = [f"{name} {seconds:.0f} s" for name, seconds in group_times_s.items()]
    return ", ".join([*parts, f"total {sum(group_times_s.values()):.0f} s"])


class InstanceMissingError(TwinlabError):
    """A stack's container or domain was removed or stopped outside Pulumi (drift)."""


def require_instances(subjects: Subjects) -> None:
    """Name a stack's container or domain that is gone behind Pulumi's back (drift), and the
    way back, before the probes fail on an unreachable target with a vaguer message."""
    if subjects.stack is None:
        return
    gone = [f"{what} ({where})" for what, where in _drifted(subjects)]
    if gone:
        stack = subjects.stack
        raise InstanceMissingError(
            f"stack {stack}: {'; '.join(gone)}, changed outside Pulumi; run "
            f"`pulumi refresh --stack {stack}` then `pulumi up --stack {stack}` to recreate it"
        )


def _drifted(subjects: Subjects) -> Iterator[tuple[str, str]]:
    for subject in subjects.items:
        name, where = subject.instance_name, subject.target.split("?")[0]
        if not name:
            continue
        target = subject.parsed()
        host = subject.host or local_host()
        if isinstance(target, DockerTarget):
            done = host.docker(["inspect", "--type", "container", "-f", "{{.Id}}", name])
            if done.returncode != 0 and "No such container" in done.stderr:
                yield f"container {name!r} no longer exists", where
            continue
        try:
            state = "is " + Virsh(host).domain_state(name)
        except InstanceNotFoundError:
            state = "no longer exists"
        except TwinlabError:
            continue  # libvirtd unreachable: the probes report that themselves
        if state != "is running":
            yield f"libvirt domain {name!r} {state}", where


def _link_latest(run_dir: Path) -> None:
    """results/latest -> the newest run, replaced atomically."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)
