"""The neighbours check group (N1): each variant's app beside a noisy sibling of its own kind."""

from __future__ import annotations

from components.errors import TwinlabError
from scripts.checks.lifecycle import RunContext
from scripts.checks.neighbours import measure as noisy
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import Sample


def run(context: RunContext) -> list[Sample]:
    subjects, plan = context.subjects, context.options.neighbours
    chosen = [
        noisy.Subject(s.label, s.instance_name, s.target, s.url)
        for s in subjects.items
        if s.label is not None and s.instance_name and s.url
    ]
    if subjects.stack is None or not chosen:
        raise TwinlabError("neighbour checks clone the deployed instances: run them on a stack")
    context.console.print(f"[bold]noisy neighbours[/] (N1): {plan}")
    return noisy.measure_neighbours(
        chosen,
        plan,
        stack=subjects.stack,
        host=subjects.host,
        tags=run_tags(context.virt_mode, context.run_id),
        on_event=context.console.print,
    )
