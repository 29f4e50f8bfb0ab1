"""Capture the probes' test fixtures: the raw section output of every read-only probe, from
live targets, into tests/unit/data/probes/LABEL/ (the unit tests interpret those files with
no target at hand; probes/base.py: a probe's output is `run_sections(target, probe.snippets)`).

    python -m scripts.checks.probes.capture --stack dev        # every deployed variant + host
    python -m scripts.checks.probes.capture --controls         # the one-way weakened controls
    python -m scripts.checks.probes.capture LABEL TARGET_URL [--redact]   # one target by hand

--stack writes one directory per deployed variant, named after it (container/, gvisor/, vm/,
...), and host/ for the host itself (local://). --controls starts every one-way weakened
container of scripts/checks/probes/weakenings.py (and the hardened starting point) from the
built app image, captures it into control-<name>/ and removes it. --out writes elsewhere than
tests/unit/data/probes (e.g. to compare a new capture with the committed one).

Each directory holds <probe>.txt (the target's stdout for that probe's snippets), target.txt
(URL and kind) and baseline/ (the host's baseline output and the marker argv[0] running while
the target was probed, taken in the same run so each capture is self-consistent). Command lines
of processes are replaced by the process name where the target sees the host's processes (the
host itself, a container in the host PID namespace): they belong to this machine, not to the
project. Mounts under /mnt (this machine's own temporary mounts) are left out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from components.errors import TwinlabError
from scripts.checks.parsers.proc import PROC_HEADER, parse_process_table
from scripts.checks.parsers.sections import sectioned_command
from scripts.checks.probes.baseline import BASELINE_SNIPPETS, host_baseline
from scripts.checks.probes.isolation import READ_ONLY_PROBES
from scripts.checks.probes.shell import PROBE_TIMEOUT_S
from scripts.checks.probes.system import OS_PROBES
from scripts.checks.probes.weakenings import CONTROLS, HARDENED, control_container
from scripts.checks.results.samples import HOST, HOST_LABEL, VariantLabel
from scripts.checks.targets.deployed import read_deployed
from scripts.checks.targets.target import parse_target
from scripts.termination import run_main
from workloads.images import find_images

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "unit" / "data" / "probes"
HOST_URL = "local://"
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


def capture(
    label: str,
    url: str,
    redacted: bool,
    out_root: Path = FIXTURES,
    variant: VariantLabel | None = None,
) -> Path:
    """Every read-only probe's raw output from the target at `url` into out_root/label/;
    `variant`: what the target is (None: its kind guessed from the URL scheme)."""
    out = out_root / label
    (out / "baseline").mkdir(parents=True, exist_ok=True)
    with host_baseline() as baseline, parse_target(url, variant) as target:
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
    (out / "target.txt").write_text(f"{url.split('?')[0]}\n{target.kind}\n", encoding="utf-8")
    print(f"captured {url.split('?')[0]} into {out}")
    return out


def capture_stack(stack: str, out_root: Path = FIXTURES) -> list[Path]:
    """Every deployed variant of `stack`, each into a directory named after it, and the host."""
    deployed = read_deployed(stack)
    written = [
        capture(v.name, v.target, False, out_root, VariantLabel(v.name, v.kind))
        for v in deployed.variants
    ]
    # The host sees its own processes: their command lines are this machine's.
    return [*written, capture(HOST, HOST_URL, True, out_root, HOST_LABEL)]


def capture_controls(out_root: Path = FIXTURES) -> list[Path]:
    image = find_images().container_image
    written = []
    for control in (HARDENED, *CONTROLS):
        name = f"twinlab-capture-{control.name}"
        with control_container(name, image, control):
            # Host PID namespace: the process table holds this machine's command lines.
            redacted = control.name == "host-pid"
            written.append(
                capture(f"control-{control.name}", f"docker://{name}", redacted, out_root)
            )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.checks.probes.capture",
        description="Capture every read-only probe's raw output from live targets as fixtures.",
    )
    parser.add_argument("--stack", help="capture every deployed variant of this stack + host")
    parser.add_argument("--controls", action="store_true", help="the weakened controls")
    parser.add_argument("--out", type=Path, default=FIXTURES, help=f"default {FIXTURES}")
    parser.add_argument("--redact", action="store_true", help="LABEL URL: redact command lines")
    parser.add_argument("label_and_url", nargs="*", metavar="LABEL URL")
    args = parser.parse_args(argv)
    chosen = [bool(args.stack), args.controls, bool(args.label_and_url)]
    if sum(chosen) != 1 or (args.label_and_url and len(args.label_and_url) != 2):
        parser.error("give one of --stack STACK, --controls, or LABEL TARGET_URL")
    try:
        if args.stack:
            capture_stack(args.stack, args.out)
        elif args.controls:
            capture_controls(args.out)
        else:
            label, url = args.label_and_url
            capture(label, url, args.redact, args.out)
    except TwinlabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
