"""A read-only probe: shell snippets to run inside a target and a pure function turning their
output into readings. Capturing a probe's raw output for a test is
`run_sections(target, probe.snippets)`; the interpretation is then tested without any target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scripts.checks.parsers.sections import Sections
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import Reading, to_sample
from scripts.checks.probes.shell import run_sections
from scripts.checks.samples import Sample
from scripts.checks.targets import Target

Interpret = Callable[[Sections, HostBaseline], list[Reading]]


@dataclass(frozen=True)
class ReadProbe:
    name: str
    snippets: Mapping[str, str]
    interpret: Interpret

    def __call__(self, target: Target, baseline: HostBaseline) -> list[Sample]:
        sections = run_sections(target, self.snippets)
        readings = self.interpret(sections, baseline)
        return [to_sample(reading, target, self.name) for reading in readings]
