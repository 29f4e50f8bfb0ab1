"""Capture the raw output of every read-only probe from real targets, for the parser tests.

    cd /work/main && .venv/bin/python -m tests.unit.data.capture_probes LABEL TARGET_URL [--redact]
    .venv/bin/python -m tests.unit.data.capture_probes --controls

--controls captures every one-way weakened container of scripts/checks/probes/weakenings.py (and the
hardened starting point) from the built app image, each started, captured into
control-<name>/ and removed.

writes tests/unit/data/probes/LABEL/<probe>.txt (the target's stdout for that probe's snippets)
and, in the same run, tests/unit/data/probes/LABEL/baseline/ (the host's baseline output and
the marker argv[0] running while the target was probed), so each capture is self-consistent.
--redact replaces every command line but the marker's by the process name: use it where the
target sees the host's processes (local://, a container sharing the host PID namespace), whose
command lines belong to this machine, not to the project.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from scripts.checks.parsers.proc import PROC_HEADER, parse_process_table
from scripts.checks.parsers.sections import sectioned_command
from scripts.checks.probes.baseline import BASELINE_SNIPPETS, host_baseline
from scripts.checks.probes.isolation import READ_ONLY_PROBES
from scripts.checks.probes.shell import PROBE_TIMEOUT_S
from scripts.checks.probes.system import OS_PROBES
from scripts.checks.probes.weakenings import CONTROLS, HARDENED, control_container
from scripts.checks.targets.target import parse_target
from workloads.images import find_images

DATA = Path(__file__).resolve().parent / "probes"
# A mountinfo line of a mount under some /mnt/: this machine's own temporary mounts, nothing
# the probes judge, and no business of the fixtures.
LOCAL_MOUNT = re.compile(r"^\d+ \d+ \d+:\d+ \S+ (/\S*)?/mnt/\S* .*\n", re.MULTILINE)


def without_local_mounts(output: str) -> str:
    return LOCAL_MOUNT.sub("", output)


def redact(output: str, marker: str) -> str:
    """Replace the content of every /proc/PID/cmdline block but the marker's by the comm."""
    comms = {entry.pid: entry.comm for entry in parse_process_table(output)[1]}
    lines: list[str] = []
    pid, state = 0, "keep"  # in a cmdline block: "redact" its first line, "drop" the rest
    for line in output.split("\n"):
        header = PROC_HEADER.match(line)
        if line.startswith("@@twinlab-"):  # a section marker ends any block
            state = "keep"
            lines.append(line)
        elif header:
            pid, state = int(header.group(1)), "redact" if header.group(2) == "cmdline" else "keep"
            lines.append(line)
        elif state == "redact" and line and not line.startswith(marker):
            lines.append(comms.get(pid, "?"))
            state = "drop"
        elif state != "drop" or not line:
            lines.append(line)
    return "\n".join(lines)


def capture(label: str, url: str, redacted: bool) -> None:
    out = DATA / label
    (out / "baseline").mkdir(parents=True, exist_ok=True)
    with host_baseline() as baseline, parse_target(url) as target:
        host_text = baseline.host.run(sectioned_command(BASELINE_SNIPPETS), root=True).stdout
        host_text = without_local_mounts(host_text)
        (out / "baseline" / "host.txt").write_text(host_text, encoding="utf-8")
        (out / "baseline" / "marker.txt").write_text(baseline.marker_argv0 + "\n")
        for probe in (*OS_PROBES, *READ_ONLY_PROBES):
            command = sectioned_command(probe.snippets)
            text = target.run(command, root=True, timeout_s=PROBE_TIMEOUT_S).stdout
            text = without_local_mounts(text)
            if redacted:
                text = redact(text, baseline.marker_argv0)
            (out / f"{probe.name}.txt").write_text(text, encoding="utf-8")
    (out / "target.txt").write_text(f"{url}\n{target.kind}\n", encoding="utf-8")
    print(f"captured {url} into {out}")


def capture_controls() -> None:
    image = find_images().container_image
    for control in (HARDENED, *CONTROLS):
        name = f"twinlab-capture-{control.name}"
        with control_container(name, image, control):
            # Host PID namespace: the process table holds this machine's command lines.
            capture(f"control-{control.name}", f"docker://{name}", control.name == "host-pid")


if __name__ == "__main__":
    if sys.argv[1:] == ["--controls"]:
        capture_controls()
        sys.exit(0)
    args = [arg for arg in sys.argv[1:] if arg != "--redact"]
    if len(args) != 2:
        sys.exit(
            "usage: python -m tests.unit.data.capture_probes LABEL TARGET_URL [--redact]"
            " | --controls"
        )
    capture(args[0], args[1], "--redact" in sys.argv)
