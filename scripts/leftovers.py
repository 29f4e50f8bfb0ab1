"""What a twinlab stack can leave behind, counted and (on request) removed.

Used after `pulumi destroy` to prove nothing remains, by the test session to clear what an
interrupted run left, and by scripts/cycles.py. Names follow the components' scheme
(components/naming.py): everything of stack S is named `twinlab-S-*` (containers, volumes,
domains, pools, volumes in pools, clones) or labelled twinlab.stack=S. `sweep_stack` is the one
cleanup of a whole stack (after a failed destroy: `fab up-and-check`, the test stacks, the
cycles script): its resources by name and the SSH key files the checks wrote for it.

A pool is also looked for on disk: its directory under the pools root (`poolDir`,
components/paths.py POOL_ROOT) is named like the stack (twinlab-S, twinlab-S-HOST). libvirt
refuses to delete a pool directory that holds a file the state never owned (a volume whose
upload an interrupted `up` cut short, a clone's overlay), and once the pool is undefined only
the disk still shows that directory; so the directories and their files are listed and removed
here, not only libvirt's pools.

    python -m scripts.leftovers PREFIX [--remove]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from components import snapshot_restore
from components.naming import PROJECT, stack_prefix
from components.paths import POOL_ROOT, state_dir
from scripts.checks.resources.budget_cgroup import budget_dirs_named, remove_budget_dirs

# Runs a command where the stack's daemons are and returns its output lines: this machine by
# default, another host of a fleet through its HostHandle (scripts/recover.py).
Run = Callable[[list[str]], list[str]]


def _local(command: list[str]) -> list[str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


@dataclass
class Leftovers:
    containers: list[str] = field(default_factory=list)
    docker_volumes: list[str] = field(default_factory=list)
    docker_networks: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)
    # On disk, whether or not libvirt still has the pool: its directory and the files in it.
    pool_dirs: list[str] = field(default_factory=list)
    pool_files: list[str] = field(default_factory=list)
    qemu_processes: list[str] = field(default_factory=list)
    ports_in_use: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)  # density budgets (twinlab-S-budget-*)
    # Overlays of VMs restored from a snapshot: files, not libvirt volumes
    # (components/snapshot_restore.py).
    snapshot_overlays: list[str] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(items) for items in vars(self).values())

    def describe(self) -> str:
        parts = [f"{name}: {', '.join(items)}" for name, items in vars(self).items() if items]
        return "; ".join(parts) or "nothing"


def find(
    prefix: str,
    uri: str = "qemu:///system",
    ports: tuple[int, ...] = (),
    run: Run = _local,
    pool_root: Path = POOL_ROOT,
) -> Leftovers:
    """Everything whose name starts with `prefix` (e.g. 'twinlab-dev' or 'twinlab-t'), and
    which of `ports` still have a listener on 127.0.0.1; on another host with its `run`
    (density budget cgroups and snapshot overlays are this machine's only). Pool directories
    are looked for under `pool_root` and where libvirt's pools of `prefix` point."""
    starts = [f"name=^{prefix}"]
    local = run is _local
    listening = run(["ss", "-Hltn"])
    pools = [
        p for p in run(["virsh", "-c", uri, "pool-list", "--all", "--name"]) if p.startswith(prefix)
    ]
    targets = [target for pool in pools if (target := _pool_target(uri, pool, run))]
    dirs = pool_dirs(prefix, pool_root, targets, run)
    return Leftovers(
        containers=run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", *starts]),
        docker_volumes=run(["docker", "volume", "ls", "-q", "--filter", *starts]),
        docker_networks=run(
            ["docker", "network", "ls", "--format", "{{.Name}}", "--filter", *starts]
        ),
        domains=[
            d for d in run(["virsh", "-c", uri, "list", "--all", "--name"]) if d.startswith(prefix)
        ],
        pools=pools,
        pool_dirs=dirs,
        pool_files=run(["find", *dirs, "-mindepth", "1"]) if dirs else [],
        qemu_processes=[
            line for line in run(["pgrep", "-a", "-f", f"guest={prefix}"]) if "qemu-system" in line
        ],
        ports_in_use=[
            str(port)
            for port in ports
            if any(f"127.0.0.1:{port} " in f"{row} " for row in listening)
        ],
        cgroups=[str(path) for path in budget_dirs_named(prefix)] if local else [],
        snapshot_overlays=[str(p) for p in snapshot_restore.overlays_named(prefix)]
        if local
        else [],
    )


def remove(
    prefix: str, uri: str = "qemu:///system", run: Run = _local, pool_root: Path = POOL_ROOT
) -> Leftovers:
    """Remove everything `find` lists; returns what was found before removal."""
    if not prefix.startswith(f"{PROJECT}-"):
        raise ValueError(f"prefix {prefix!r}: not a twinlab name prefix ({PROJECT}-...)")
    found = find(prefix, uri, run=run, pool_root=pool_root)
    virsh = ["virsh", "-q", "-c", uri]
    for container in found.containers:
        run(["docker", "rm", "-f", "-v", container])
    for volume in found.docker_volumes:
        run(["docker", "volume", "rm", "-f", volume])
    for network in found.docker_networks:
        run(["docker", "network", "rm", network])
    for domain in found.domains:
        run([*virsh, "destroy", domain])
        run([*virsh, "undefine", domain, "--nvram"])
    for pool in found.pools:
        # An inactive pool lists no volumes, and an active one only those libvirt has seen.
        run([*virsh, "pool-start", pool])
        run([*virsh, "pool-refresh", pool])
        for volume in _pool_volumes(uri, pool, run):
            run([*virsh, "vol-delete", volume, "--pool", pool])
        run([*virsh, "pool-destroy", pool])
        run([*virsh, "pool-delete", pool])
        run([*virsh, "pool-undefine", pool])
    if found.pool_dirs:  # what libvirt would not delete, or no longer knows of
        run(["rm", "-rf", "--one-file-system", "--", *found.pool_dirs])
    remove_budget_dirs(budget_dirs_named(prefix))
    for overlay in found.snapshot_overlays:
        Path(overlay).unlink(missing_ok=True)
    return found


def remove_key_files(stack_glob: str) -> list[str]:
    """The SSH key files the checks wrote for stacks matching `stack_glob` (e.g. "ci-*")."""
    key_dir = state_dir() / "keys"
    removed = []
    for pattern in (f"{stack_glob}.key", f"{stack_glob}.*.key"):
        for key in key_dir.glob(pattern):
            key.unlink(missing_ok=True)
            removed.append(key.name)
    return removed


def sweep_stack(stack: str, uri: str = "qemu:///system", run: Run = _local) -> Leftovers:
    """Remove everything of `stack` on this machine (or where `run` runs: another host) by name,
    and its key files; returns what was found before removal."""
    found = remove(f"{stack_prefix(stack)}-", uri, run)
    remove_key_files(stack)
    return found


def pool_dirs(prefix: str, root: Path, targets: list[str], run: Run = _local) -> list[str]:
    """The directories of `prefix`'s pools that exist: under `root` and among libvirt's pools'
    `targets`, those named like the stack's resources."""
    candidates = run(["find", str(root), "-mindepth", "1", "-maxdepth", "1", "-type", "d"])
    named = sorted({path for path in [*candidates, *targets] if _named_for(prefix, path)})
    return run(["find", *named, "-maxdepth", "0", "-type", "d"]) if named else []


def _named_for(prefix: str, path: str) -> bool:
    """A pool directory is named twinlab-STACK (twinlab-STACK-HOST on a fleet host): `prefix`
    with or without its trailing dash."""
    name = PurePosixPath(path).name
    return name.startswith(f"{PROJECT}-") and f"{name}-".startswith(prefix)


def _pool_target(uri: str, pool: str, run: Run = _local) -> str | None:
    """The directory a libvirt pool points at, from its XML."""
    xml = "\n".join(run(["virsh", "-c", uri, "pool-dumpxml", pool]))
    try:
        return ElementTree.fromstring(xml).findtext("target/path") if xml else None
    except ElementTree.ParseError:
        return None


def _pool_volumes(uri: str, pool: str, run: Run = _local) -> list[str]:
    rows = run(["virsh", "-q", "-c", uri, "vol-list", pool])
    return [row.split()[0] for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.leftovers")
    parser.add_argument("prefix", help="name prefix, e.g. twinlab-dev")
    parser.add_argument("--remove", action="store_true")
    args = parser.parse_args(argv)
    try:
        found = remove(args.prefix) if args.remove else find(args.prefix)
    except ValueError as error:
        parser.error(str(error))
    print(f"{found.count()} leftovers of {args.prefix}: {found.describe()}")
    return 0 if found.count() == 0 or args.remove else 1


if __name__ == "__main__":
    sys.exit(main())
