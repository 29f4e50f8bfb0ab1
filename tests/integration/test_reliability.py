"""Teardown and drift on real stacks: `pulumi destroy` after an `up` that failed with resources
already made, or was interrupted while the VM booted, removes everything (a second destroy is a
no-op); a container and a domain removed behind Pulumi's back are named by the checks, and
`pulumi refresh` then `pulumi up` brings both back.

Failures are made honestly: another program takes a port the stack was validated to use while
`up` runs (the race a real user can hit), or the pool directory cannot be created.
"""

from __future__ import annotations

import contextlib
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from rich.console import Console

from components import outputs
from components.naming import stack_prefix
from components.paths import POOL_ROOT
from scripts import leftovers
from scripts.checks.lifecycle import RunOptions
from scripts.checks.runall import InstanceMissingError, require_instances, run_checks
from scripts.checks.targets.deployed import read_deployed
from scripts.checks.targets.subjects import Subjects
from tests.deploy import PORT_KEYS, ROOT, deployed
from tests.deploy import ci_stack_config as stack_config

pytestmark = pytest.mark.integration

URI = "qemu:///system"
DOCKER_EVENTS = ("docker", "events", "--format", "{{.Actor.ID}}")
UP_TIMEOUT_S = 420.0
UP_FLAGS = ("--non-interactive", "--color", "never")
# A failed domain start / pool build leaves nothing behind: our provider wrapper undefines it.


def require(condition: bool, why: str) -> None:
    """A precondition: pytest.fail, not AssertionError, so a broken setup reads as such rather
    than as the behaviour under test."""
    if not condition:
        pytest.fail(why)


def ports_of(config: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(config[key]) for key in PORT_KEYS)


def count(result: auto.UpResult | auto.DestroyResult, operation: auto.OpType) -> int:
    return (result.summary.resource_changes or {}).get(operation, 0)


def prefix_of(stack: auto.Stack) -> str:
    return stack_prefix(stack.name)


def assert_destroy_leaves_nothing(stack: auto.Stack, config: dict[str, str]) -> None:
    """destroy removes every container, volume, domain, pool, QEMU process and port; a second
    destroy has nothing left to do."""
    first = stack.destroy(color="never")
    assert count(first, auto.OpType.DELETE) > 0, first.summary.resource_changes
    found = leftovers.find(prefix_of(stack), URI, ports=ports_of(config))
    assert found.count() == 0, f"destroy left: {found.describe()}"
    second = stack.destroy(color="never")
    assert count(second, auto.OpType.DELETE) == 0, second.summary.resource_changes


@contextlib.contextmanager
def swept(stack: auto.Stack) -> Iterator[None]:
    """Whatever a test proves is left behind is removed afterwards, by name."""
    try:
        yield
    finally:
        leftovers.remove(prefix_of(stack), URI)


class BackgroundUp:
    """`stack.up()` in a thread, so the test can act while it runs."""

    def __init__(self, stack: auto.Stack) -> None:
        self.error: str | None = None
        self.succeeded = False
        self.thread = threading.Thread(target=self._run, args=(stack,), daemon=True)
        self.thread.start()

    def _run(self, stack: auto.Stack) -> None:
        try:
            stack.up(color="never")
            self.succeeded = True
        except auto.errors.CommandError as error:
            self.error = str(error)

    def wait(self) -> None:
        self.thread.join(UP_TIMEOUT_S)
        require(not self.thread.is_alive(), f"up still running after {UP_TIMEOUT_S:g} s")


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        require(time.monotonic() < deadline, f"{what} not seen within {timeout_s:g} s")
        time.sleep(0.1)


def virsh(*args: str) -> str:
    done = subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True)
    return done.stdout.strip()


def take_port(port: int) -> socket.socket:
    """Listen on 127.0.0.1:port as another program would."""
    thief = socket.socket()
    thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    thief.bind(("127.0.0.1", port))
    thief.listen()
    return thief


@contextlib.contextmanager
def docker_volume_created(name: str) -> Iterator[Callable[[], None]]:
    """A waiter that returns the moment Docker creates volume `name` (docker events: polling
    could miss the short gap between the volume and the container that mounts it)."""
    events = subprocess.Popen(
        [*DOCKER_EVENTS, "--filter", "type=volume", "--filter", "event=create"],
        stdout=subprocess.PIPE,
        text=True,
    )

    def wait() -> None:
        assert events.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(events.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if selector.select(timeout=1) and events.stdout.readline().strip() == name:
                return
        pytest.fail(f"docker volume {name} not created within 120 s")

    try:
        yield wait
    finally:
        events.terminate()
        events.wait(timeout=10)


RACE_TRIES = 3


def test_destroy_after_an_up_that_failed_starting_the_container() -> None:
    # The port is taken between the volume's creation and the container's start (tens of ms):
    # when the container wins that race, the stack is torn down and the race run again.
    for _ in range(RACE_TRIES):
        config = stack_config()
        with deployed(config, up=False) as (stack, _), swept(stack):
            prefix = prefix_of(stack)
            with docker_volume_created(f"{prefix}-data") as volume_created:
                up = BackgroundUp(stack)
                volume_created()  # the container mounts it: it is not started yet
                thief = take_port(int(config["containerHttpPort"]))
            try:
                up.wait()
            finally:
                thief.close()
            if up.succeeded:
                stack.destroy(color="never")
                continue
            assert up.error is not None and "address already in use" in up.error, up.error
            made = leftovers.find(prefix, URI)
            assert made.pools and made.docker_volumes, f"up failed too early: {made.describe()}"
            assert_destroy_leaves_nothing(stack, config)
            return
    pytest.fail(f"the container started before its port was taken, {RACE_TRIES} times")


def test_destroy_after_an_up_that_failed_starting_the_vm() -> None:
    config = stack_config()
    with deployed(config, up=False) as (stack, _), swept(stack):
        prefix = prefix_of(stack)
        up = BackgroundUp(stack)
        # The pool comes first; uploading the disk into it takes seconds before the domain.
        wait_until(lambda: f"{prefix}-pool" in virsh("pool-list", "--all", "--name"), 120, "pool")
        thief = take_port(int(config["vmSshPort"]))
        try:
            up.wait()
        finally:
            thief.close()
        error = up.error or "up succeeded"
        require("Could not set up host forwarding" in error, error)
        made = leftovers.find(prefix, URI)
        require(bool(made.containers and made.pools), f"up failed too early: {made.describe()}")
        assert_destroy_leaves_nothing(stack, config)


def test_destroy_after_an_up_that_failed_building_the_pool() -> None:
    config = stack_config(poolDir="/proc/twinlab-no-such-dir")  # absolute, so it passes preview
    with deployed(config, up=False) as (stack, _), swept(stack):
        try:
            stack.up(color="never")
            error = "up succeeded"
        except auto.errors.CommandError as failed:
            error = str(failed)
        require("error building libvirt storage pool" in error, error)
        assert_destroy_leaves_nothing(stack, config)


def signalled_while_it_boots(
    command: list[str], domain: str, log_path: Path, signals: list[signal.Signals]
) -> int:
    """Run `command` (output to log_path), send `signals` half a second apart once `domain`
    runs, and return its exit code."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: virsh("domstate", domain) == "running", 180, "running domain")
            for each in signals:
                time.sleep(0.5)
                process.send_signal(each)
            return process.wait(timeout=UP_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("interrupts", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_destroy_after_an_up_interrupted_while_the_vm_boots(
    interrupts: int, tmp_path: Path
) -> None:
    """Ctrl-C once: Pulumi finishes the steps in flight (the readiness wait), then stops.
    Twice: it stops at once, leaving the readiness wait as a pending operation."""
    pulumi = shutil.which("pulumi")
    assert pulumi is not None, "pulumi is not on PATH: run via scripts/test.sh"
    config = stack_config()
    with deployed(config, up=False) as (stack, _), swept(stack):
        domain = f"{prefix_of(stack)}-vm"
        log_path = tmp_path / "up.log"
        up = [pulumi, "up", "--yes", "--skip-preview", *UP_FLAGS, "--stack", stack.name]
        returncode = signalled_while_it_boots(up, domain, log_path, [signal.SIGINT] * interrupts)
        log_text = log_path.read_text()
        assert returncode != 0, log_text
        assert "received; cancelling" in log_text or "received; terminating" in log_text
        assert leftovers.find(prefix_of(stack), URI).domains == [domain]
        assert_destroy_leaves_nothing(stack, config)


def test_up_and_check_stopped_by_sigterm_while_the_vm_boots_cancels_and_tears_down(
    tmp_path: Path,
) -> None:
    """`kill` on `fab up-and-check` (scripts/run.sh's last step) during `up`: Pulumi gets no
    signal of its own, so fab asks it to cancel as Ctrl-C would (the log shows Pulumi's
    "received; cancelling"), then destroys the stack and exits 143, with nothing left."""
    config = stack_config()
    with deployed(config, up=False) as (stack, _), swept(stack):
        domain = f"{prefix_of(stack)}-vm"
        log_path = tmp_path / "up-and-check.log"
        fab = ["fab", "up-and-check", "--stack", stack.name]
        returncode = signalled_while_it_boots(fab, domain, log_path, [signal.SIGTERM])
        log_text = log_path.read_text()
        assert returncode == 128 + signal.SIGTERM, log_text
        assert "received; cancelling" in log_text, log_text
        assert "stopped by SIGTERM" in log_text, log_text
        found = leftovers.find(prefix_of(stack), URI, ports=ports_of(config))
        assert found.count() == 0, found.describe()


def test_a_file_the_state_never_owned_in_the_pool_is_swept_from_disk_too() -> None:
    """A clone's overlay (made as the resource checks make one: a volume in the stack's pool)
    left by a check that died: libvirt refuses to delete the pool's directory, so destroy
    cannot remove the pool; the leftover count sees the file on disk, and the sweep removes
    the pool, the file and the directory (before, it undefined the pool and left both)."""
    config = stack_config(variants="vm")
    with deployed(config) as (stack, _), swept(stack):
        prefix = prefix_of(stack)
        overlay = f"{prefix}-clone-1-vda.qcow2"
        virsh("vol-create-as", f"{prefix}-pool", overlay, "1M", "--format", "qcow2")
        directory = POOL_ROOT / prefix
        require((directory / overlay).is_file(), f"no {overlay} in {directory}")
        with contextlib.suppress(auto.errors.CommandError):  # libvirt: "Directory not empty"
            stack.destroy(color="never")
        left = leftovers.find(prefix, URI)
        assert str(directory / overlay) in left.pool_files, left.describe()
        removed = leftovers.sweep_stack(stack.name, URI)
        assert removed.pool_dirs == [str(directory)], removed.describe()
        found = leftovers.find(prefix, URI, ports=ports_of(config))
        assert found.count() == 0, found.describe()
        assert not directory.exists()


def http_status(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
        return int(response.status)


def remove_behind_pulumis_back(container: str, domain: str) -> None:
    subprocess.run(["docker", "rm", "-f", container], check=True, capture_output=True)
    virsh("destroy", domain)
    virsh("undefine", domain)


def test_drift_is_named_by_the_checks_and_refresh_then_up_restores_it(tmp_path: Path) -> None:
    config = stack_config()
    with deployed(config) as (stack, out):
        container, vm = out[outputs.VARIANTS]["container"], out[outputs.VARIANTS]["vm"]
        app, domain = container[outputs.INSTANCE_NAME], vm[outputs.INSTANCE_NAME]
        # Unchanged config, unchanged stack: an up would touch nothing (no VM replaced).
        assert set(stack.preview(color="never").change_summary) == {auto.OpType.SAME}
        remove_behind_pulumis_back(app, domain)

        subjects = Subjects.of_stack(read_deployed(stack.name))
        options = RunOptions(groups=("isolation",), weakened=False, results_dir=tmp_path)
        with pytest.raises(InstanceMissingError) as drift:
            run_checks(subjects, options, Console(stderr=True))
        message = str(drift.value)
        assert f"container {app!r} no longer exists" in message
        assert f"libvirt domain {domain!r} no longer exists" in message
        assert f"`pulumi refresh --stack {stack.name}` then `pulumi up --stack {stack.name}`" in (
            message
        )

        # up alone trusts the state: it would recreate nothing. Hence refresh first.
        assert auto.OpType.CREATE not in stack.preview(color="never").change_summary
        stack.refresh(color="never")
        restored = stack.up(color="never")
        assert count(restored, auto.OpType.CREATE) >= 2
        new: dict[str, Any] = {key: value.value for key, value in restored.outputs.items()}
        for variant, before in (("container", container), ("vm", vm)):
            after = new[outputs.VARIANTS][variant]
            assert after[outputs.INSTANCE_ID] != before[outputs.INSTANCE_ID]
            assert http_status(after[outputs.URL]) == 200
        require_instances(Subjects.of_stack(read_deployed(stack.name)))  # no drift left

        # Drifted again, then torn down: pulumi-libvirt's delete fails on a domain that is gone
        # ("Domain not found"), so the teardown of a drifted stack is `pulumi destroy --refresh`.
        remove_behind_pulumis_back(app, domain)
        torn_down = stack.destroy(color="never", refresh=True)
        assert count(torn_down, auto.OpType.DELETE) > 0
        found = leftovers.find(prefix_of(stack), URI, ports=ports_of(config))
        assert found.count() == 0, found.describe()
        leftovers.remove_key_files(stack.name)
