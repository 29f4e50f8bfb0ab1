"""The resource check group (R1-R4): start-up, memory and idle CPU, sizes, density; it needs
the deployed instances by name."""

from __future__ import annotations

from components.errors import TwinlabError
from scripts.checks.lifecycle import RunContext
from scripts.checks.resources.meters import Instance
from scripts.checks.resources.runner import run_resource_checks
from scripts.checks.results.samples import Sample


def run(context: RunContext) -> list[Sample]:
    subjects, options = context.subjects, context.options
    instances = [
        Instance(s.label, s.instance_name, s.target)
        for s in subjects.items
        if s.instance_name and s.label is not None
    ]
    if not instances:
        raise TwinlabError(
            "resource checks need the deployed instances by name: run them on a stack "
            "(--stack) rather than on targets named by hand"
        )
    context.console.print(
        "[bold]resources[/] (R1-R4): " + ", ".join(i.label.name for i in instances)
    )
    return run_resource_checks(
        instances,
        options.resource_checks,
        stack=subjects.stack,
        repeats=options.start_repeats,
        idle_window_s=options.idle_window_s,
        budget_mib=options.density_budget_mib,
        density=options.density,
        run_id=context.run_id,
        console=context.console,
        virt_mode=context.virt_mode,
        host=subjects.host,
    )
