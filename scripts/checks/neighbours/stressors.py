"""The noisy neighbour's stressors: CPU-bound, memory-bandwidth and fsync-heavy work, run
INSIDE the neighbour's isolation boundary (`docker exec` into the sibling container or sandbox,
SSH into the sibling VM's guest) with the image's own python3, so no package is added to the
image and the same program runs in every variant.

Each stressor sets itself up (the memory stressor allocates its buffers), then works until a
fixed number of seconds after it started and exits by itself, so it is bounded even if the
connection that started it dies; its last line of output is JSON: how much work it did, in what
unit, and how long its set-up took (the measurement window starts after `warmup_s`; a set-up
longer than that is recorded). Counting from its start, not from its set-up's end, keeps the
stress from running on past the load window by python3's start and the set-up, while it still
covers the window's end: it started after the command was launched, so it ends at least
`seconds` after the launch. Within the neighbour's own limits: the memory stressor's two
buffers (128 MiB) fit the deployed 512 MiB limit, the fsync stressor rewrites one 4 KiB block of
one file in the neighbour's data directory (its own fresh volume or disk overlay) and removes
the file.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from components.errors import TwinlabError

# Larger than the host's last-level cache (32 MiB here), so each copy goes to memory.
MEMORY_BUFFER_MIB = 64
FSYNC_BLOCK_BYTES = 4096
# How often the CPU loop looks at the clock: rarely enough to stay pure arithmetic.
CPU_BATCH = 20_000

STRESSORS = ("cpu", "memory", "fsync")
NONE = "none"  # the baseline: the sibling runs, idle
# The one stressor whose effects outlast it: the file system commits its unlink and writes
# back after it exits, so the next run waits `NeighbourPlan.settle_s` first.
WRITES_BACK = "fsync"

PROGRAM = f"""
import json, os, sys, time
kind, seconds = sys.argv[1], float(sys.argv[2])
started = time.monotonic()
work = 0
if kind == "cpu":
    x = 0
    setup = time.monotonic()
    end = started + seconds
    while time.monotonic() < end:
        for i in range({CPU_BATCH}):
            x += i * i
        work += {CPU_BATCH}
elif kind == "memory":
    source = bytearray(b"n") * ({MEMORY_BUFFER_MIB} << 20)
    copy = bytearray(len(source))
    setup = time.monotonic()
    end = started + seconds
    while time.monotonic() < end:
        copy[:] = source
        work += {MEMORY_BUFFER_MIB}
elif kind == "fsync":
    folder = os.environ.get("TWINLAB_DATA_DIR") or os.path.expanduser("~")
    path = os.path.join(folder, ".twinlab-neighbour-%d" % os.getpid())
    block = b"n" * {FSYNC_BLOCK_BYTES}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        setup = time.monotonic()
        end = started + seconds
        while time.monotonic() < end:
            os.pwrite(fd, block, 0)
            os.fsync(fd)
            work += 1
    finally:
        os.close(fd)
        os.unlink(path)
else:
    sys.exit("unknown stressor " + kind)
done = time.monotonic()
print(json.dumps({{"stressor": kind, "work": work, "setup_s": setup - started,
                  "work_s": done - setup}}))
"""

UNITS = {"cpu": "loop iterations/s", "memory": "MiB copied/s", "fsync": "fsyncs/s"}


class StressorError(TwinlabError):
    """A stressor cannot be planned or gave no usable report; the message says why."""


def check_stressors(stressors: tuple[str, ...]) -> None:
    """StressorError for an empty, repeated or unknown stressor name, before anything starts."""
    unknown = sorted(set(stressors) - set(STRESSORS))
    if unknown or not stressors or len(set(stressors)) != len(stressors):
        raise StressorError(
            f"stressors {list(stressors)}: choose one or more of {list(STRESSORS)}, each once"
        )


def command(stressor: str, seconds: float) -> str:
    """The shell command that runs `stressor` until `seconds` after it started."""
    check_stressors((stressor,))
    if not 0 < seconds <= 600:
        raise StressorError(f"stressor seconds {seconds:g}: must be in 0..600")
    return f"exec python3 -c {shlex.quote(PROGRAM)} {stressor} {seconds:g}"


@dataclass(frozen=True)
class StressorReport:
    stressor: str
    work: int  # loop iterations, MiB copied or fsyncs
    setup_s: float
    work_s: float

    @property
    def rate(self) -> float:
        return self.work / self.work_s if self.work_s > 0 else 0.0

    @property
    def unit(self) -> str:
        return UNITS[self.stressor]


def parse_report(stdout: str) -> StressorReport:
    """The stressor's JSON line (the last line of its output that parses)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
            return StressorReport(
                str(data["stressor"]),
                int(data["work"]),
                float(data["setup_s"]),
                float(data["work_s"]),
            )
        except (ValueError, KeyError, TypeError):
            continue
    raise StressorError(f"the stressor printed no report: {stdout.strip()[-200:]!r}")
