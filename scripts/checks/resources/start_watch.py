"""Passive observers of one clone's start-up, for R1's stages (as Firecracker reports its boot).

Nothing here connects to the clone's app: the stages come from what the instance writes anyway
(the app's listening mark, the VM's console lines, Docker's own start time), so R1's poller
can stay silent until the app says it listens (start_time.py).

Stages, each in seconds since the create call:
- container (and sandbox): start_call (the create call returned, start called), process_exec
  (docker inspect State.StartedAt), app_listening (the app's mark), first_200.
- vm: qemu_running (`virsh create` returned: QEMU runs the vCPUs), kernel_entry (the host's
  stamp of the first initramfs console line minus the guest uptime it prints: the kernel's
  clock zero, a little after the kernel's real entry), initramfs (/init starts), init (hand
  over to systemd), app_listening (the app's mark on the console), first_200.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

from scripts.checks.parsers.start_marks import docker_time, guest_stage, listening_wall_clock
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host_path import HostPath

CONTAINER_STAGES = ("start_call", "process_exec", "app_listening", "first_200")
VM_STAGES = ("qemu_running", "kernel_entry", "initramfs", "init", "app_listening", "first_200")
# How often the console tail looks for new bytes: the resolution of the VM's stage stamps.
CONSOLE_READ_INTERVAL_S = 0.005
REMOTE_TAIL_BOUND_S = 900  # a remote `tail -F` ends by then whatever happens


class StartWatch(ABC):
    """What one clone's start shows without being asked."""

    # False: the instance writes no listening mark (e.g. a restored VM already listens), so
    # the poller starts at the create call.
    has_listening_mark: bool = True

    @abstractmethod
    def wait_listening(self, deadline: float) -> float | None:
        """Block until the app's listening mark: its time.monotonic(), or None at `deadline`
        (time.monotonic()) or when the instance ended first."""

    @abstractmethod
    def stages(self) -> dict[str, float]:
        """Stage name -> seconds since the create call, for the stages seen (without first_200,
        which the poller measures)."""

    def close(self) -> None:  # noqa: B027 - most watches hold nothing to stop
        """Stop observing (idempotent)."""


class NoMarks(StartWatch):
    """An instance that writes no marks: no stages; the poller starts at the create call."""

    has_listening_mark = False

    def wait_listening(self, deadline: float) -> float | None:
        return None

    def stages(self) -> dict[str, float]:
        return {}


class ContainerLogWatch(StartWatch):
    """A container's stages from the Engine API: its log stream and State.StartedAt. Its clock
    is the host's, so the app's wall-clock mark needs no conversion."""

    def __init__(
        self,
        engine: DockerEngine,
        container_id: str,
        created_at: float,
        created_wall_s: float,
        start_call_s: float,
    ) -> None:
        self.engine = engine
        self.container_id = container_id
        self.created_at = created_at
        self.created_wall_s = created_wall_s
        self.start_call_s = start_call_s
        self.listening_wall_s: float | None = None

    def wait_listening(self, deadline: float) -> float | None:
        for line in self.engine.log_lines(self.container_id, deadline):
            mark = listening_wall_clock(line)
            if mark is not None:
                self.listening_wall_s = mark
                return self.created_at + (mark - self.created_wall_s)
        return None

    def stages(self) -> dict[str, float]:
        state = self.engine.inspect_container(self.container_id).get("State") or {}
        found = {
            "start_call": self.start_call_s,
            "process_exec": docker_time(str(state.get("StartedAt", ""))) - self.created_wall_s,
        }
        if self.listening_wall_s is not None:
            found["app_listening"] = self.listening_wall_s - self.created_wall_s
        return found


class ConsoleWatch(StartWatch):
    """A VM's stages from its serial console log (libvirt's <log file=...> of the console,
    written by virtlogd), tailed by a host thread that stamps each line with time.monotonic()
    as it appears: the guest's own clock is never trusted (its RTC has whole seconds)."""

    def __init__(self, log_path: Path, created_at: float) -> None:
        self.log_path = log_path
        self.created_at = created_at
        self.qemu_running_s: float | None = None
        self.lines: list[tuple[float, str]] = []  # (monotonic stamp, line)
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, name=f"console {log_path}", daemon=True)
        self._thread.start()

    def _take(self, pending: bytes, chunk: bytes, stamp: float) -> bytes:
        """Record the complete lines of `chunk` (after `pending`) at `stamp`; the rest."""
        *complete, pending = (pending + chunk).split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace").rstrip("\r")
            self.lines.append((stamp, line))
            if listening_wall_clock(line) is not None:
                self._listening.set()
        return pending

    def _tail_remote(self, log_path: HostPath) -> None:
        """Follow the log on its remote host (`tail -F` over its SSH; each line stamped as it
        arrives). tail ends when the log is removed (its complaint meets a closed pipe) or at
        REMOTE_TAIL_BOUND_S."""
        argv = ["timeout", str(REMOTE_TAIL_BOUND_S), "tail", "-c", "+1", "-F", str(log_path)]
        channel = log_path.host.open_stream(argv)
        channel.settimeout(CONSOLE_READ_INTERVAL_S)
        pending = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = channel.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                pending = self._take(pending, chunk, time.monotonic())
        finally:
            channel.close()

    def _tail(self) -> None:
        if isinstance(self.log_path, HostPath):
            self._tail_remote(self.log_path)
            return
        handle = None
        pending = b""
        try:
            while not self._stop.is_set():
                if handle is None:
                    try:
                        handle = self.log_path.open("rb")
                    except FileNotFoundError:
                        time.sleep(CONSOLE_READ_INTERVAL_S)
                        continue
                chunk = handle.read()
                if not chunk:
                    time.sleep(CONSOLE_READ_INTERVAL_S)
                    continue
                pending = self._take(pending, chunk, time.monotonic())
        finally:
            if handle is not None:
                handle.close()

    def wait_listening(self, deadline: float) -> float | None:
        if not self._listening.wait(max(0.0, deadline - time.monotonic())):
            return None
        return next(stamp for stamp, line in self.lines if listening_wall_clock(line) is not None)

    def stages(self) -> dict[str, float]:
        found: dict[str, float] = {}
        if self.qemu_running_s is not None:
            found["qemu_running"] = self.qemu_running_s
        for stamp, line in list(self.lines):
            since_create = stamp - self.created_at
            stage = guest_stage(line)
            if stage is not None and stage.name not in found:
                found[stage.name] = since_create
                if stage.name == "initramfs":
                    found["kernel_entry"] = since_create - stage.uptime_s
            elif listening_wall_clock(line) is not None and "app_listening" not in found:
                found["app_listening"] = since_create
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
