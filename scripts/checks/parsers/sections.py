"""One round trip per probe: several shell snippets in one command, output split by markers.

Each snippet runs in a subshell with stderr merged into stdout; its exit status travels in the
end marker, so a probe can tell "missing file" from "empty file".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

BEGIN = "@@twinlab-begin"
END = "@@twinlab-end"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
END_LINE = re.compile(rf"^{END} ([a-z][a-z0-9_]*) (\d+)$")


@dataclass(frozen=True)
class Section:
    rc: int
    text: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def value(self) -> str:
        """The output stripped of surrounding whitespace (for one-value reads)."""
        return self.text.strip()


Sections = Mapping[str, Section]


def sectioned_command(snippets: Mapping[str, str]) -> str:
    """A POSIX sh script running every snippet, each framed by begin/end marker lines."""
    parts = []
    for name, snippet in snippets.items():
        if not NAME.match(name):
            raise ValueError(f"section name {name!r} must match {NAME.pattern}")
        parts.append(
            f"printf '\\n{BEGIN} %s\\n' {name}\n"
            f"( {snippet}\n) 2>&1\n"
            f"printf '\\n{END} %s %d\\n' {name} $?"
        )
    return "\n".join(parts)


def split_sections(output: str) -> dict[str, Section]:
    """Sections by name from the output of `sectioned_command`; a section cut short is absent."""
    sections: dict[str, Section] = {}
    current: str | None = None
    body: list[str] = []
    for line in output.split("\n"):
        if line.startswith(BEGIN + " ") and NAME.match(line[len(BEGIN) + 1 :]):
            current, body = line[len(BEGIN) + 1 :], []
            continue
        ended = END_LINE.match(line)
        if ended and current == ended.group(1):
            # The end printf starts with its own newline: the last body line is ours.
            text = "\n".join(body[:-1]) if body and body[-1] == "" else "\n".join(body)
            sections[ended.group(1)] = Section(int(ended.group(2)), text)
            current = None
            continue
        if current is not None:
            body.append(line)
    return sections
