"""Watching the instances of a density run: OOM kills in the budget, processes gone, HTTP.

Fast checks (`Watcher.check_kills`: the kernel log's new OOM kills in the budget, each
admitted instance's own OOM counter) run in the main loop between polls; the HTTP probes of
every admitted instance and whether its process is still there run in a background thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from components.http_wait import WaitResult, wait_for_http_200
from scripts.checks.resources import budget_cgroup
from scripts.checks.resources.budget_cgroup import BudgetCgroup, CgroupLayout, KernelLog, OomKill
from scripts.checks.resources.errors import BudgetError, ResourceCheckError
from scripts.checks.targets.host import HostHandle, local_host

HEALTH_INTERVAL_S = 2.0  # how often every admitted instance is probed
PROBE_TIMEOUT_S = 3.0  # one probe: retries within this before it counts as unanswered
# An admitted instance that gave no 200 for this long has stopped answering (a booting
# neighbour under TCG can starve it for a few seconds without it being lost).
UNANSWERED_GRACE_S = 15.0


@dataclass
class Watched:
    name: str
    url: str
    pid: int
    memory_dir: Path | None  # None: its cgroup could not be read
    last_ok: float  # monotonic time of its last HTTP 200


@dataclass(frozen=True)
class Loss:
    reason: str
    at: float  # monotonic
    whole: bool  # its main process is gone


def attribute_kills(kills: list[OomKill], cgroups: Mapping[str, str]) -> dict[str, OomKill]:
    """Which instance each kernel OOM kill hit: `cgroups` maps instance name to its memory
    cgroup path as the kernel names it (relative to the memory tree, leading '/')."""
    hit = {}
    for kill in kills:
        for name, path in cgroups.items():
            if f"{kill.task_memcg.rstrip('/')}/".startswith(f"{path.rstrip('/')}/"):
                hit[name] = kill
    return hit


class Watcher:
    """Watches the instances of a run. Fast checks (`check_kills`: the kernel log's new OOM
    kills in the budget, each admitted instance's OOM counter) run in the main loop between
    polls; the HTTP probes of every admitted instance, and whether its process is still there,
    run in a background thread. Losses and kills are collected for the main loop."""

    def __init__(
        self,
        layout: CgroupLayout,
        budget: BudgetCgroup,
        kernel_log: KernelLog,
        host: HostHandle | None = None,
    ) -> None:
        self.layout, self.budget, self.kernel_log = layout, budget, kernel_log
        self.host = host or local_host()  # where the instances run: their URLs and /proc
        self._lock = threading.Lock()
        self._watched: dict[str, Watched] = {}
        self._losses: dict[str, Loss] = {}
        self._new_kills: list[tuple[str | None, OomKill]] = []
        self.kills_in_budget: list[OomKill] = []
        self.cgroups: dict[str, str] = {}  # every instance ever seen: name -> kernel's path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="density-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=PROBE_TIMEOUT_S + HEALTH_INTERVAL_S)

    def note_cgroup(self, name: str, pid: int) -> Path | None:
        """Remember where an instance's memory is charged (for the kernel log's kills)."""
        try:
            memory_dir = budget_cgroup.instance_memory_dir(pid, self.layout)
        except ResourceCheckError:
            return None
        with self._lock:
            self.cgroups[name] = "/" + str(memory_dir.relative_to(self.layout.memory_root))
        return memory_dir

    def admit(self, name: str, url: str, pid: int) -> None:
        memory_dir = self.note_cgroup(name, pid)
        with self._lock:
            self._watched[name] = Watched(name, url, pid, memory_dir, time.monotonic())

    def forget(self, name: str) -> None:
        """Stop watching an instance (it is being removed)."""
        with self._lock:
            self._watched.pop(name, None)
            self._losses.pop(name, None)

    def take_losses(self) -> dict[str, Loss]:
        with self._lock:
            losses, self._losses = self._losses, {}
        return losses

    def take_kills(self) -> list[tuple[str | None, OomKill]]:
        """Kernel OOM kills in the budget since the last call, with the instance each hit
        (None: an instance whose cgroup was not known yet, or a runtime helper)."""
        with self._lock:
            kills, self._new_kills = self._new_kills, []
        return kills

    def kill_of(self, name: str) -> OomKill | None:
        """The kernel's OOM kill of instance `name`; for one whose cgroup was never seen (it
        died while starting), the latest kill in the budget no other instance claims."""
        self.read_kernel_log()
        with self._lock:
            own = self.cgroups.get(name)
            if own is not None:
                return attribute_kills(self.kills_in_budget, {name: own}).get(name)
            others = {n: p for n, p in self.cgroups.items() if n != name}
            unclaimed = [k for k in self.kills_in_budget if not attribute_kills([k], others)]
        return unclaimed[-1] if unclaimed else None

    def read_kernel_log(self) -> None:
        kills = [k for k in self.kernel_log.oom_kills() if self.budget.contains(k.oom_memcg)]
        with self._lock:
            self.kills_in_budget += kills
            for kill in kills:
                owners = list(attribute_kills([kill], self.cgroups))
                self._new_kills.append((owners[0] if owners else None, kill))

    def check_kills(self) -> None:
        """New OOM kills: the kernel log, and each admitted instance's own OOM counter (which
        sees kills even where the kernel log cannot be read)."""
        self.read_kernel_log()
        with self._lock:
            watched = list(self._watched.values())
            killed = attribute_kills(
                self.kills_in_budget,
                {w.name: self.cgroups[w.name] for w in watched if w.name in self.cgroups},
            )
        for item in watched:
            kill = killed.get(item.name)
            gone = not self._proc(item.pid).exists()
            if kill is not None:
                reason = f"was OOM-killed (kernel killed {kill.task} pid {kill.pid})"
                self._lose(item.name, reason, whole=gone or kill.pid == item.pid)
            elif item.memory_dir is not None:
                with contextlib.suppress(BudgetError):
                    count = budget_cgroup.read_counters(item.memory_dir, self.layout.version)
                    if count.oom_kills:
                        reason = f"was OOM-killed ({count.oom_kills} in its cgroup)"
                        self._lose(item.name, reason, whole=gone)

    def check_now(self) -> None:
        """One full round over every admitted instance: HTTP, process, then OOM kills."""
        with self._lock:
            watched = list(self._watched.values())
        if watched:
            with ThreadPoolExecutor(max_workers=min(16, len(watched))) as pool:
                answers = list(
                    pool.map(
                        self._probe,
                        watched,
                    )
                )
            now = time.monotonic()
            for item, answer in zip(watched, answers, strict=True):
                if answer.seconds is not None:
                    item.last_ok = now
                if not self._proc(item.pid).exists():
                    reason = f"lost its main process (pid {item.pid} gone)"
                    self._lose(item.name, reason, whole=True)
                elif now - item.last_ok > UNANSWERED_GRACE_S:
                    silent_s = now - item.last_ok
                    self._lose(item.name, f"stopped answering (no HTTP 200 for {silent_s:.0f} s)")
        self.check_kills()  # a kill explains a missing process better: it wins below

    def _proc(self, pid: int) -> Path:
        """/proc/PID on the instances' host (the cgroup tree's: a HostPath when remote)."""
        return type(self.layout.root)(f"/proc/{pid}")

    def _probe(self, item: Watched) -> WaitResult:
        with self.host.reach(item.url) as url:
            return wait_for_http_200(url, time.monotonic(), PROBE_TIMEOUT_S)

    def _lose(self, name: str, reason: str, whole: bool = False) -> None:
        """Record a loss once; a kill found later explains an untaken loss better."""
        with self._lock:
            earlier = self._losses.get(name)
            if self._watched.pop(name, None) is not None:
                self._losses[name] = Loss(reason, time.monotonic(), whole)
            elif earlier is not None and "OOM-killed" in reason:
                self._losses[name] = Loss(reason, earlier.at, whole or earlier.whole)

    def _loop(self) -> None:
        while not self._stop.wait(HEALTH_INTERVAL_S):
            self.check_now()
