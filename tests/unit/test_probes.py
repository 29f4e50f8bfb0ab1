"""Probe interpretations on output captured from real targets, and the state-changing probes'
control flow (change, compare with the host, undo) on fake kernels."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.checks.parsers.sections import split_sections
from scripts.checks.probes import (
    ISOLATION_PROBES,
    OS_PROBES,
    ProbesFailedError,
    attack_surface,
    kernel_writes,
    run_isolation,
)
from scripts.checks.probes import __main__ as probes_cli
from scripts.checks.probes.base import run_batch
from scripts.checks.probes.baseline import HostBaseline, baseline_from_sections, host_baseline
from scripts.checks.probes.catalog import Reading, metrics
from scripts.checks.probes.isolation import READ_ONLY_PROBES, kernel_modules, kernel_state_seen
from scripts.checks.probes.kernel_writes import (
    SYSCTL_PATH,
    init_module_verdict,
    module_load,
    sysctl_write,
)
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.target import CommandResult, LocalTarget, Target, TargetError

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data" / "probes"


def captured_baseline(label: str) -> HostBaseline:
    sections = split_sections((DATA / label / "baseline" / "host.txt").read_text(encoding="utf-8"))
    marker = (DATA / label / "baseline" / "marker.txt").read_text(encoding="utf-8").strip()
    return baseline_from_sections(sections, LocalTarget("local://"), marker, 0, time.monotonic())


def readings(label: str) -> dict[str, Reading]:
    baseline = captured_baseline(label)
    found: dict[str, Reading] = {}
    for probe in (*OS_PROBES, *READ_ONLY_PROBES):
        text = (DATA / label / f"{probe.name}.txt").read_text(encoding="utf-8")
        for reading in probe.interpret(split_sections(text), baseline):
            found[reading.metric] = reading
    return found


# What the captures show (Docker 20.10 on this Firecracker host, kernel without module support).
SHARED_KERNEL: dict[str, Value] = {
    "same_kernel_as_host": True,
    "same_boot_id_as_host": True,
    "host_kernel_state_visible": True,
    "kernel_modules_visible": False,  # inconclusive: the host kernel has no modules
    "userns_identity": True,
    "kernel_image_present": False,
    "init_system": "none",
    "os_service_count": 0,
}
EXPECTED: dict[str, dict[str, Value]] = {
    # The stack's container: cap-drop ALL, no-new-privileges, 512 MiB, one pinned CPU.
    "container": SHARED_KERNEL
    | {
        "virtualization": "docker",
        "process_count": 3,
        "package_count": 115,
        "host_processes_visible": False,
        "kernel_log_readable": False,
        "cap_eff": "0000000000000000",
        "cap_eff_count": 0,
        "cap_full": False,
        "seccomp_mode": 2,
        "no_new_privs": True,
        "device_node_count": 6,
        "cgroup_memory_limit_mib": 512.0,
        "cgroup_cpu_limit": 1.0,
    },
    # Docker's defaults: 14 capabilities, seccomp filter, no limits.
    "container-default": SHARED_KERNEL
    | {
        "virtualization": "docker",
        "pid1_command": "python3 -m http.server 8080",
        "process_count": 1,
        "host_processes_visible": False,
        "cap_eff": "00000000a80425fb",
        "cap_eff_count": 14,
        "cap_full": False,
        "seccomp_mode": 2,
        "no_new_privs": False,
    },
    # Weakened: host PID namespace, every capability Docker knows, seccomp off.
    "weakened": SHARED_KERNEL
    | {
        "virtualization": "docker",
        "pid1_command": "process_api",
        "host_processes_visible": True,
        "kernel_log_readable": True,
        "cap_eff_count": 37,
        "cap_full": True,
        "seccomp_mode": 0,
    },
    # The project's VM image under TCG, probed over SSH with sudo: its own kernel and OS.
    "vm": {
        "same_kernel_as_host": False,
        "same_boot_id_as_host": False,
        "virtualization": "qemu",
        "pid1_command": "/sbin/init",
        "init_system": "systemd",
        "kernel_image_present": True,
        "host_processes_visible": False,
        "host_kernel_state_visible": False,
        "kernel_modules_visible": False,
        "kernel_log_readable": False,  # its own kernel's log is readable, not the host's
        "cap_full": True,  # root of its own kernel
        "seccomp_mode": 0,
        "userns_identity": True,
        "cgroup_memory_limit_mib": 457.4,  # MemTotal of a 512 MiB guest
        "cgroup_cpu_limit": 1.0,
    },
    "host": SHARED_KERNEL
    | {
        "host_processes_visible": True,
        "kernel_log_readable": True,
        "cap_eff_count": 40,
        "cap_full": True,
        "seccomp_mode": 0,
        "no_new_privs": False,
    },
}


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_captured_target_reads_as_expected(label: str) -> None:
    found = readings(label)
    # Every metric the read probes' modules declare (the state-changing and the attack-surface
    # probes are no read probes).
    assert set(found) >= set(metrics()) - set(kernel_writes.METRICS) - set(attack_surface.METRICS)
    actual = {metric: found[metric].value for metric in EXPECTED[label]}
    assert actual == EXPECTED[label]


def test_container_sees_the_app_as_pid1_and_the_host_through_its_shared_kernel() -> None:
    found = readings("container")
    assert "gunicorn" in str(found["pid1_command"].value)
    assert found["kernel_release"].value == captured_baseline("container").kernel_release
    assert found["kernel_modules_visible"].metadata["inconclusive"] is True
    assert found["virtualization"].metadata["vm_kind"] == "kvm"


def test_vm_runs_init_plus_os_services_and_kernel_threads() -> None:
    found = readings("vm")
    assert found["os_service_count"].value == 2  # sshd and journald: the image trims the rest
    assert "ssh.service" in str(found["os_service_count"].metadata["services"])
    assert "twinlab" not in str(found["os_service_count"].metadata["services"])
    assert found["kernel_log_readable"].metadata["log_source"] == "own kernel"
    process_count = found["process_count"]
    assert int(process_count.value) > int(process_count.metadata["kernel_threads"]) > 10


def test_module_lists_compare_when_the_host_has_module_support() -> None:
    vm_modules = split_sections((DATA / "vm" / "kernel_modules.txt").read_text(encoding="utf-8"))
    names = frozenset(line.split()[0] for line in vm_modules["modules"].text.splitlines())
    same = replace(captured_baseline("vm"), module_names=names)
    other = replace(captured_baseline("vm"), module_names=names | {"kvm_intel"})
    assert kernel_modules(vm_modules, same)[0].value is True
    assert kernel_modules(vm_modules, other)[0].value is False
    assert "inconclusive" not in kernel_modules(vm_modules, other)[0].metadata


def test_batched_read_probes_read_the_same_as_one_by_one_on_this_host() -> None:
    stable = {
        "uptime_delta_s",
        "visible_process_count",
        "commands",
        "kernel_threads",
        "mount_count",
    }
    with host_baseline() as baseline:
        host = baseline.host
        one_by_one = [sample for probe in READ_ONLY_PROBES for sample in probe(host, baseline)]
        batched = run_batch(READ_ONLY_PROBES, host, baseline)

    def view(samples: list[Sample]) -> list[tuple[str, Value, dict[str, Value]]]:
        return [
            (s.metric, s.value, {k: v for k, v in s.metadata.items() if k not in stable})
            for s in samples
        ]

    assert view(batched) == view(one_by_one)
    assert {s.metric: s.value for s in batched}["host_processes_visible"] is True


def test_kernel_state_is_seen_through_boot_id_or_uptime() -> None:
    assert kernel_state_seen("a", 100.0, "a", 5000.0)[0]
    assert kernel_state_seen("b", 5000.5, "a", 5000.0)[0]
    seen, metadata = kernel_state_seen("b", 12.0, "a", 5000.0)
    assert not seen and metadata["boot_id_equal"] is False


def test_every_isolation_metric_has_a_probe() -> None:
    assert len(ISOLATION_PROBES) >= 12


@pytest.mark.parametrize(
    ("answer", "can_load"),
    [("EPERM", False), ("ENOSYS", False), ("ENOEXEC", True), ("EINVAL", True)],
)
def test_init_module_permission_answers(answer: str, can_load: bool) -> None:
    assert init_module_verdict(answer)[0] is can_load


# --- state-changing probes on fake kernels -------------------------------------------------------


class FakeKernel:
    def __init__(self, modules: set[str] | None, burst: int = 10, boot_id: str = "boot") -> None:
        self.modules = modules  # None: no module support
        self.burst = burst
        self.boot_id = boot_id


SECTION = re.compile(r"@@twinlab-begin %s\\n' (\w+)")


class FakeTarget(Target):
    """Answers the few commands the state-changing probes send, against a FakeKernel."""

    guessed_kind = "container"

    def __init__(
        self,
        kernel: FakeKernel,
        *,
        sysctl_writable: bool = False,
        modprobe: bool = False,
        init_module_answer: str | None = "EPERM",
        fail_reads_after_write: bool = False,
    ) -> None:
        super().__init__("fake://target")
        self.kernel = kernel
        self.sysctl_writable = sysctl_writable
        self.modprobe = modprobe
        self.init_module_answer = init_module_answer
        self.fail_reads_after_write = fail_reads_after_write
        self.written = False

    @classmethod
    def from_url(cls, url: str, parts: object) -> Target:  # type: ignore[override]
        raise NotImplementedError

    def sections(self, cmd: str) -> str:
        answers: dict[str, Callable[[], tuple[int, str]]] = {
            "modprobe": lambda: (0, "/sbin/modprobe") if self.modprobe else (127, ""),
            "python": lambda: (0, "/usr/bin/python3") if self.init_module_answer else (127, ""),
            "boot_id": lambda: (0, self.kernel.boot_id),
            "modules": lambda: (
                (1, "")
                if self.kernel.modules is None
                else (0, "".join(f"{m} 16384 0 - Live 0x0\n" for m in sorted(self.kernel.modules)))
            ),
        }
        out = []
        for name in SECTION.findall(cmd):
            rc, text = answers[name]()
            out.append(f"\n@@twinlab-begin {name}\n{text}\n@@twinlab-end {name} {rc}\n")
        return "".join(out)

    def run(self, cmd: str, *, root: bool = False, timeout_s: float = 30.0) -> CommandResult:
        if cmd == f"cat {SYSCTL_PATH}":
            if self.written and self.fail_reads_after_write:
                self.fail_reads_after_write = False
                raise TargetError("fake://target: connection lost")
            return CommandResult(0, f"{self.kernel.burst}\n", "")
        if cmd.startswith("echo ") and cmd.endswith(SYSCTL_PATH):
            if not self.sysctl_writable:
                return CommandResult(2, "", "sh: 1: cannot create: Read-only file system")
            self.kernel.burst, self.written = int(cmd.split()[1]), True
            return CommandResult(0, "", "")
        if cmd.startswith("modprobe -r dummy") and self.kernel.modules is not None:
            self.kernel.modules.discard("dummy")
            return CommandResult(0, "", "")
        if cmd.startswith("modprobe dummy") and self.kernel.modules is not None:
            self.kernel.modules.add("dummy")
            return CommandResult(0, "", "")
        if cmd.startswith("python3 -c"):
            return CommandResult(0, f"{self.init_module_answer}\n", "")
        if "@@twinlab-begin" in cmd:
            return CommandResult(0, self.sections(cmd), "")
        raise AssertionError(f"unexpected command {cmd!r}")


def fake_baseline(host: FakeTarget) -> HostBaseline:
    modules = None if host.kernel.modules is None else frozenset(host.kernel.modules)
    return HostBaseline(host, "6.1.0", "boot", 100.0, time.monotonic(), modules, 0, "m", 1)


def values(samples: list[Sample]) -> dict[str, Value]:
    return {sample.metric: sample.value for sample in samples}


def test_read_only_proc_sys_cannot_write_and_changes_nothing() -> None:
    kernel = FakeKernel(modules=None)
    host, container = FakeTarget(kernel, sysctl_writable=True), FakeTarget(kernel)
    found = values(sysctl_write(container, fake_baseline(host)))
    assert found == {"can_write_sysctl": False, "sysctl_write_reached_host": False}
    assert kernel.burst == 10


def test_writable_sysctl_on_the_shared_kernel_reaches_the_host_and_is_undone() -> None:
    kernel = FakeKernel(modules=None)
    host = FakeTarget(kernel, sysctl_writable=True)
    weakened = FakeTarget(kernel, sysctl_writable=True)
    samples = sysctl_write(weakened, fake_baseline(host))
    assert values(samples) == {"can_write_sysctl": True, "sysctl_write_reached_host": True}
    assert samples[0].metadata["undone"] is True
    assert kernel.burst == 10


def test_vm_writes_only_its_own_kernel_and_restores_it() -> None:
    host = FakeTarget(FakeKernel(modules=set()), sysctl_writable=True)
    vm_kernel = FakeKernel(modules=set(), burst=5)
    vm = FakeTarget(vm_kernel, sysctl_writable=True)
    found = values(sysctl_write(vm, fake_baseline(host)))
    assert found == {"can_write_sysctl": True, "sysctl_write_reached_host": False}
    assert (vm_kernel.burst, host.kernel.burst) == (5, 10)


def test_a_failure_after_the_write_still_restores_the_value() -> None:
    kernel = FakeKernel(modules=None)
    host = FakeTarget(kernel, sysctl_writable=True)
    flaky = FakeTarget(kernel, sysctl_writable=True, fail_reads_after_write=True)
    with pytest.raises(TargetError, match="connection lost"):
        sysctl_write(flaky, fake_baseline(host))
    assert kernel.burst == 10


def test_vm_loads_a_module_into_its_own_kernel_and_unloads_it() -> None:
    host = FakeTarget(FakeKernel(modules={"ext4"}))
    vm_kernel = FakeKernel(modules={"virtio_blk"})
    vm = FakeTarget(vm_kernel, modprobe=True)
    samples = module_load(vm, fake_baseline(host))
    assert values(samples) == {"can_load_kernel_module": True, "module_load_reached_host": False}
    assert samples[0].metadata["undone"] is True
    assert vm_kernel.modules == {"virtio_blk"}


def test_module_loaded_from_a_weakened_container_reaches_the_host_and_is_removed() -> None:
    kernel = FakeKernel(modules={"ext4"})
    host, weakened = FakeTarget(kernel), FakeTarget(kernel, modprobe=True)
    found = values(module_load(weakened, fake_baseline(host)))
    assert found == {"can_load_kernel_module": True, "module_load_reached_host": True}
    assert kernel.modules == {"ext4"}


@pytest.mark.parametrize(("answer", "can_load"), [("EPERM", False), ("ENOSYS", False)])
def test_without_modprobe_the_kernel_is_only_asked_for_permission(
    answer: str, can_load: bool
) -> None:
    kernel = FakeKernel(modules=None)
    container = FakeTarget(kernel, init_module_answer=answer)
    samples = module_load(container, fake_baseline(FakeTarget(kernel)))
    assert values(samples) == {
        "can_load_kernel_module": can_load,
        "module_load_reached_host": False,
    }
    assert samples[0].metadata["method"] == "init_module permission test"


def test_a_permitted_load_on_the_hosts_kernel_is_inferred_to_reach_it() -> None:
    kernel = FakeKernel(modules={"ext4"})
    weakened = FakeTarget(kernel, init_module_answer="ENOEXEC")
    samples = module_load(weakened, fake_baseline(FakeTarget(kernel)))
    assert values(samples) == {"can_load_kernel_module": True, "module_load_reached_host": True}
    assert str(samples[1].metadata["basis"]).startswith("inferred")
    vm = FakeTarget(FakeKernel(modules=set(), boot_id="vm"), init_module_answer="ENOEXEC")
    samples = module_load(vm, fake_baseline(FakeTarget(kernel)))
    assert values(samples) == {"can_load_kernel_module": True, "module_load_reached_host": False}


def test_neither_modprobe_nor_python_is_inconclusive() -> None:
    kernel = FakeKernel(modules=None)
    bare = FakeTarget(kernel, init_module_answer=None)
    samples = module_load(bare, fake_baseline(FakeTarget(kernel)))
    assert samples[0].value is False and samples[0].metadata["inconclusive"] is True


def test_run_isolation_stamps_common_metadata() -> None:
    kernel = FakeKernel(modules=None)
    baseline = fake_baseline(FakeTarget(kernel, sysctl_writable=True))
    samples = run_isolation(
        [FakeTarget(kernel)], run_id="r1", virt_mode="tcg", baseline=baseline, only=["sysctl_write"]
    )
    assert [s.metric for s in samples] == ["can_write_sysctl", "sysctl_write_reached_host"]
    assert {s.metadata["run_id"] for s in samples} == {"r1"}
    assert {s.metadata["virt_mode"] for s in samples} == {"tcg"}
    assert {s.metadata["host_kernel"] for s in samples} == {"6.1.0"}
    assert all(s.claims == metrics()[s.metric].claims for s in samples)


def test_a_failing_target_does_not_hide_the_others() -> None:
    kernel = FakeKernel(modules=None)
    baseline = fake_baseline(FakeTarget(kernel, sysctl_writable=True))
    broken = FakeTarget(kernel, sysctl_writable=True, fail_reads_after_write=True)
    with pytest.raises(ProbesFailedError, match="connection lost") as failed:
        run_isolation(
            [broken, FakeTarget(kernel)],
            run_id="r1",
            virt_mode="tcg",
            baseline=baseline,
            only=["sysctl_write"],
        )
    assert len(failed.value.samples) == 2
    assert kernel.burst == 10


def test_unknown_probe_names_are_refused() -> None:
    baseline = fake_baseline(FakeTarget(FakeKernel(modules=None)))
    with pytest.raises(ValueError, match="sysctl_write"):
        run_isolation([], run_id="r", virt_mode="tcg", baseline=baseline, only=["nope"])


def test_cli_names_a_bad_target_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert probes_cli.main(["http://127.0.0.1:8080"]) == 1
    assert "is not a target URL" in capsys.readouterr().err


def test_cli_table_puts_targets_side_by_side() -> None:
    samples = [
        Sample("cap_full", False, "", "docker://app", "container", ("I1",), {}, kind="container"),
        Sample("cap_full", True, "", "ssh://twin@h:22?key=k", "vm", ("I1",), {}, kind="vm"),
        Sample(
            "kernel_modules_visible",
            False,
            "",
            "docker://app",
            "container",
            ("I1",),
            {"inconclusive": True},
            kind="container",
        ),
    ]
    view = probes_cli.table(samples)
    assert [column.header for column in view.columns] == [
        "metric",
        "docker://app",
        "ssh://twin@h:22",
        "claims",
    ]
    assert list(view.columns[1].cells) == ["False", "False (inconclusive)"]
