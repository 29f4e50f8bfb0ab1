"""Host facts that config validation needs, in one place so tests can fake them."""

from __future__ import annotations

import functools
import json
import os
import random
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from components.remote_ssh import remote_command, ssh_client_options, ssh_endpoint
from components.virt_mode import VirtMode


@dataclass(frozen=True)
class HostFacts:
    cpu_count: int
    memory_mib: int
    is_root: bool
    detected_virt_mode: VirtMode | None
    built_app_version: str | None
    port_holder: Callable[[int], str | None]
    readable: Callable[[str], bool]
    # What a variant may need (components/variant.py `unavailable`); asked only when needed.
    has_command: Callable[[str], bool] = field(default=lambda _name: True)
    docker_runtimes: Callable[[], frozenset[str]] = field(default=lambda: frozenset({"runc"}))


def memory_mib_from_meminfo(meminfo: str) -> int:
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    if match is None:
        raise ValueError("no MemTotal line in /proc/meminfo")
    return int(match.group(1)) // 1024


def process_from_ss(ss_output: str) -> str | None:
    """The first 'name(pid=N)' listed by `ss -Hltnp` for a listening socket, if any."""
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', ss_output)
    return None if match is None else f"{match.group(1)} (pid {match.group(2)})"


def loopback_port_holder(port: int) -> str | None:
    """None when 127.0.0.1:port can be bound; otherwise a description of who holds it.

    The description includes the holder's command line, so callers can recognise their own
    container (docker-proxy names the container IP; QEMU names the domain with -name guest=).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return None
        except OSError:
            pass
    try:
        ss = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "another process"
    holder = process_from_ss(ss)
    if holder is None:
        return "another process"
    pid = holder.split("pid ")[1].rstrip(")")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        argv = ""
    return f"{holder}: {argv[:300]}" if argv else holder


def free_loopback_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now, chosen below the kernel's ephemeral range, so that no
    outgoing connection or short-lived listener (Pulumi's own gRPC servers) can take one
    between now and the deployment that uses them."""
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as port_range:
        low = int(port_range.read().split()[0])
    candidates = list(range(20000, min(low, 32768)))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise OSError("no free 127.0.0.1 ports below the ephemeral range")


def docker_info_runtimes_argv(docker_host: str, key_path: str | None) -> list[str]:
    """`docker info` listing the runtimes of the daemon at `docker_host`: over ssh:// on the
    host itself, the way the Docker provider and the daemon check reach it (the docker CLI
    cannot be given ssh options); else the local CLI with -H."""
    info = ["docker", "info", "--format", "{{json .Runtimes}}"]
    if not docker_host.startswith("ssh://"):
        return [info[0], "-H", docker_host, *info[1:]]
    endpoint = ssh_endpoint(docker_host)
    return [
        "ssh",
        *ssh_client_options(key_path),
        *endpoint.destination_args(),
        remote_command(*info),
    ]


@functools.cache
def docker_runtimes(docker_host: str, key_path: str | None = None) -> frozenset[str]:
    """The OCI runtimes the Docker daemon at `docker_host` has registered (the stack's host's,
    not this machine's); empty when it does not answer (the daemon check names that)."""
    try:
        done = subprocess.run(
            docker_info_runtimes_argv(docker_host, key_path),
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        runtimes = json.loads(done.stdout or "{}") if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return frozenset()
    return frozenset(runtimes) if isinstance(runtimes, dict) else frozenset()


def probe_host(
    detected_virt_mode: VirtMode | None,
    built_app_version: str | None,
    docker_host: str,
    key_path: str | None = None,
) -> HostFacts:
    """This machine's facts; the Docker runtimes are those of the daemon at `docker_host`."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        memory_mib = memory_mib_from_meminfo(meminfo.read())
    return HostFacts(
        cpu_count=os.cpu_count() or 1,
        memory_mib=memory_mib,
        is_root=os.geteuid() == 0,
        detected_virt_mode=detected_virt_mode,
        built_app_version=built_app_version,
        port_holder=loopback_port_holder,
        readable=lambda path: os.path.isfile(path) and os.access(path, os.R_OK),
        has_command=lambda name: shutil.which(name) is not None,
        docker_runtimes=functools.partial(docker_runtimes, docker_host, key_path),
    )
