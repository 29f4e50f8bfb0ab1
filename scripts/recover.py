"""Recover a stack after a crash: one command from "locked by a dead process" to nothing left.

A `pulumi up` killed outright (SIGKILL, a lost session) leaves three things behind: the state
lock of the dead process, "pending operations" for resources it was creating, and the
resources themselves, some of which the state never recorded. `pulumi destroy` alone then
refuses (locked) or reports success while leaving a domain and its pool behind. This does, in
order, and says what each step found:

0. the state files: a sidecar the kill left empty (scripts/state_files.py) makes every
   `pulumi stack ls` fail with "EOF"; it is removed first, and once the lock's holder is known
   dead, the stack's unfinished checkpoint writes too;
1. the lock: cleared (`pulumi cancel`) only when every process holding it is dead;
   a live holder stops the recovery, naming it;
2. pending creates: dropped from the state (`pulumi refresh --clear-pending-creates`);
   what they created is removed by name in step 4;
3. `pulumi destroy`. It fails when an orphan of a dropped pending create still holds what the
   state knows (a container the state lost keeps its volume in use); then everything named
   after the stack is removed first (4.), and the state, which now lists only things that no
   longer exist, is emptied (`pulumi state delete --all`; a refresh cannot do it: the docker
   provider fails to read a volume that is gone instead of dropping it);
4. the sweep: everything still named after the stack (containers, volumes, networks, domains,
   pools and their volumes, the pools' directories and files on disk, QEMU processes) is
   removed, and listed: on this machine, and on every host of a fleet stack (`twinlab:hosts`,
   read from the stack's config: its outputs may never have been written), through that
   host's SSH handle.

    python -m scripts.recover STACK            (also: fab recover --stack STACK)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.fleet import with_user
from components.hosts import host_output
from components.naming import stack_prefix
from scripts import leftovers
from scripts.checks.targets.deployed import ROOT
from scripts.checks.targets.host import HostHandle, HostUnreachableError, host_handle
from scripts.state_files import lock_files, remove_torn_sidecars, stale_temp_files

Say = Callable[[str], None]


class RecoveryError(Exception):
    pass


@dataclass(frozen=True)
class LockHolder:
    path: Path
    pid: int
    hostname: str
    username: str
    timestamp: str


@dataclass
class Recovery:
    stack: str
    torn_removed: list[Path] = field(default_factory=list)
    locks_cleared: list[LockHolder] = field(default_factory=list)
    pending_cleared: bool = False
    destroyed: bool = False
    swept: leftovers.Leftovers = field(default_factory=leftovers.Leftovers)
    remaining: leftovers.Leftovers = field(default_factory=leftovers.Leftovers)


def names_prefix(stack: str) -> str:
    """What every resource of the stack is named with (components/naming.py), dash included
    so that stack dev never reaches stack dev2."""
    return f"{stack_prefix(stack)}-"


def read_lock(path: Path) -> LockHolder:
    content = json.loads(path.read_text(encoding="utf-8"))
    return LockHolder(
        path=path,
        pid=int(content.get("pid", 0)),
        hostname=str(content.get("hostname", "")),
        username=str(content.get("username", "")),
        timestamp=str(content.get("timestamp", "")),
    )


def holder_alive(holder: LockHolder, this_host: str, pid_alive: Callable[[int], bool]) -> bool:
    """A holder on another machine cannot be checked from here: treat it as alive."""
    if holder.hostname != this_host:
        return True
    return pid_alive(holder.pid)


def pid_is_pulumi(pid: int) -> bool:
    """True when `pid` runs a pulumi process (a recycled pid of another program is not one)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv0 = cmdline.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    return os.path.basename(argv0).startswith("pulumi")


def _pulumi(args: list[str], stack: str, say: Say) -> subprocess.CompletedProcess[str]:
    command = ["pulumi", *args, "--stack", stack, "--yes", "--non-interactive"]
    say(f"  $ {' '.join(command)}")
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's error lines (Pulumi prints them among its progress), else its last line."""
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines()]
    errors = [line for line in lines if "error" in line.lower()]
    return " | ".join(errors[-3:]) or next((line for line in reversed(lines) if line), "?")


def stack_exists(stack: str) -> bool:
    done = subprocess.run(
        ["pulumi", "stack", "ls", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RecoveryError(f"pulumi stack ls failed: {_last_line(done)}")
    return any(item.get("name") == stack for item in json.loads(done.stdout or "[]"))


def fleet_hosts(stack: str) -> list[HostHandle]:
    """The hosts of a fleet stack, from its `twinlab:hosts` config; [] for other stacks."""
    done = subprocess.run(
        ["pulumi", "config", "--json", "--stack", stack],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    config = json.loads(done.stdout or "{}") if done.returncode == 0 else {}
    return hosts_of_config(str(config.get("twinlab:hosts", {}).get("value", "")))


def hosts_of_config(value: str) -> list[HostHandle]:
    """A HostHandle for each well-formed entry of a `twinlab:hosts` value."""
    try:
        items = json.loads(value or "[]")
    except json.JSONDecodeError:
        return []
    keys = ("name", "dockerHost", "libvirtUri")
    entries = [i for i in items if isinstance(i, dict) and all(k in i for k in keys)]
    return [
        host_handle(
            str(i["name"]),
            host_output(
                with_user(str(i["dockerHost"]), str(i.get("sshUser") or "root")),
                with_user(str(i["libvirtUri"]), str(i.get("sshUser") or "root")),
                str(i.get("sshKey") or "") or None,
                "tcg",  # not used by the sweep
            ),
        )
        for i in (entries if isinstance(items, list) else [])
    ]


def on_host(handle: HostHandle) -> leftovers.Run:
    """leftovers' command runner for one host (a lost host raises HostUnreachableError)."""

    def run(argv: list[str]) -> list[str]:
        done = handle.run(argv)
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    return run


def recover(stack: str, say: Say = print, uri: str = "qemu:///system") -> Recovery:
    """Bring `stack` back to "nothing deployed, state unlocked"; raises RecoveryError when a
    live process still holds the stack or something could not be removed."""
    result = Recovery(stack)
    backend = os.environ.get("PULUMI_BACKEND_URL", "")
    result.torn_removed = remove_torn_sidecars(backend)
    if result.torn_removed:
        say(f"  state: removed torn sidecar(s) {[str(p) for p in result.torn_removed]}")
    if stack_exists(stack):
        _clear_dead_locks(backend, stack, result, say)
        for temp in stale_temp_files(backend, stack):
            temp.unlink(missing_ok=True)
            say(f"  state: removed unfinished write {temp}")
        done = _pulumi(["refresh", "--clear-pending-creates", "--skip-preview"], stack, say)
        result.pending_cleared = done.returncode == 0
        if done.returncode != 0:
            say(f"  refresh failed ({_last_line(done)}); destroying all the same")
        done = _pulumi(["destroy", "--skip-preview"], stack, say)
        if done.returncode != 0:
            say(f"  destroy failed ({_last_line(done)})")
            _sweep(stack, uri, result, say)
            done = _pulumi(["state", "delete", "--all", "--force"], stack, say)
            if done.returncode != 0:
                raise RecoveryError(f"emptying the state failed: {_last_line(done)}")
        result.destroyed = True
    else:
        say(f"  no stack {stack!r} in the state backend; sweeping by name only")
    _sweep(stack, uri, result, say)
    result.remaining = leftovers.find(names_prefix(stack), uri)
    for host in fleet_hosts(stack):
        try:
            found = leftovers.find(names_prefix(stack), host.virsh_uri, run=on_host(host))
        except HostUnreachableError as error:
            raise RecoveryError(f"cannot check host {host.name}: {error}") from None
        finally:
            host.close()
        _merge(result.remaining, found)
    if result.remaining.count():
        raise RecoveryError(f"still present after recovery: {result.remaining.describe()}")
    return result


def _sweep(stack: str, uri: str, result: Recovery, say: Say) -> None:
    removed = leftovers.sweep_stack(stack, uri)
    say(f"  removed by name: {removed.describe()}")
    _merge(result.swept, removed)
    for host in fleet_hosts(stack):
        try:
            removed = leftovers.sweep_stack(stack, host.virsh_uri, run=on_host(host))
        except HostUnreachableError as error:
            raise RecoveryError(f"cannot sweep host {host.name}: {error}") from None
        finally:
            host.close()
        say(f"  removed by name on host {host}: {removed.describe()}")
        _merge(result.swept, removed)


def _merge(into: leftovers.Leftovers, found: leftovers.Leftovers) -> None:
    for name, items in vars(found).items():
        getattr(into, name).extend(items)


def _clear_dead_locks(backend: str, stack: str, result: Recovery, say: Say) -> None:
    holders = [read_lock(path) for path in lock_files(backend, stack)]
    if not holders:
        say("  lock: none")
        return
    this_host = socket.gethostname()
    alive = [h for h in holders if holder_alive(h, this_host, pid_is_pulumi)]
    if alive:
        names = ", ".join(f"pid {h.pid} on {h.hostname} since {h.timestamp}" for h in alive)
        raise RecoveryError(
            f"stack {stack} is locked by a running pulumi ({names}); let it finish or stop it, "
            "then run the recovery again"
        )
    done = _pulumi(["cancel"], stack, say)
    if done.returncode != 0:
        raise RecoveryError(f"pulumi cancel failed: {_last_line(done)}")
    result.locks_cleared = holders
    say(f"  lock: cleared {len(holders)} held by dead pid(s) {[h.pid for h in holders]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.recover")
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    try:
        recovered = recover(args.stack)
    except RecoveryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"stack {recovered.stack} recovered: nothing of it is left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
