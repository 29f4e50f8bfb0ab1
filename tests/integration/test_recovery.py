"""One-command recovery after a crash: `pulumi up` killed outright (SIGKILL to its process
group) at several points, then `scripts.recover` leaves nothing of the stack on the machine and
the stack unlocked and empty. A live `up` is never broken into (negative control)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from pulumi import automation as auto

from scripts import leftovers
from scripts.recover import RecoveryError, names_prefix, recover
from scripts.state_files import lock_files
from tests.deploy import ROOT, ci_stack_config, new_stack_name

pytestmark = pytest.mark.integration
KILL_DEADLINE_S = 240.0


def _lines(command: list[str]) -> list[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return [line for line in done.stdout.splitlines() if line.strip()]


def container_created(prefix: str) -> bool:
    return bool(_lines(["docker", "ps", "-a", "-q", "--filter", f"name=^{prefix}"]))


def domain_defined(prefix: str) -> bool:
    names = _lines(["virsh", "-c", "qemu:///system", "list", "--all", "--name"])
    return any(name.startswith(prefix) for name in names)


def vm_booting(prefix: str) -> bool:
    return any("qemu-system" in row for row in _lines(["pgrep", "-a", "-f", f"guest={prefix}"]))


POINTS: dict[str, Callable[[str], bool]] = {
    "container created": container_created,
    "VM being defined": domain_defined,
    "VM booting": vm_booting,
}


@pytest.fixture
def stack_name() -> Iterator[str]:
    name = new_stack_name()
    stack = auto.create_stack(stack_name=name, work_dir=str(ROOT))
    stack.set_all_config(
        {f"twinlab:{key}": auto.ConfigValue(value) for key, value in ci_stack_config().items()}
    )
    try:
        yield name
    finally:
        leftovers.remove(names_prefix(name))
        stack.workspace.remove_stack(name, force=True)


def start_up(stack: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the engine and plugins
    )


def wait_until(point: Callable[[str], bool], prefix: str, up: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + KILL_DEADLINE_S
    while not point(prefix):
        if up.poll() is not None:
            pytest.fail(f"pulumi up ended (exit {up.returncode}) before the kill point")
        if time.monotonic() > deadline:
            pytest.fail(f"the kill point was not reached within {KILL_DEADLINE_S:.0f} s")
        time.sleep(0.05)


def kill_group(up: subprocess.Popen[bytes]) -> None:
    os.killpg(up.pid, signal.SIGKILL)
    up.wait(timeout=30)


@pytest.mark.parametrize("point", list(POINTS))
def test_recovery_after_sigkill_of_up_leaves_nothing(stack_name: str, point: str) -> None:
    prefix = names_prefix(stack_name)
    up = start_up(stack_name)
    try:
        wait_until(POINTS[point], prefix, up)
        if point == "VM booting":
            # Negative control: while `up` still runs, its lock is live and nothing is touched.
            with pytest.raises(RecoveryError, match="locked by a running pulumi"):
                recover(stack_name, say=lambda _line: None)
            assert vm_booting(prefix), "the refused recovery must not have touched the VM"
    finally:
        kill_group(up)

    backend = os.environ["PULUMI_BACKEND_URL"]
    assert lock_files(backend, stack_name), "a killed up leaves its lock (the case to recover)"
    before = leftovers.find(prefix)
    assert before.count() > 0, "the kill left resources (the case to recover)"

    log: list[str] = []
    recovered = recover(stack_name, say=log.append)

    assert recovered.locks_cleared, "\n".join(log)
    assert recovered.remaining.count() == 0, recovered.remaining.describe()
    assert leftovers.find(prefix).count() == 0
    assert not lock_files(backend, stack_name)
    stack = auto.select_stack(stack_name=stack_name, work_dir=str(ROOT))
    deployment = stack.export_stack().deployment or {}
    listed = [resource["urn"] for resource in deployment.get("resources") or []]
    assert not listed, "state still lists resources after recovery:\n" + "\n".join(log + listed)
