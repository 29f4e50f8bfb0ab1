"""N consecutive up -> check -> destroy cycles of one throwaway stack, counting what each leaves.

    source scripts/env.sh
    python -m scripts.cycles --cycles 10 [--checks isolation|http] [--keep-stack-name NAME]

Each cycle: `pulumi up` (it returns once both variants answer HTTP 200), a quick check (HTTP 200
from both, then the read-only OS and isolation probes; `--checks http` skips the probes),
`pulumi destroy`, then everything of the stack still present, by name and by port
(scripts/leftovers.py: containers, Docker volumes and networks, libvirt domains and pools, the
pool's directory and files on disk, QEMU processes, listeners on the stack's ports). Every
cycle uses the same ports, so a port that is not released makes the next `up` fail as well.
A table per cycle and the totals are printed; the exit status is 1 if anything was left
behind or any cycle failed. Pulumi's output goes to a log file under the state directory,
named at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pulumi import automation as auto
from rich.console import Console
from rich.table import Table

from components import outputs
from components.errors import TwinlabError
from components.host import free_loopback_ports
from components.naming import stack_prefix
from components.paths import state_dir
from components.registry import VARIANTS
from scripts import leftovers
from scripts.checks.lifecycle import RunOptions
from scripts.checks.runall import run_checks
from scripts.checks.targets.deployed import ROOT, read_deployed
from scripts.checks.targets.subjects import Subjects
from scripts.termination import run_main

URI = "qemu:///system"
PORT_KEYS = tuple(need.config_key for variant in VARIANTS for need in variant.ports)
LEFTOVER_KINDS = (
    ("containers", "containers"),
    ("docker_volumes", "volumes"),
    ("docker_networks", "networks"),
    ("domains", "domains"),
    ("pools", "pools"),
    ("pool_dirs", "pool dirs"),
    ("pool_files", "pool files"),
    ("qemu_processes", "qemu"),
    ("ports_in_use", "ports"),
)


@dataclass
class Cycle:
    number: int
    up_s: float | None = None
    ready_s: dict[str, float | None] = field(default_factory=dict)  # by variant (outputs)
    check: str = "-"
    check_s: float | None = None
    destroy_s: float | None = None
    left: leftovers.Leftovers = field(default_factory=leftovers.Leftovers)
    error: str | None = None
    load_1m: float = 0.0

    @property
    def left_count(self) -> int:
        return self.left.count()

    @property
    def ok(self) -> bool:
        return self.error is None and self.left_count == 0

    def problem(self) -> str:
        return self.error or f"left: {self.left.describe()}"


def http_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def one_line(error: BaseException) -> str:
    """The first error line Pulumi or the checks printed, not the whole transcript."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [type(error).__name__])[0][:160]


class Runner:
    def __init__(self, stack: auto.Stack, ports: tuple[int, ...], checks: str, log: IO[str]):
        self.stack, self.ports, self.checks, self.log = stack, ports, checks, log
        self.prefix = stack_prefix(stack.name)

    def pulumi_output(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, cycle: Cycle, console: Console) -> Cycle:
        cycle.load_1m = os.getloadavg()[0]
        try:
            with console.status(f"cycle {cycle.number}: pulumi up"):
                result, cycle.up_s = timed(
                    lambda: self.stack.up(on_output=self.pulumi_output, color="never")
                )
            out = {key: value.value for key, value in result.outputs.items()}
            cycle.ready_s = {
                name: item.get(outputs.READY_S) for name, item in out[outputs.VARIANTS].items()
            }
            with console.status(f"cycle {cycle.number}: checks ({self.checks})"):
                cycle.check, cycle.check_s = timed(lambda: self.check(out))
        except (auto.errors.CommandError, TwinlabError, AssertionError) as error:
            cycle.error = one_line(error)
            cycle.check = "failed" if cycle.up_s is not None else "-"
        finally:
            with console.status(f"cycle {cycle.number}: pulumi destroy"):
                cycle.destroy_s = self.destroy(cycle)
            cycle.left = leftovers.find(self.prefix, URI, ports=self.ports)
            if cycle.left.count():
                leftovers.remove(self.prefix, URI)  # counted; the next cycle starts clean
        return cycle

    def check(self, out: dict[str, Any]) -> str:
        urls = [item[outputs.URL] for item in out[outputs.VARIANTS].values()]
        down = [url for url in urls if not http_200(url)]
        if down:
            raise AssertionError(f"no HTTP 200 from {', '.join(down)}")
        if self.checks == "http":
            return f"200 x{len(urls)}"
        subjects = Subjects.of_stack(read_deployed(self.stack.name))
        with tempfile.TemporaryDirectory(prefix="twinlab-cycles-") as results:
            options = RunOptions(groups=("isolation",), weakened=False, results_dir=Path(results))
            outcome = run_checks(subjects, options, Console(file=self.log, width=100))
        return f"200 x{len(urls)}, {len(outcome.samples)} samples"

    def destroy(self, cycle: Cycle) -> float:
        started = time.monotonic()
        try:
            self.stack.destroy(on_output=self.pulumi_output, color="never")
        except auto.errors.CommandError as error:
            cycle.error = cycle.error or f"destroy: {one_line(error)}"
            with contextlib.suppress(auto.errors.CommandError):
                self.stack.destroy(on_output=self.pulumi_output, color="never", refresh=True)
        return time.monotonic() - started


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def cycle_table(cycles: list[Cycle], title: str) -> Table:
    table = Table(title=title)
    columns = ("cycle", "load 1m", "up s", "ready s by variant", "check", "check s", "destroy s")
    for column in columns:
        table.add_column(column, justify="left" if column == "check" else "right", no_wrap=True)
    for _, header in LEFTOVER_KINDS:
        table.add_column(header, justify="right")
    table.add_column("result")
    for cycle in cycles:
        counts = [str(len(getattr(cycle.left, kind))) for kind, _ in LEFTOVER_KINDS]
        verdict = "[green]ok[/]" if cycle.ok else f"[red]{cycle.problem()}[/]"
        table.add_row(
            str(cycle.number),
            f"{cycle.load_1m:.2f}",
            seconds(cycle.up_s),
            ", ".join(f"{name} {seconds(s)}" for name, s in cycle.ready_s.items()) or "-",
            cycle.check,
            seconds(cycle.check_s),
            seconds(cycle.destroy_s),
            *counts,
            verdict,
        )
    return table


def totals_table(cycles: list[Cycle]) -> Table:
    table = Table(title="totals")
    table.add_column("measure")
    table.add_column("value", justify="right")

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        return (
            f"median {statistics.median(values):.1f}, min {min(values):.1f}, max {max(values):.1f}"
        )

    table.add_row("cycles run", str(len(cycles)))
    table.add_row("cycles failed", str(sum(cycle.error is not None for cycle in cycles)))
    names = sorted({name for c in cycles for name in c.ready_s})
    timings: dict[str, list[float | None]] = {
        "up s": [c.up_s for c in cycles],
        **{f"{name} ready s": [c.ready_s.get(name) for c in cycles] for name in names},
        "check s": [c.check_s for c in cycles],
        "destroy s": [c.destroy_s for c in cycles],
    }
    for name, measured in timings.items():
        table.add_row(name, spread([float(v) for v in measured if v is not None]))
    for kind, header in LEFTOVER_KINDS:
        table.add_row(f"leftover {header}", str(sum(len(getattr(c.left, kind)) for c in cycles)))
    table.add_row("leftovers in all", str(sum(cycle.left_count for cycle in cycles)))
    return table


@contextlib.contextmanager
def throwaway_stack(name: str, config: dict[str, str]) -> Iterator[auto.Stack]:
    """The stack for all cycles; whatever happens, destroyed, swept by name and forgotten."""
    stack = auto.create_stack(stack_name=name, work_dir=str(ROOT))
    try:
        stack.set_all_config(
            {f"twinlab:{key}": auto.ConfigValue(value) for key, value in config.items()}
        )
        yield stack
    finally:
        with contextlib.suppress(auto.errors.CommandError):
            stack.destroy(color="never", refresh=True)
        leftovers.sweep_stack(name, URI)
        stack.workspace.remove_stack(name, force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.cycles", description=__doc__)
    parser.add_argument("--cycles", type=int, default=3, help="how many cycles (default 3)")
    parser.add_argument(
        "--checks",
        choices=("isolation", "http"),
        default="isolation",
        help="isolation: HTTP 200 from both, then the read-only OS and isolation probes "
        "(default); http: HTTP 200 only",
    )
    parser.add_argument("--stack", help="stack name (default cycles-<random hex>; must be new)")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be 1 or more")
    console = Console(stderr=True)
    name = args.stack or f"cycles-{secrets.token_hex(3)}"
    ports = tuple(free_loopback_ports(len(PORT_KEYS)))
    config = dict(zip(PORT_KEYS, map(str, ports), strict=True))
    log_path = state_dir() / "cycles" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"stack {name}, ports {ports}; Pulumi output in {log_path}")

    cycles: list[Cycle] = []
    try:
        with log_path.open("w") as log, throwaway_stack(name, config) as stack:
            runner = Runner(stack, ports, args.checks, log)
            for number in range(1, args.cycles + 1):
                cycle = runner.run(Cycle(number), console)
                cycles.append(cycle)
                mark = "ok" if cycle.ok else f"FAILED ({cycle.problem()})"
                console.print(f"cycle {number}: {mark}")
    except KeyboardInterrupt:
        console.print("interrupted: the stack was destroyed and swept")
    except (auto.errors.CommandError, TwinlabError) as error:
        console.print(f"error: {one_line(error)}")
        return 1
    out = Console(width=None if sys.stdout.isatty() else 200)  # a full table in a log file
    out.print(cycle_table(cycles, f"{len(cycles)} up/check/destroy cycles of stack {name}"))
    out.print(totals_table(cycles))
    everything_ok = len(cycles) == args.cycles and all(cycle.ok for cycle in cycles)
    return 0 if everything_ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
