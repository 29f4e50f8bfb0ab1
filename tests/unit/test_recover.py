"""The recovery's decisions on captured lock files: which locks exist, who holds them, and
whether a holder may be declared dead."""

from __future__ import annotations

import json
from pathlib import Path

from scripts import leftovers
from scripts.recover import (
    LockHolder,
    holder_alive,
    hosts_of_config,
    names_prefix,
    read_lock,
)
from scripts.state_files import lock_files

# The shape Pulumi's file backend writes (pkg/backend/diy/lock.go: lockContent).
LOCK = {
    "pid": 4242,
    "username": "root",
    "hostname": "twinhost",
    "timestamp": "2026-11-30T11:40:02.123456789Z",
}


def write_lock(root: Path, stack: str, lock_id: str) -> Path:
    path = root / ".pulumi" / "locks" / "organization" / "twinlab" / stack / f"{lock_id}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(LOCK), encoding="utf-8")
    return path


def test_lock_files_of_one_stack_only(tmp_path: Path) -> None:
    mine = write_lock(tmp_path, "dev", "a1")
    write_lock(tmp_path, "dev2", "b2")
    assert lock_files(f"file://{tmp_path}", "dev") == [mine]
    assert lock_files(f"file://{tmp_path}", "prod") == []
    assert lock_files("https://api.pulumi.com", "dev") == []


def test_read_lock(tmp_path: Path) -> None:
    holder = read_lock(write_lock(tmp_path, "dev", "a1"))
    assert (holder.pid, holder.hostname, holder.username) == (4242, "twinhost", "root")


def test_a_dead_holder_on_this_host_may_be_cleared() -> None:
    holder = LockHolder(Path("x"), 4242, "twinhost", "root", "")
    assert holder_alive(holder, "twinhost", lambda pid: False) is False
    assert holder_alive(holder, "twinhost", lambda pid: pid == 4242) is True


def test_a_holder_on_another_host_is_never_declared_dead() -> None:
    holder = LockHolder(Path("x"), 4242, "elsewhere", "root", "")
    assert holder_alive(holder, "twinhost", lambda pid: False) is True


def test_prefix_does_not_reach_other_stacks() -> None:
    assert names_prefix("dev") == "twinlab-dev-"
    assert not "twinlab-dev2-app".startswith(names_prefix("dev"))


def test_a_fleet_stacks_hosts_come_from_its_config() -> None:
    value = json.dumps(
        [
            {
                "name": "a",
                "dockerHost": "ssh://127.0.0.1:2222",
                "libvirtUri": "qemu+ssh://127.0.0.1:2222/system",
                "sshUser": "ops",
                "sshKey": "/k",
            },
            {"name": "b", "dockerHost": "unix:///var/run/docker.sock"},  # incomplete: skipped
        ]
    )
    (host,) = hosts_of_config(value)
    assert host.name == "a" and host.ssh is not None
    assert (host.ssh.user, host.ssh.port, host.ssh.key_path) == ("ops", 2222, "/k")
    assert host.virsh_uri == "qemu:///system"  # virsh runs on the host itself
    assert hosts_of_config("") == [] and hosts_of_config("not json") == []


def test_the_sweep_on_a_host_goes_through_its_runner() -> None:
    seen: list[list[str]] = []

    def run(argv: list[str]) -> list[str]:
        seen.append(argv)
        if argv[:2] == ["docker", "ps"]:
            return ["twinlab-f-a-app"]
        return []

    found = leftovers.find("twinlab-f-", "qemu:///system", run=run)
    assert found.containers == ["twinlab-f-a-app"]
    assert found.cgroups == [] and found.snapshot_overlays == []  # this machine's only
    assert ["virsh", "-c", "qemu:///system", "list", "--all", "--name"] in seen
