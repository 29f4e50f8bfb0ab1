"""Containers weakened in exactly one way: the negative controls of the misconfiguration probes.

Each control starts from the same hardened configuration as the stack's container (non-root
user, every capability dropped, no-new-privileges, read-only root, memory, CPU and PIDs limits)
and changes one thing, which one probe must then report with its CIS item. Used by the live
tests (tests/integration/test_misconfig_live.py) and by the fixture capture
(python -m scripts.checks.probes.capture --controls), so both exercise the same containers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from components.errors import TwinlabError
from components.pids_limit import PIDS_LIMIT

HARDENED_FLAGS = (
    *("--user", "twinapp", "--cap-drop", "ALL"),
    *("--security-opt", "no-new-privileges:true", "--read-only"),
    *("--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=16m"),
    *("--tmpfs", "/var/lib/twinlab:rw,size=16m,uid=10001,gid=10001"),
    *("--memory", "256m", "--memory-swap", "256m", "--cpuset-cpus", "0"),
)
PIDS_LIMIT_FLAGS = ("--pids-limit", str(PIDS_LIMIT))
DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Weakening:
    name: str  # short label, also the fixture directory name under tests/unit/data/probes/
    flags: tuple[str, ...]  # added to HARDENED_FLAGS (PIDS_LIMIT_FLAGS unless keep_pids_limit)
    metric: str  # the finding that must report it
    cis: str  # the CIS Docker Benchmark v1.6.0 item it must name
    keep_pids_limit: bool = True

    def docker_flags(self) -> tuple[str, ...]:
        pids = PIDS_LIMIT_FLAGS if self.keep_pids_limit else ()
        return (*HARDENED_FLAGS, *pids, *self.flags)


CONTROLS = (
    Weakening(
        "docker-socket",
        ("-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}"),
        "runtime_socket_reachable",
        "5.32",
    ),
    Weakening("host-root-mounted", ("-v", "/:/host"), "sensitive_host_path_mounted", "5.6"),
    Weakening("host-network", ("--network", "host"), "host_net_namespace_shared", "5.10"),
    Weakening("host-pid", ("--pid", "host"), "host_pid_namespace_shared", "5.16"),
    Weakening("host-ipc", ("--ipc", "host"), "host_ipc_namespace_shared", "5.17"),
    Weakening("host-uts", ("--uts", "host"), "host_uts_namespace_shared", "5.21"),
    # A block device (an unused loop device: opening it read-only touches nothing). Not
    # /dev/kmsg: with kernel.dmesg_restrict=1 (these hosts) a root without CAP_SYSLOG cannot
    # open it even when exposed, and the probe rightly reports it refused.
    Weakening("block-device", ("--device", "/dev/loop0"), "privileged_device_access", "5.18"),
    Weakening(
        "seccomp-unconfined",
        ("--security-opt", "seccomp=unconfined"),
        "seccomp_unconfined",
        "5.22",
    ),
    Weakening(
        "systempaths-unconfined",
        ("--security-opt", "systempaths=unconfined"),
        "kernel_escape_file_writable",
        "5.5",
    ),
    Weakening("no-pids-limit", (), "pids_unlimited", "5.29", keep_pids_limit=False),
    Weakening("root-user", ("--user", "0"), "root_without_userns", "4.1"),
    Weakening(
        "apparmor-unconfined",
        ("--security-opt", "apparmor=unconfined"),
        "lsm_unconfined",
        "5.2",
    ),
)
# The hardened starting point itself: no finding may be reported for it.
HARDENED = Weakening("hardened", (), "", "")


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@contextmanager
def control_container(name: str, image: str, control: Weakening) -> Iterator[str]:
    """The control running as container `name` for the block; removed whatever happens."""
    docker("rm", "-f", name)
    try:
        started = docker("run", "-d", "--name", name, *control.docker_flags(), image)
        if started.returncode != 0:
            raise TwinlabError(f"cannot start control {control.name}: {started.stderr.strip()}")
        yield name
    finally:
        docker("rm", "-f", name)
