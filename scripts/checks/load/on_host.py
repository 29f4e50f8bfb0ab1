"""Load generators run on a remote target host itself, over its SSH (HostHandle).

Why on the host and not through a forward: an SSH forward would carry every request through
this machine's SSH client and the host's sshd (encryption, one more hop, both on CPU the
servers compete for), which adds latency and caps throughput; the generator on the host sees
the app as a local generator does, so P1 compares the variants, not the transport.

A run is one bash script on the host: it pins itself (taskset) to the generator's CPUs, prints
the affinity in force (inherited by the generator across exec), runs the generator under
`timeout -s KILL` (the bound), then `times` (the generator's user and system CPU, as wait4
gives locally). wrk comes from the host's Debian package (dynamically linked: install it
there); vegeta is a static Go binary, copied from this machine when the host has none.
"""

from __future__ import annotations

import base64
import hashlib
import platform
import re
import shlex
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from components.errors import TwinlabError
from scripts.checks.load.pinning import format_cpu_list, parse_cpu_list
from scripts.checks.targets.host import HostHandle

REMOTE_BIN = "~/.cache/twinlab/bin"  # where copied generators live on a host
RUN_SCRIPT = r"""
cpus=$1; deadline=$2; shift 2
if [ -n "$cpus" ]; then taskset -pc "$cpus" $$ >/dev/null || exit 125; fi
echo "TWINLAB_AFFINITY $(sed -n 's/^Cpus_allowed_list:\s*//p' /proc/$$/status)" >&2
timeout -s KILL "$deadline" "$@"
rc=$?
echo TWINLAB_TIMES >&2
times >&2
exit $rc
"""
# `times` prints the shell's own user/system time, then its children's: the generator's.
TIMES_RE = re.compile(r"^TWINLAB_TIMES\n.*\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s$", re.MULTILINE)
AFFINITY_RE = re.compile(r"^TWINLAB_AFFINITY (\S*)$", re.MULTILINE)
KILLED_RC = 137  # timeout -s KILL: 128 + SIGKILL


class HostToolError(TwinlabError):
    """A generator cannot run on the target host; the message names the host and the fix."""


@dataclass(frozen=True)
class HostRun:
    rc: int
    stdout: str
    stderr: str  # the generator's own, without twinlab's marker lines
    cpu_s: float  # the generator's user + system time
    wall_s: float
    affinity: frozenset[int]
    killed: bool  # ran past its deadline


def run_generator(
    host: HostHandle, argv: Sequence[str], deadline_s: float, cpus: frozenset[int] | None = None
) -> HostRun:
    """Run a load generator on the host, pinned to `cpus` (None: as the host places it)."""
    pinned = format_cpu_list(cpus) if cpus else ""
    script = ["bash", "-c", RUN_SCRIPT, "twinlab-load", pinned, f"{deadline_s:g}", *argv]
    started = time.monotonic()
    done = host.run(script, timeout_s=deadline_s + 30)
    wall_s = time.monotonic() - started
    if done.returncode == 125:
        raise HostToolError(f"host {host}: taskset could not pin the generator to {pinned}")
    times = TIMES_RE.search(done.stderr)
    affinity = AFFINITY_RE.search(done.stderr)
    if times is None or affinity is None:
        raise HostToolError(f"host {host}: the generator gave no accounting: {done.stderr[-300:]}")
    user_s = int(times[1]) * 60 + float(times[2])
    sys_s = int(times[3]) * 60 + float(times[4])
    own_stderr = AFFINITY_RE.sub("", TIMES_RE.sub("", done.stderr)).strip()
    return HostRun(
        rc=done.returncode,
        stdout=done.stdout,
        stderr=own_stderr,
        cpu_s=user_s + sys_s,
        wall_s=wall_s,
        affinity=parse_cpu_list(affinity[1]) if affinity[1] else frozenset(),
        killed=done.returncode == KILLED_RC,
    )


def host_tool(host: HostHandle, name: str, local_copy: str | None = None) -> str:
    """The path of `name` on the host: on its PATH, else a copy of `local_copy` (a static
    binary of this machine) under REMOTE_BIN, uploaded once per content."""
    found = host.run(["sh", "-c", f"command -v {shlex.quote(name)}"])
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    if local_copy is None:
        raise HostToolError(
            f"host {host}: {name} is not installed there; install it on the host "
            f"(apt-get install {name})"
        )
    data = Path(local_copy).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    target = f"{REMOTE_BIN}/{name}-{digest}"
    present = host.run(["sh", "-c", f"test -x {target} && echo $HOME/{target[2:]}"])
    if present.returncode == 0 and present.stdout.strip():
        return present.stdout.strip()
    upload = (
        f"mkdir -p {REMOTE_BIN} && base64 -d > {target}.tmp && chmod 755 {target}.tmp && "
        f"mv {target}.tmp {target} && echo $HOME/{target[2:]}"
    )
    done = host.run(["sh", "-c", upload], input_text=base64.b64encode(data).decode(), timeout_s=300)
    if done.returncode != 0:
        raise HostToolError(f"host {host}: cannot copy {name} there: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def work_dir(host: HostHandle | None, prefix: str) -> Iterator[str]:
    """A private directory for a run's files where the generator runs (None: here)."""
    if host is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as path:
            yield path
        return
    made = host.run(["mktemp", "-d", "--tmpdir", f"{prefix}XXXXXX"])
    if made.returncode != 0:
        raise HostToolError(f"host {host}: cannot make a temporary directory there")
    path = made.stdout.strip()
    try:
        yield path
    finally:
        host.run(["rm", "-rf", "--", path])


def write_host_file(host: HostHandle, path: str, text: str) -> None:
    done = host.run(["sh", "-c", 'cat > "$0"', path], input_text=text)
    if done.returncode != 0:
        raise HostToolError(f"host {host}: cannot write {path}: {done.stderr.strip()}")


def host_kernel_release(host: HostHandle | None) -> str:
    """The kernel the generator and the servers run on."""
    if host is None or host.is_local:
        return platform.release()
    return host.run(["uname", "-r"]).stdout.strip()


TW_REUSE_PATH = "/proc/sys/net/ipv4/tcp_tw_reuse"
# scripts/setup.sh sets it; with Linux's default (2: loopback only) docker-proxy's connections
# to the container use up the ephemeral ports under load (README "Host networking").
TW_REUSE_WANTED = "1"


def host_tcp_tw_reuse(host: HostHandle | None) -> str:
    """net.ipv4.tcp_tw_reuse where the servers run."""
    if host is None or host.is_local:
        return Path(TW_REUSE_PATH).read_text(encoding="utf-8").strip()
    return host.read_text(TW_REUSE_PATH).strip()
