"""Capture a running domain's QEMU memory map and the provider's domain XML, for the unit tests.

    .venv/bin/python -m tests.unit.data.capture_qemu_memory DOMAIN LABEL
    .venv/bin/python -m tests.unit.data.capture_qemu_memory --provider-log LOG LABEL

The first writes tests/unit/data/resources/LABEL.smaps (/proc/PID/smaps kept to each mapping's
header and its Size, Rss and Pss lines) and LABEL.smaps_rollup of the domain's QEMU. The second
reads the log of `pulumi up --yes -v=9 --logflow --logtostderr 2>LOG` and writes the domain XML
pulumi-libvirt generated (LABEL.provider.xml) and the XML after the stack's XSLT, as sent to
libvirt (LABEL.transformed.xml). Run both under the measure lock.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from scripts.checks.targets.libvirt_domains import Virsh

DATA = Path(__file__).resolve().parent / "resources"
KEPT_FIELDS = ("Size:", "Rss:", "Pss:")


def trimmed_smaps(text: str) -> str:
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(KEPT_FIELDS) or re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line)
    ]
    return "\n".join(lines) + "\n"


def capture_domain(domain: str, label: str) -> None:
    pid = Virsh().qemu_pid(domain)
    proc = Path("/proc") / str(pid)
    (DATA / f"{label}.smaps").write_text(trimmed_smaps((proc / "smaps").read_text()))
    (DATA / f"{label}.smaps_rollup").write_text((proc / "smaps_rollup").read_text())


def provider_xml(log_text: str, heading: str) -> str:
    """The XML logged after `heading` by the provider (its DEBUG lines reach Pulumi's log)."""
    messages = []
    for line in log_text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("v") == 3:
            messages.append(str(record.get("msg", "")))
    found = re.search(re.escape(heading) + r"\n(.*?</domain>)", "\n".join(messages), re.S)
    if found is None:
        raise SystemExit(f"no {heading!r} in the log: was it written with -v=9 --logflow?")
    return found.group(1).strip() + "\n"


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--provider-log":
        text = Path(argv[1]).read_text()
        label = argv[2]
        generated = "[DEBUG] Generated XML for libvirt domain:"
        transformed = "[DEBUG] Transformed XML with user specified XSLT:"
        (DATA / f"{label}.provider.xml").write_text(provider_xml(text, generated))
        (DATA / f"{label}.transformed.xml").write_text(provider_xml(text, transformed))
        return 0
    if len(argv) == 2:
        capture_domain(*argv)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
