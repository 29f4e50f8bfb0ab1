"""R4 live: clones of the deployed instances started one by one inside a memory budget the
kernel enforces (fixture `deployed_stack`). Proves that the count is what the kernel allowed,
that the budget is enforced (a budget too small for one instance gives 0 and says why), and
that nothing is left. Each run is bounded well under 3 minutes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from components import outputs
from components.naming import clone_prefix
from scripts.checks.resources.density_budget import DensityEvent, DensityResult, find_leftovers, run
from scripts.checks.results.run_tags import run_tags
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.libvirt_domains import Virsh
from tests.deploy import ROOT

pytestmark = pytest.mark.integration

Stack = dict[str, Any]
KERNEL_STOPS = ("did not start", "gave no HTTP 200", "OOM-killed", "stopped answering", "lost")


def names(stack: Stack) -> tuple[str, str, str]:
    return (
        stack["stack"],
        stack[outputs.VARIANTS]["container"][outputs.INSTANCE_NAME],
        stack[outputs.VARIANTS]["vm"][outputs.INSTANCE_NAME],
    )


def assert_enforced_and_clean(result: DensityResult, stack: str) -> None:
    """The kernel kept the budget's charge under its limit, and nothing of the run is left."""
    assert result.cgroup_version in ("v1", "v2")
    assert result.budget_peak_mib is None or result.budget_peak_mib <= result.budget_mib + 0.01
    assert result.leftovers == ()
    assert find_leftovers(stack) == []


def test_containers_fit_as_many_as_the_kernel_allows(deployed_stack: Stack) -> None:
    stack, container, _ = names(deployed_stack)
    events: list[DensityEvent] = []
    result = run(
        "container",
        container,
        256,
        instance_limit_mib=96,
        max_instances=20,
        ready_deadline_s=30,
        hold_s=30,
        wall_clock_s=170,
        on_event=events.append,
    )
    print(result)
    assert_enforced_and_clean(result, stack)
    # The kernel ended the run, not one of our bounds.
    assert any(stop in result.stop_reason for stop in KERNEL_STOPS), result.stop_reason
    assert 1 <= result.healthy_count < 20
    # It ended because the budget was full: the kernel killed inside it, or its charge
    # reached the limit (v1's failcnt stays 0 on this kernel when only children hit it).
    assert result.kernel_oom_kills or (result.budget_peak_mib or 0) >= 0.95 * 256, result
    healthy = [r for r in result.instances if r.healthy]
    assert sum(r.charged_mib or 0.0 for r in healthy) <= 256
    answered = [r for r in result.instances if r.answered]
    assert all(0 < (r.ready_s or 0) < 30 for r in answered)
    assert all(r.budget_charged_mib is not None for r in answered)
    assert [r.answering_before for r in result.instances[:2]] == [0, 1]
    assert events[0].kind == "starting" and events[-1].kind == "done"
    samples = result.samples(f"docker://{container}", run_tags("n/a"))
    assert samples[0].value == result.healthy_count


def test_container_budget_too_small_for_one_gives_zero_and_the_reason(
    deployed_stack: Stack,
) -> None:
    stack, container, _ = names(deployed_stack)
    result = run(
        "container",
        container,
        8,
        instance_limit_mib=96,
        max_instances=3,
        ready_deadline_s=30,
        hold_s=5,
        wall_clock_s=60,
    )
    print(result)
    assert_enforced_and_clean(result, stack)
    assert result.healthy_count == 0
    assert len(result.instances) == 1
    # The reason is the kernel's: an OOM kill inside the budget, named.
    assert result.kernel_oom_kills and "OOM-killed" in result.stop_reason, result


def test_vms_fit_as_many_as_the_kernel_allows(deployed_stack: Stack) -> None:
    """640 MiB: one TCG guest of 512 MiB (QEMU charged ~350-400 MiB once it answers) fits,
    a second does not: the kernel OOM-kills inside the budget."""
    stack, _, vm = names(deployed_stack)
    result = run(
        "vm",
        vm,
        640,
        max_instances=3,
        ready_deadline_s=70,  # a second start may begin up to 80 s in (56 s boots seen at load 9)
        hold_s=30,
        wall_clock_s=180,
    )
    print(result)
    assert_enforced_and_clean(result, stack)
    assert result.limit_mib == 512
    first = result.instances[0]
    assert first.answered and first.answering_before == 0, result  # one fits alone
    assert first.budget_charged_mib is not None and first.budget_charged_mib < 640
    assert len(result.instances) == 2 and result.instances[1].answering_before == 1
    # The second start exhausted the budget: the kernel killed inside it.
    assert result.kernel_oom_kills, result
    assert "OOM-killed" in result.stop_reason, result.stop_reason
    assert result.healthy_count <= 1


def test_vm_budget_too_small_for_one_gives_zero_and_the_reason(deployed_stack: Stack) -> None:
    stack, _, vm = names(deployed_stack)
    result = run("vm", vm, 160, max_instances=2, ready_deadline_s=90, hold_s=5, wall_clock_s=120)
    print(result)
    assert_enforced_and_clean(result, stack)
    assert result.healthy_count == 0
    assert len(result.instances) == 1
    assert result.kernel_oom_kills or "OOM" in result.stop_reason, result


@pytest.mark.parametrize("kind", ["container", "vm"])
def test_a_density_run_stopped_by_sigterm_removes_what_it_made(
    deployed_stack: Stack, kind: str
) -> None:
    """`kill` (SIGTERM) while the first clone starts: the run removes the clone, its volume or
    the overlay in the stack's pool, and the budget cgroup, then exits 143. Python's default
    (tests/unit/test_termination.py) would have left all of them, and the overlay would have
    made `pulumi destroy` fail on the pool."""
    stack, container, vm = names(deployed_stack)
    source = container if kind == "container" else vm
    command = ["-m", "scripts.checks.resources.density_budget", "--kind", kind]
    run = subprocess.Popen(
        [sys.executable, *command, "--source", source, "--max-instances", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = DockerEngine().container_names if kind == "container" else Virsh().domain_names
    deadline = time.monotonic() + 60
    while not running(clone_prefix(stack)):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.1)
    assert find_leftovers(stack)  # what the run has made so far, seen before the signal
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    assert find_leftovers(stack) == []
