"""`fab run-all` on a stack with several hosts: every check on every host, one thread per host
(or one host after another with `serial`), then one report with the hosts side by side and
the spread across them (scripts/checks/results/fleet_report.py).

Each host is checked as a stack of its own: its variants, its HostHandle, and names scoped to
it (twinlab-STACK-HOST-clone-N, -weakened, -budget-*; components/naming.py host_scope), so two
"hosts" that are one machine never touch each other's instances. What they cannot avoid is
sharing that machine's cores: measured at once, they disturb each other (the report says so).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from components.errors import TwinlabError
from components.fleet import LOOPBACK
from components.naming import host_scope
from scripts.checks.lifecycle import RunOptions
from scripts.checks.results.fleet_report import HostRun, write_fleet_report
from scripts.checks.results.run_tags import new_run_id
from scripts.checks.runall import RunOutcome, run_checks
from scripts.checks.targets.deployed import DeployedStack
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.subjects import Subjects

RunChecks = Callable[[Subjects, RunOptions, Console], RunOutcome]


class FleetRunError(TwinlabError):
    """One or more hosts' checks failed; the message names each (the others were reported)."""


@dataclass(frozen=True)
class FleetOutcome:
    run_dir: Path
    outcomes: Mapping[str, RunOutcome]  # by host name, in the stack's order
    failures: Mapping[str, str]  # host name -> why its checks did not finish


def host_views(deployed: DeployedStack) -> dict[str, DeployedStack]:
    """The stack as each host sees it: that host's variants and handle, names scoped to it."""
    views: dict[str, DeployedStack] = {}
    for name, handle in deployed.hosts.items():
        variants = tuple(v for v in deployed.variants if v.host == name)
        if variants:
            views[name] = replace(
                deployed,
                stack=host_scope(deployed.stack, name),
                variants=variants,
                virt_mode=deployed.host_virt_modes.get(name, deployed.virt_mode),
                hosts={name: handle},
            )
    return views


def run_fleet(
    deployed: DeployedStack,
    options: RunOptions,
    console: Console,
    *,
    serial: bool = False,
    run_checks_on: RunChecks = run_checks,
) -> FleetOutcome:
    """Run the checks on every host (in parallel unless `serial`), write the fleet report, and
    raise FleetRunError naming every host that failed (after reporting the others)."""
    views = host_views(deployed)
    if not views:
        raise TwinlabError(f"stack {deployed.stack!r} has no variant on any host")
    if deployed.load_host is not None:
        require_load_host_reaches(deployed.load_host, deployed.hosts, list(views))
    run_dir = options.results_dir / f"{new_run_id()}-fleet"
    printing = threading.Lock()

    def one(host: str) -> RunOutcome:
        prefixed = _prefixed_console(console, host, printing)
        host_options = replace(options, results_dir=run_dir / "hosts" / host)
        return run_checks_on(Subjects.of_stack(views[host]), host_options, prefixed)

    outcomes: dict[str, RunOutcome] = {}
    failures: dict[str, str] = {}
    if serial:
        for host in views:
            try:
                outcomes[host] = one(host)
            except TwinlabError as error:
                failures[host] = str(error)
    else:
        with ThreadPoolExecutor(max_workers=len(views), thread_name_prefix="host") as pool:
            futures = {host: pool.submit(one, host) for host in views}
            for host, future in futures.items():
                failed = future.exception()
                if failed is None:
                    outcomes[host] = future.result()
                elif isinstance(failed, TwinlabError):
                    failures[host] = str(failed)
                else:
                    raise failed
    runs = [
        host_run(name, deployed.hosts[name], outcomes[name]) for name in views if name in outcomes
    ]
    if runs:
        write_fleet_report(
            run_dir,
            runs,
            stack=deployed.stack,
            serial=serial,
            load_host=deployed.load_host,
            failures=failures,
        )
    if failures:
        raise FleetRunError(
            "checks failed on "
            + "; ".join(f"host {host}: {why}" for host, why in failures.items())
            + (f" (the other hosts' report: {run_dir / 'report.md'})" if runs else "")
        )
    return FleetOutcome(run_dir, outcomes, failures)


BOOT_ID = "/proc/sys/kernel/random/boot_id"


def require_load_host_reaches(
    load_host: str, hosts: Mapping[str, HostHandle], names: list[str]
) -> None:
    """`twinlab:loadHost` is honoured only where it can be: every app port is published on
    its host's loopback (test traffic never leaves 127.0.0.1), so a load host reaches the
    apps of the hosts on its own machine only. Same machine = same boot id (one kernel);
    then the generator each host's checks run is on the load host's machine."""
    if load_host not in hosts:
        raise FleetRunError(f"twinlab:loadHost {load_host!r} is not a host of the stack")
    try:
        own = hosts[load_host].read_text(BOOT_ID).strip()
        others = {name: hosts[name].read_text(BOOT_ID).strip() for name in names}
    except (OSError, TwinlabError) as error:
        raise FleetRunError(f"twinlab:loadHost: cannot read a host's boot id ({error})") from None
    elsewhere = [name for name, boot_id in others.items() if boot_id != own]
    if elsewhere:
        raise FleetRunError(
            f"twinlab:loadHost {load_host!r} is another machine than host(s) "
            f"{', '.join(elsewhere)} (their boot ids differ): their apps listen on their own "
            "127.0.0.1 only, which it cannot reach; leave loadHost empty to load each host "
            "from itself"
        )


def host_run(name: str, handle: HostHandle, outcome: RunOutcome) -> HostRun:
    ssh = handle.ssh
    return HostRun(
        name=name,
        reached_through="local" if ssh is None else str(ssh),
        on_loopback=ssh is None or ssh.host in LOOPBACK,
        run_dir=outcome.run_dir,
        samples=outcome.samples,
        results=outcome.results,
    )


def _prefixed_console(console: Console, host: str, lock: threading.Lock) -> Console:
    """A console whose every line says which host it is about."""
    prefixed = Console(stderr=console.stderr, force_terminal=False, width=console.width)
    original = prefixed.print

    def print_line(*objects: object, **kwargs: object) -> None:
        with lock:
            original(escape(f"[{host}]"), *objects, **kwargs)  # type: ignore[arg-type]

    prefixed.print = print_line  # type: ignore[method-assign]
    return prefixed
