"""A deliberately weakened container (I3): privileged, in the host's PID namespace.

The checks start one from the deployed container's image, probe it beside the real one, and
remove it. Where the host's root lacks some capability (these sandboxes lack SYS_RESOURCE) runc
cannot apply --privileged; then the same weakening is asked for piece by piece: every capability
the host has, no seccomp, /proc and /sys unmasked, host PID namespace.

    docker://NAME of a container you weakened by hand works with every check too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from components.errors import TwinlabError
from scripts.checks.parsers.proc import CAP_NAMES, cap_mask, parse_status
from scripts.checks.targets.host import HostHandle, local_host

PRIVILEGED_FLAGS = ("--privileged", "--pid=host")
WEAKENED_METADATA = {"weakened": True}


@dataclass(frozen=True)
class WeakenedContainer:
    name: str
    flags: str

    @property
    def target(self) -> str:
        return f"docker://{self.name}"


def missing_host_caps(host: HostHandle) -> list[str]:
    """Capabilities the host's root lacks: Docker fails to grant them to a privileged one."""
    status = parse_status(host.read_text("/proc/self/status"))
    bounding = cap_mask(status["CapBnd"])
    last = int(host.read_text("/proc/sys/kernel/cap_last_cap"))
    return [CAP_NAMES[bit] for bit in range(last + 1) if not bounding >> bit & 1]


def piecewise_flags(missing_caps: list[str]) -> list[str]:
    drops = [arg for cap in missing_caps for arg in ("--cap-drop", cap)]
    return [
        "--cap-add=ALL",
        *drops,
        "--security-opt=seccomp=unconfined",
        "--security-opt=systempaths=unconfined",
        "--pid=host",
    ]


def start_weakened(name: str, image: str, host: HostHandle | None = None) -> WeakenedContainer:
    host = host or local_host()
    started = host.docker(["run", "-d", "--name", name, *PRIVILEGED_FLAGS, image])
    if started.returncode == 0:
        return WeakenedContainer(name, " ".join(PRIVILEGED_FLAGS))
    host.docker(["rm", "-f", name])
    flags = piecewise_flags(missing_host_caps(host))
    started = host.docker(["run", "-d", "--name", name, *flags, image])
    if started.returncode != 0:
        raise TwinlabError(f"cannot start the weakened container {name}: {started.stderr.strip()}")
    return WeakenedContainer(name, " ".join(flags))


@contextmanager
def weakened_container(
    name: str, image: str, host: HostHandle | None = None
) -> Iterator[WeakenedContainer]:
    """A weakened container on the host (None: this machine's Docker) for the duration of the
    block; always removed."""
    host = host or local_host()
    host.docker(["rm", "-f", name])
    try:
        yield start_weakened(name, image, host)
    finally:
        host.docker(["rm", "-f", name])
