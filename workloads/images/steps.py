"""Named build steps with timings and a rich progress line; commands logged to a file."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class BuildError(RuntimeError):
    """A build step failed; the message says which, why, and where the full log is."""


class Steps:
    """Runs build steps one after another and records how long each took."""

    def __init__(self, log_path: Path, console: Console | None = None) -> None:
        self.log_path = log_path
        self.console = console or Console(stderr=True)
        self.times_s: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, description: str) -> Iterator[None]:
        started = time.monotonic()
        with self.log_path.open("a") as log:
            log.write(f"\n==== {name}: {description}\n")
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            progress.add_task(f"{name}: {description}", total=None)
            try:
                yield
            except BaseException:
                self.console.print(f"[red]✗[/red] {name} failed after {self._since(started)}")
                raise
        self.times_s[name] = round(time.monotonic() - started, 2)
        took = f"{self.times_s[name]:7.1f} s"
        self.console.print(f"[green]✓[/green] {name:<14} {took}  {description}")

    @staticmethod
    def _since(started: float) -> str:
        return f"{time.monotonic() - started:.1f} s"

    def run(self, command: Sequence[str | Path], *, input_bytes: bytes | None = None) -> str:
        """Run a command, its output appended to the log; returns stdout.

        On failure raises BuildError with the command and the last lines of its output.
        """
        argv = [str(part) for part in command]
        with self.log_path.open("a") as log:
            log.write("$ " + " ".join(argv) + "\n")
        try:
            result = subprocess.run(argv, input=input_bytes, capture_output=True, check=False)
        except FileNotFoundError:
            raise BuildError(
                f"{argv[0]} is not installed: run scripts/setup.sh (it installs the build tools)"
            ) from None
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        with self.log_path.open("a") as log:
            log.write(stdout + stderr)
        if result.returncode != 0:
            tail = "\n".join((stdout + stderr).strip().splitlines()[-15:])
            raise BuildError(
                f"command failed (exit {result.returncode}): {' '.join(argv)[:300]}\n{tail}\n"
                f"full log: {self.log_path}"
            )
        return stdout
