"""Boot the VM image under plain QEMU and time it: QEMU start -> first HTTP 200 from /healthz.

Same devices as the libvirt deployment (machine pc, virtio-blk, virtio-net on user-mode
networking with host forwards on 127.0.0.1, virtio-rng unless --no-rng). Each run boots a fresh
qcow2 overlay, so every run is a first boot of a new VM, and passes a throwaway SSH key on the
kernel command line.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .cmdline import cmdline_with_ssh_key
from .manifest import ImageSet

TARGET_S = 10.0
POLL_INTERVAL_S = 0.05

_DURATION = re.compile(r"(?:(\d+)min\s*)?(?:(\d+(?:\.\d+)?)(ms|s))?")


def parse_duration_s(text: str) -> float:
    """systemd's '1min 2.345s', '850ms', '3.2s' -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a systemd duration: {text!r}")
    minutes, number, unit = match.groups()
    seconds = float(number or 0) / (1000 if unit == "ms" else 1)
    return 60 * int(minutes or 0) + seconds


def parse_startup_times(text: str) -> dict[str, float]:
    """`systemd-analyze time` output -> {'kernel_s':..., 'userspace_s':..., 'total_s':...}.

    Also 'initrd_s' when there is an initrd phase and 'multi_user_s' (target reached).
    """
    times: dict[str, float] = {}
    first = next((line for line in text.splitlines() if "Startup finished in" in line), None)
    if first is None:
        raise ValueError("no 'Startup finished in' line in systemd-analyze output")
    phases, _, total = first.partition(" = ")
    for value, phase in re.findall(r"([\d.]+(?:min)?\s*[\d.]*m?s) \((\w+)\)", phases):
        times[f"{phase}_s"] = parse_duration_s(value)
    times["total_s"] = parse_duration_s(total)
    reached = re.search(r"reached after (.+?) in userspace", text)
    if reached:
        times["multi_user_s"] = parse_duration_s(reached.group(1))
    return times


def parse_proc_stat_cpu_s(stat_text: str, ticks_per_s: int) -> float:
    """utime + stime of /proc/PID/stat in seconds (the name field may contain spaces)."""
    after_name = stat_text.rsplit(")", 1)[1].split()
    # Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    return (int(after_name[11]) + int(after_name[12])) / ticks_per_s


def process_cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return parse_proc_stat_cpu_s(stat, os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class BootResult:
    first_200_s: float | None
    # QEMU's own CPU time until the first 200: a busy host stretches wall time, not this.
    first_200_qemu_cpu_s: float | None
    ssh_ok_s: float | None
    systemd_analyze: str
    critical_chain: str
    blame: str
    failed_units: str
    console_tail: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop_qemu(qemu: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """Ask QEMU to quit; kill it if it has not within `grace_s`."""
    qemu.terminate()
    try:
        qemu.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        qemu.kill()
        qemu.wait()


def qemu_command(
    images: ImageSet,
    overlay: Path,
    cmdline: str,
    http_port: int,
    ssh_port: int,
    memory_mib: int,
    accel: str,
    console_log: Path,
    cpu: str | None = None,
    rng: bool = False,
) -> list[str]:
    forwards = (
        f"hostfwd=tcp:127.0.0.1:{http_port}-:{images.guest_http_port},"
        f"hostfwd=tcp:127.0.0.1:{ssh_port}-:{images.guest_ssh_port}"
    )
    return [
        "qemu-system-x86_64",
        "-accel", accel,
        "-machine", "pc",
        "-m", str(memory_mib),
        "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-serial", f"file:{console_log}",
        "-kernel", str(images.vm_kernel),
        "-initrd", str(images.vm_initrd),
        "-append", cmdline,
        "-drive", f"file={overlay},if=none,id=disk0,format=qcow2",
        "-device", "virtio-blk-pci,drive=disk0",
        "-netdev", f"user,id=n0,{forwards}",
        "-device", "virtio-net-pci,netdev=n0",
        *(["-cpu", cpu] if cpu else []),
        *(["-object", "rng-random,id=rng0,filename=/dev/urandom",
           "-device", "virtio-rng-pci,rng=rng0"] if rng else []),
    ]  # fmt: skip


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class GuestShell:
    """ssh into the guest as the image's user, host key pinned to the one in the manifest."""

    def __init__(self, images: ImageSet, port: int, key: Path, workdir: Path) -> None:
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {images.vm_ssh_host_key}\n")
        self.base = [
            "ssh", "-i", str(key), "-p", str(port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR",
            f"{images.ssh_user}@127.0.0.1",
        ]  # fmt: skip

    def run(self, command: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, command], capture_output=True, text=True, timeout=timeout_s, check=False
        )


def boot_once(
    images: ImageSet, memory_mib: int, accel: str, cpu: str | None, rng: bool, timeout_s: float
) -> BootResult:
    with tempfile.TemporaryDirectory(prefix="twinlab-boot-") as temp:
        workdir = Path(temp)
        overlay = workdir / "disk.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
             "-b", str(images.vm_disk_qcow2), str(overlay)],
            check=True,
        )  # fmt: skip
        key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        cmdline = cmdline_with_ssh_key(images.vm_cmdline, (workdir / "id_ed25519.pub").read_text())
        http_port, ssh_port = free_port(), free_port()
        console_log = workdir / "console.log"
        command = qemu_command(
            images, overlay, cmdline, http_port, ssh_port, memory_mib, accel, console_log, cpu, rng
        )
        started = time.monotonic()
        qemu = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            first_200 = _wait_for(
                lambda: http_ok(f"http://127.0.0.1:{http_port}/healthz"), started, timeout_s, qemu
            )
            first_200_cpu = None if first_200 is None else round(process_cpu_s(qemu.pid), 2)
            shell = GuestShell(images, ssh_port, key, workdir)
            ssh_ok = _wait_for(
                lambda: shell.run("sudo true", timeout_s=10).returncode == 0,
                started, timeout_s, qemu,
            )  # fmt: skip
            analyze = critical = blame = failed = ""
            if ssh_ok is not None:
                shell.run("sudo timeout 60 systemctl is-system-running --wait", timeout_s=70)
                analyze = shell.run("sudo systemd-analyze time").stdout
                critical = shell.run(
                    "sudo systemd-analyze critical-chain --no-pager twinlab-webapp.service"
                ).stdout
                blame = shell.run("sudo systemd-analyze blame --no-pager | head -n 15").stdout
                failed = shell.run("sudo systemctl --failed --no-legend --plain").stdout
        finally:
            stop_qemu(qemu)
        tail = console_log.read_text(errors="replace")[-2000:] if console_log.exists() else ""
        return BootResult(first_200, first_200_cpu, ssh_ok, analyze, critical, blame, failed, tail)


def _wait_for(
    probe: Callable[[], bool], started: float, timeout_s: float, qemu: subprocess.Popen[bytes]
) -> float | None:
    """Seconds since `started` until probe() is true; None on timeout or QEMU exit."""
    while time.monotonic() - started < timeout_s:
        if qemu.poll() is not None:
            return None
        if probe():
            return round(time.monotonic() - started, 2)
        time.sleep(POLL_INTERVAL_S)
    return None


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def boot_test(
    images: ImageSet,
    runs: int,
    memory_mib: int,
    accel: str,
    cpu: str | None,
    rng: bool,
    timeout_s: float,
    console: Console,
) -> int:
    """Boot `runs` times, print the timings; exit code 0 when every boot answered and SSH worked."""
    console.print(
        f"Boot test: {images.vm_disk_qcow2.name} kernel {images.vm_kernel_release}, "
        f"accel {accel}, {memory_mib} MiB, 1 vCPU, {'' if rng else 'no '}virtio-rng, {runs} runs, "
        f"load average before {load_average()} on {os.cpu_count()} cores"
    )
    results: list[BootResult] = []
    for run in range(1, runs + 1):
        with console.status(f"boot {run}/{runs}: waiting for HTTP 200 and SSH"):
            result = boot_once(images, memory_mib, accel, cpu, rng, timeout_s)
        results.append(result)
        console.print(
            f"boot {run}: first 200 at {_fmt(result.first_200_s)} "
            f"(QEMU CPU {_fmt(result.first_200_qemu_cpu_s)}), "
            f"ssh sudo ok at {_fmt(result.ssh_ok_s)}, load {load_average()}"
        )
    last = results[-1]
    for title, text in (
        ("systemd-analyze time", last.systemd_analyze),
        ("critical chain of twinlab-webapp.service", last.critical_chain),
        ("systemd-analyze blame (top 15)", last.blame),
        ("failed units", last.failed_units or "(none)\n"),
    ):
        console.print(f"[bold]{title}[/bold] (last run)\n{text}", highlight=False)
    if last.first_200_s is None:
        console.print(f"[bold]serial console tail[/bold]\n{last.console_tail}", highlight=False)

    table = Table(title="VM boot: QEMU start -> first HTTP 200 (/healthz)")
    table.add_column("run")
    table.add_column("first 200 (s)", justify="right")
    table.add_column("QEMU CPU by then (s)", justify="right")
    table.add_column("ssh sudo ok (s)", justify="right")
    table.add_column("systemd-analyze", justify="left")
    for run, result in enumerate(results, start=1):
        analyze = result.systemd_analyze.splitlines()[0] if result.systemd_analyze else ""
        table.add_row(
            str(run),
            _fmt(result.first_200_s),
            _fmt(result.first_200_qemu_cpu_s),
            _fmt(result.ssh_ok_s),
            analyze,
        )
    console.print(table)
    answered = [r.first_200_s for r in results if r.first_200_s is not None]
    if answered:
        median = statistics.median(answered)
        verdict = "meets" if median <= TARGET_S else "misses"
        cpu_s = statistics.median(r.first_200_qemu_cpu_s or 0.0 for r in results if r.first_200_s)
        console.print(
            f"median first 200: {median:.2f} s wall ({verdict} the {TARGET_S:.0f} s target), "
            f"QEMU CPU {cpu_s:.2f} s; load average now {load_average()}"
        )
    ok = all(r.first_200_s is not None and r.ssh_ok_s is not None for r in results)
    return 0 if ok else 1


def _fmt(value: float | None) -> str:
    return "timeout" if value is None else f"{value:.2f}"
