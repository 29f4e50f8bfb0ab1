"""Showing the waits on clones to boot (the wait itself is components/http_wait.py)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


def progress(console: Console | None = None) -> Progress:
    """Spinner, description and elapsed time: for the waits on clones to boot."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
    )
