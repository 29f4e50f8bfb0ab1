"""The neighbours check group (N1): each variant's app beside a noisy sibling of its own kind."""

from __future__ import annotations

from components.errors import TwinlabError
from scripts.checks.lifecycle import RunContext
from scripts.checks.neighbours import measure as noisy
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import Sample, textbook_pair


def run(context: RunContext) -> list[Sample]:
    subjects, plan = context.subjects, context.options.neighbours
    deployed = [
        noisy.Subject(s.label, s.instance_name, s.target, s.url)
        for s in subjects.items
        if s.label is not None and s.instance_name and s.url
    ]
    if subjects.stack is None or not deployed:
        raise TwinlabError("neighbour checks clone the deployed instances: run them on a stack")
    wanted = textbook_pair(s.label for s in deployed)
    judged_only = context.options.judged_only
    chosen = [s for s in deployed if not judged_only or s.label.name in wanted]
    tags = run_tags(context.virt_mode, context.run_id)
    left_out = [
        noisy.unavailable_sample(
            s,
            "not judged by N1, so left out of run-all (about 75 s); "
            f"`fab neighbours --stack {subjects.stack}` measures every variant",
            tags,
        )
        for s in deployed
        if s not in chosen
    ]
    context.console.print(
        f"[bold]noisy neighbours[/] (N1) for {', '.join(s.label.name for s in chosen)}: {plan}"
    )
    return left_out + noisy.measure_neighbours(
        chosen,
        plan,
        stack=subjects.stack,
        host=subjects.host,
        tags=tags,
        on_event=context.console.print,
    )
