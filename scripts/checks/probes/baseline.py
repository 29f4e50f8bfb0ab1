"""The host as every probe compares against it, read once per run with the probes' own snippets.

While a baseline is open, a marker process with a unique argv[0] sleeps on the host, so a probe
can tell whether host processes are visible inside a target. It is killed (by PID) on exit and
would end by itself after MARKER_LIFETIME_S if the run died.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from scripts.checks.parsers import proc
from scripts.checks.parsers.mountinfo import Mount, parse_mountinfo
from scripts.checks.parsers.sections import Section, Sections
from scripts.checks.probes import syscall_test
from scripts.checks.probes.shell import (
    BOOT_ID,
    LSM_SNIPPETS,
    MODULES,
    MOUNTINFO,
    NAMESPACES,
    STATUS,
    UPTIME,
    ProbeOutputError,
    active_lsms,
    optional,
    run_sections,
)
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.target import LocalTarget, Target, host_target

MARKER_LIFETIME_S = 1800
BASELINE_SNIPPETS = {
    "release": "uname -r",
    "boot_id": BOOT_ID,
    "uptime": UPTIME,
    "modules": MODULES,
    "status": STATUS,
    "namespaces": NAMESPACES,
    "mountinfo": MOUNTINFO,
    "syscalls": syscall_test.SNIPPET,
    **LSM_SNIPPETS,
}


@dataclass(frozen=True)
class HostBaseline:
    host: Target  # for probes that must re-read host state (module list, sysctl) mid-probe
    kernel_release: str
    boot_id: str
    uptime_s: float
    read_at: float  # time.monotonic() when uptime_s was read
    module_names: frozenset[str] | None  # None: the kernel has no module support
    cap_eff: int  # root's effective capabilities on the host
    marker_argv0: str
    marker_pid: int
    # For the misconfiguration probes; empty when the host could not show them.
    namespaces: Mapping[str, str] = field(default_factory=dict)  # "pid" -> "pid:[4026531836]"
    mounts: tuple[Mount, ...] = ()
    syscall_answers: Mapping[str, str] = field(default_factory=dict)  # "mount" -> "EFAULT"
    lsms: tuple[str, ...] = ()  # confining LSMs the host kernel runs

    def uptime_now_s(self) -> float:
        return self.uptime_s + (time.monotonic() - self.read_at)


def baseline_from_sections(
    sections: Sections, host: Target, marker_argv0: str, marker_pid: int, read_at: float
) -> HostBaseline:
    modules = optional(sections, "modules")
    status = proc.parse_status(sections["status"].text)
    missing = Section(1, "")  # captures made before a section existed

    def text(name: str) -> str:
        section = sections.get(name, missing)
        return section.text if section.ok else ""

    return HostBaseline(
        host=host,
        kernel_release=sections["release"].value,
        boot_id=sections["boot_id"].value,
        uptime_s=proc.uptime_s(sections["uptime"].text),
        read_at=read_at,
        module_names=None if modules is None else proc.module_names(modules),
        cap_eff=proc.cap_mask(status["CapEff"]),
        marker_argv0=marker_argv0,
        marker_pid=marker_pid,
        namespaces=proc.parse_namespaces(text("namespaces")),
        mounts=tuple(parse_mountinfo(text("mountinfo"))),
        syscall_answers=syscall_test.parse_answers(text("syscalls")),
        lsms=active_lsms({name: sections.get(name, missing) for name in LSM_SNIPPETS}),
    )


@contextmanager
def host_baseline(host: HostHandle | None = None) -> Iterator[HostBaseline]:
    """Read the host (the stack's host; None: this machine) once and keep the marker process
    alive on it until exit."""
    if host is not None and not host.is_local:
        with remote_marker(host) as (argv0, pid):
            target = host_target(host)
            sections = run_sections(target, BASELINE_SNIPPETS)
            yield baseline_from_sections(sections, target, argv0, pid, time.monotonic())
        return
    sleep = shutil.which("sleep")
    if sleep is None:
        raise ProbeOutputError("local://: no `sleep` on PATH to start the host marker process")
    argv0 = marker_argv0()
    marker = subprocess.Popen(
        [argv0, str(MARKER_LIFETIME_S)],
        executable=sleep,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        local = LocalTarget("local://")
        sections = run_sections(local, BASELINE_SNIPPETS)
        yield baseline_from_sections(sections, local, argv0, marker.pid, time.monotonic())
    finally:
        marker.kill()
        marker.wait()


def marker_argv0() -> str:
    return f"twinlab-marker-{uuid.uuid4().hex[:12]}"


@contextmanager
def remote_marker(host: HostHandle) -> Iterator[tuple[str, int]]:
    """The marker process on a remote host, started over its SSH (bash's exec -a names it)."""
    argv0 = marker_argv0()
    script = 'nohup bash -c \'exec -a "$0" sleep "$1"\' "$0" "$1" >/dev/null 2>&1 & echo $!'
    started = host.run(["sh", "-c", script, argv0, str(MARKER_LIFETIME_S)])
    if started.returncode != 0 or not started.stdout.strip().isdigit():
        raise ProbeOutputError(f"host {host}: cannot start the marker process: {started.stderr}")
    pid = int(started.stdout.strip())
    try:
        yield argv0, pid
    finally:
        host.run(["kill", str(pid)])
