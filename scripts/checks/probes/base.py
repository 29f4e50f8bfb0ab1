"""A read-only probe: shell snippets to run inside a target and a pure function turning their
output into readings. Capturing a probe's raw output for a test is
`run_sections(target, probe.snippets)`; the interpretation is then tested without any target.

Read-only probes are also run in batches (one round trip for many probes): under software
emulation every command in a VM costs about a second of sudo and shell start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from scripts.checks.parsers.sections import Sections
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import Reading, to_sample
from scripts.checks.probes.shell import run_sections
from scripts.checks.results.samples import Sample
from scripts.checks.targets.target import Target

Interpret = Callable[[Sections, HostBaseline], list[Reading]]
SEPARATOR = "__"


@dataclass(frozen=True)
class ReadProbe:
    name: str
    snippets: Mapping[str, str]
    interpret: Interpret

    def samples(self, sections: Sections, target: Target, baseline: HostBaseline) -> list[Sample]:
        readings = self.interpret(sections, baseline)
        return [to_sample(reading, target, self.name) for reading in readings]

    def __call__(self, target: Target, baseline: HostBaseline) -> list[Sample]:
        return self.samples(run_sections(target, self.snippets), target, baseline)


def run_batch(probes: Sequence[ReadProbe], target: Target, baseline: HostBaseline) -> list[Sample]:
    """Several read-only probes in one round trip; the same samples as calling each."""
    snippets = {
        f"{probe.name}{SEPARATOR}{name}": snippet
        for probe in probes
        for name, snippet in probe.snippets.items()
    }
    sections = run_sections(target, snippets)
    samples: list[Sample] = []
    for probe in probes:
        prefix = probe.name + SEPARATOR
        own = {
            key[len(prefix) :]: section
            for key, section in sections.items()
            if key.startswith(prefix)
        }
        samples.extend(probe.samples(own, target, baseline))
    return samples
