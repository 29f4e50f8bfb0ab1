"""Which gVisor configuration the sandbox variant gets: the most isolating one that serves the app.

runsc takes a platform (how its application kernel, the Sentry, intercepts the app's system
calls) and a network mode (its own netstack, or the host kernel's stack inside the container's
network namespace). Which combinations run depends on the runsc version and on this machine, so
the setup tries them, most isolating first, each as a Docker runtime whose name encodes its
arguments (e.g. `runsc-ptrace-hostnet`), and records the first under which the app image, with
the stack's hardening, answers HTTP 200 through a published 127.0.0.1 port. The same check must
first pass under runc (positive control), else the probe records that it cannot tell. Only the
chosen runtime stays registered in /etc/docker/daemon.json; the variant names it.

    python -m components.gvisor_platform detect [--force]   # register, probe, record
    python -m components.gvisor_platform show               # print the record
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from components.errors import TwinlabError
from components.host import free_loopback_ports
from components.http_wait import require_http_200
from components.paths import cache_dir, write_json_record
from workloads.images import ImageSet, ImagesNotBuiltError, find_images

Platform = Literal["systrap", "ptrace"]
NetworkMode = Literal["sandbox", "host"]
DAEMON_CONFIG = Path("/etc/docker/daemon.json")
DOCKER_PIDFILE = Path("/var/run/docker.pid")
CONTROL_RUNTIME = "runc"
SERVE_TIMEOUT_S = 60.0
STATE_POLL_S = 2.0  # between HTTP attempts, how often the container is checked for an early exit
RELOAD_TIMEOUT_S = 15.0
PROBE_LABEL = "twinlab.probe=gvisor-platform"
# Network mode -> the part of the runtime name that says it.
NETWORK_NAMES: dict[NetworkMode, str] = {"sandbox": "netstack", "host": "hostnet"}

# The stack's container hardening and limits (components/container.py), as `docker run` options.
HARDENING_OPTIONS = (
    "--user=twinapp",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges:true",
    "--read-only",
    "--tmpfs=/tmp:rw,nosuid,nodev,noexec,size=16m",
)


def limit_options(memory_mib: int = 512, cpu_set: str = "0") -> tuple[str, ...]:
    """The stack's default limits: memory without swap, one pinned CPU."""
    return (f"--memory={memory_mib}m", f"--memory-swap={memory_mib}m", f"--cpuset-cpus={cpu_set}")


@dataclass(frozen=True)
class Configuration:
    platform: Platform
    network: NetworkMode

    @property
    def runtime(self) -> str:
        return f"runsc-{self.platform}-{NETWORK_NAMES[self.network]}"

    @property
    def runtime_args(self) -> list[str]:
        return [f"--platform={self.platform}", f"--network={self.network}"]


# Most isolating first. The network mode weighs more than the platform: with gVisor's netstack
# the app's socket calls stay in the Sentry; with host networking they reach the host kernel's
# TCP/IP stack (inside the container's namespace). systrap (seccomp traps) and ptrace isolate
# alike; systrap is the faster successor, so it goes first.
CANDIDATES = (
    Configuration("systrap", "sandbox"),
    Configuration("ptrace", "sandbox"),
    Configuration("systrap", "host"),
    Configuration("ptrace", "host"),
)
MANAGED_RUNTIMES = frozenset(candidate.runtime for candidate in CANDIDATES)


def record_path() -> Path:
    return cache_dir() / "gvisor-platform.json"


@dataclass(frozen=True)
class Attempt:
    runtime: str
    ok: bool
    reason: str
    seconds: float


@dataclass(frozen=True)
class GvisorPlatformRecord:
    version: str  # `runsc --version`, first line
    runtime: str | None  # the registered Docker runtime the variant uses; None: none works
    platform: str | None
    network: str | None
    reason: str
    image: str
    probe_seconds: float
    detected_at: float
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)

    @property
    def configuration(self) -> Configuration | None:
        return next((c for c in CANDIDATES if c.runtime == self.runtime), None)


def load_record() -> GvisorPlatformRecord | None:
    try:
        data = json.loads(record_path().read_text(encoding="utf-8"))
        attempts = tuple(Attempt(**attempt) for attempt in data.pop("attempts"))
        return GvisorPlatformRecord(**data, attempts=attempts)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save_record(record: GvisorPlatformRecord) -> None:
    write_json_record(record_path(), asdict(record))


def unavailable_reason(record: GvisorPlatformRecord | None) -> str | None:
    """Why this host cannot run the gVisor variant, or None when it can."""
    if record is None:
        return "no gVisor platform recorded; run scripts/setup.sh"
    if record.runtime is None:
        return f"no gVisor configuration serves the app here: {record.reason}"
    return None


def recorded_runtime() -> str:
    """The Docker runtime the gVisor variant runs under; TwinlabError saying why if none."""
    record = load_record()
    reason = unavailable_reason(record)
    if reason is not None or record is None or record.runtime is None:
        raise TwinlabError(f"gVisor is not available on this host: {reason}")
    return record.runtime


# --- Docker runtime registration --------------------------------------------------------------


def merged_daemon_config(
    current: Mapping[str, Any], wanted: Iterable[Configuration], runsc_path: str
) -> dict[str, Any]:
    """`current` with exactly `wanted` among twinlab's runsc runtimes; everything else kept."""
    config = dict(current)
    runtimes = config.get("runtimes", {})
    if not isinstance(runtimes, dict):
        raise TwinlabError(f"{DAEMON_CONFIG}: 'runtimes' is not a JSON object; fix it by hand")
    kept = {name: entry for name, entry in runtimes.items() if name not in MANAGED_RUNTIMES}
    for candidate in wanted:
        kept[candidate.runtime] = {"path": runsc_path, "runtimeArgs": candidate.runtime_args}
    if kept:
        config["runtimes"] = kept
    else:
        config.pop("runtimes", None)
    return config


def read_daemon_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise TwinlabError(f"{path} is not valid JSON ({error}); fix it by hand") from None
    if not isinstance(config, dict):
        raise TwinlabError(f"{path} is not a JSON object; fix it by hand")
    return config


def write_daemon_config(
    wanted: Iterable[Configuration], runsc_path: str, path: Path = DAEMON_CONFIG
) -> bool:
    """Make `path` register exactly `wanted` (of twinlab's runtimes); True when it changed."""
    current = read_daemon_config(path)
    merged = merged_daemon_config(current, wanted, runsc_path)
    if merged == current:  # also: nothing to register and no file
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".twinlab.tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return True


def docker_runtimes() -> dict[str, Any]:
    """The runtimes the local Docker daemon knows now, as `docker info` reports them."""
    done = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise TwinlabError(f"docker info failed: {done.stderr.strip()[-200:]}")
    runtimes = json.loads(done.stdout)
    return runtimes if isinstance(runtimes, dict) else {}


def daemon_serves(wanted: Sequence[Configuration]) -> bool:
    runtimes = docker_runtimes()
    managed = {name for name in runtimes if name in MANAGED_RUNTIMES}
    if managed != {candidate.runtime for candidate in wanted}:
        return False
    return all(runtimes[c.runtime].get("runtimeArgs", []) == c.runtime_args for c in wanted)


def reload_docker(wanted: Sequence[Configuration]) -> None:
    """SIGHUP dockerd (it re-reads daemon.json's runtimes), then wait until it lists them."""
    try:
        pid = int(DOCKER_PIDFILE.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise TwinlabError(
            f"cannot read dockerd's PID from {DOCKER_PIDFILE}; is dockerd running?"
        ) from None
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while not daemon_serves(wanted):
        if time.monotonic() > deadline:
            names = ", ".join(c.runtime for c in wanted) or "none"
            raise TwinlabError(
                f"dockerd did not pick up the runtimes ({names}) from {DAEMON_CONFIG} within "
                f"{RELOAD_TIMEOUT_S:.0f} s after SIGHUP; see its log"
            )
        time.sleep(0.2)


def register(wanted: Sequence[Configuration], runsc_path: str) -> bool:
    """daemon.json and the running dockerd both list exactly `wanted`; True if anything changed."""
    changed = write_daemon_config(wanted, runsc_path)
    if changed or not daemon_serves(wanted):
        reload_docker(wanted)
        return True
    return False


# --- the probe --------------------------------------------------------------------------------


def docker(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout_s
    )


def error_line(text: str) -> str:
    """The line of docker's stderr (or a log) that says what failed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line]
    found = errors[0] if errors else (lines[-1] if lines else "")
    return found.removeprefix("docker: ").removeprefix("Error response from daemon: ")[:300]


def serves_app(runtime: str, images: ImageSet) -> Attempt:
    """Start the app image hardened under `runtime`; ok when it answers 200 on 127.0.0.1."""
    name = f"twinlab-gvisor-probe-{uuid.uuid4().hex[:8]}"
    (port,) = free_loopback_ports(1)
    started = time.monotonic()
    try:
        run = docker(
            "run",
            "--detach",
            "--pull=never",  # no registry: the image is built locally by the setup
            f"--name={name}",
            f"--label={PROBE_LABEL}",
            f"--runtime={runtime}",
            f"--publish=127.0.0.1:{port}:{images.guest_http_port}",
            "--volume=/var/lib/twinlab",
            *HARDENING_OPTIONS,
            *limit_options(),
            images.container_image,
        )
        if run.returncode != 0:
            return Attempt(runtime, False, f"docker run: {error_line(run.stderr)}", 0.0)
        url = f"http://127.0.0.1:{port}/healthz"
        while time.monotonic() - started < SERVE_TIMEOUT_S:
            try:
                require_http_200(url, STATE_POLL_S)
            except TimeoutError as error:
                state = docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
                if state != "running":
                    logs = docker("logs", "--tail", "20", name)
                    detail = error_line(logs.stderr + logs.stdout) or str(error)
                    return Attempt(runtime, False, f"container {state}: {detail}", 0.0)
                continue
            seconds = time.monotonic() - started
            return Attempt(runtime, True, f"HTTP 200 after {seconds:.1f} s", round(seconds, 2))
        return Attempt(runtime, False, f"no HTTP 200 within {SERVE_TIMEOUT_S:.0f} s", 0.0)
    finally:
        docker("rm", "--force", "--volumes", name)


def runsc_version(runsc_path: str) -> str:
    done = subprocess.run([runsc_path, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0].strip() if done.stdout else "unknown"


def choose(serve: Callable[[str], Attempt]) -> tuple[Configuration | None, str, list[Attempt]]:
    """The first candidate under which `serve` succeeds, after runc (the control) has."""
    control = serve(CONTROL_RUNTIME)
    if not control.ok:
        reason = f"cannot tell: the app does not serve under runc either ({control.reason})"
        return None, reason, [control]
    attempts = [control]
    for candidate in CANDIDATES:
        attempts.append(serve(candidate.runtime))
        if attempts[-1].ok:
            failed = [a.runtime for a in attempts[1:-1]]
            gave_up = f" (failed first: {', '.join(failed)})" if failed else ""
            return candidate, f"{candidate.runtime} serves the app{gave_up}", attempts
    tried = "; ".join(f"{a.runtime}: {a.reason}" for a in attempts[1:])
    return None, f"every configuration failed ({tried})", attempts


def remove_probe_containers() -> None:
    """Containers an interrupted probe left (the probe removes its own in `finally`)."""
    listed = docker("ps", "--all", "--quiet", f"--filter=label={PROBE_LABEL}").stdout.split()
    if listed:
        docker("rm", "--force", "--volumes", *listed)


def detect(runsc_path: str, images: ImageSet) -> GvisorPlatformRecord:
    """Register every candidate, try them, leave only the chosen one registered."""
    started = time.monotonic()
    remove_probe_containers()
    chosen: Configuration | None = None
    register(CANDIDATES, runsc_path)
    try:
        chosen, reason, attempts = choose(lambda runtime: serves_app(runtime, images))
    finally:
        register([chosen] if chosen else [], runsc_path)
    return GvisorPlatformRecord(
        version=runsc_version(runsc_path),
        runtime=chosen.runtime if chosen else None,
        platform=chosen.platform if chosen else None,
        network=chosen.network if chosen else None,
        reason=reason,
        image=images.container_image,
        probe_seconds=round(time.monotonic() - started, 2),
        detected_at=time.time(),
        attempts=tuple(attempts),
    )


def describe(record: GvisorPlatformRecord) -> str:
    chosen = record.runtime or "none"
    return f"{chosen} ({record.version}; {record.reason})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.gvisor_platform")
    parser.add_argument("action", choices=["detect", "show"])
    parser.add_argument("--force", action="store_true", help="probe again even if recorded")
    args = parser.parse_args(argv)
    record = load_record()
    if args.action == "show":
        if record is None:
            print("no gVisor platform recorded; run scripts/setup.sh", file=sys.stderr)
            return 1
        print(json.dumps(asdict(record), indent=2))
        return 0
    runsc_path = shutil.which("runsc")
    try:
        if runsc_path is None:
            raise TwinlabError("runsc not found on PATH; run scripts/setup.sh (Debian's runsc)")
        images = find_images()
        stale = record is None or (record.version, record.image) != (
            runsc_version(runsc_path),
            images.container_image,
        )
        if args.force or stale:
            record = detect(runsc_path, images)
            save_record(record)
        else:
            assert record is not None
            chosen = record.configuration
            register([chosen] if chosen else [], runsc_path)
    except (TwinlabError, ImagesNotBuiltError, OSError, subprocess.SubprocessError) as error:
        print(f"gVisor platform probe failed: {error}", file=sys.stderr)
        return 1
    print(describe(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
