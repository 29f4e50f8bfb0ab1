"""The misconfiguration probes' parsers and the verdicts built on them, on output captured from
real targets (tests/unit/data/probes/control-*/ are containers weakened in exactly one way, see
scripts/checks/probes/weakenings.py; regenerate with `python -m scripts.checks.probes.capture
--controls`), plus the parts no capture can show on this host (an LSM, a readable ftrace)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from components.thresholds import thresholds_for
from scripts.checks.claims import i1
from scripts.checks.parsers.mountinfo import Mount, host_path, parse_mountinfo
from scripts.checks.parsers.sections import Section, split_sections
from scripts.checks.probes import attack_surface, cis, findings, misconfig_lsm, syscall_test
from scripts.checks.probes.baseline import HostBaseline, baseline_from_sections
from scripts.checks.probes.catalog import to_sample
from scripts.checks.probes.finding import finding
from scripts.checks.probes.misconfig import MISCONFIG_PROBES
from scripts.checks.probes.misconfig_mounts import exposed, sensitive
from scripts.checks.probes.misconfig_seccomp import blocked_syscalls
from scripts.checks.probes.weakenings import CONTROLS, Weakening
from scripts.checks.results import verdicts
from scripts.checks.results.samples import Sample
from scripts.checks.targets.target import CommandResult, LocalTarget, Target

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data"
PROBES = DATA / "probes"


class Named(Target):
    """A target that is only a name: the samples of captured output need one."""

    guessed_kind = "container"

    @classmethod
    def from_url(cls, url: str, parts: object) -> Target:
        raise NotImplementedError

    def run(self, cmd: str, *, root: bool = False, timeout_s: float = 30.0) -> CommandResult:
        raise AssertionError("captured output only")


class NamedVm(Named):
    guessed_kind = "vm"


class NamedHost(Named):
    guessed_kind = "host"


def captured_baseline(label: str) -> HostBaseline:
    sections = split_sections((PROBES / label / "baseline" / "host.txt").read_text())
    marker = (PROBES / label / "baseline" / "marker.txt").read_text().strip()
    return baseline_from_sections(sections, LocalTarget("local://"), marker, 0, time.monotonic())


def captured_samples(label: str, variant: str = "container") -> list[Sample]:
    """The misconfiguration samples of one capture, as run_isolation would give them."""
    baseline = captured_baseline(label)
    target = NamedVm(f"docker://{label}") if variant == "vm" else Named(f"docker://{label}")
    samples = []
    for probe in MISCONFIG_PROBES:
        sections = split_sections((PROBES / label / f"{probe.name}.txt").read_text())
        samples += probe.samples(sections, target, baseline)
    return samples


def by_metric(samples: list[Sample]) -> dict[str, Sample]:
    return {sample.metric: sample for sample in samples}


# --- each control: its own finding, with its CIS item ---------------------------------------


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_each_control_is_reported_by_its_probe_with_its_cis_item(control: Weakening) -> None:
    found = by_metric(captured_samples(f"control-{control.name}"))
    sample = found[control.metric]
    assert sample.metadata[findings.CIS_KEY] == control.cis
    if control.name == "apparmor-unconfined":
        # This host's kernel runs no LSM: the probe must say so, never "confined".
        assert sample.value == findings.INCONCLUSIVE
        assert "no AppArmor or SELinux" in str(sample.metadata[findings.REASON_KEY])
        return
    assert sample.value is True, sample.metadata
    assert sample.metadata[findings.SCOPE_KEY] == findings.HOST_SCOPE


def test_the_hardened_starting_point_has_no_finding() -> None:
    samples = captured_samples("control-hardened")
    assert [findings.describe(s) for s in samples if findings.weak(s)] == []
    unmeasured = {s.metric for s in samples if findings.inconclusive(s)}
    assert unmeasured == {"lsm_unconfined"}  # no LSM on this host


def test_a_control_weakened_one_way_has_only_that_weakness() -> None:
    """One flag, one finding: the probes do not cry wolf on the others."""
    for control in CONTROLS:
        if control.name in ("apparmor-unconfined", "host-pid"):
            continue  # none; host-pid also hides PID 1's user (inconclusive), tested below
        samples = captured_samples(f"control-{control.name}")
        weak = {s.metric for s in samples if findings.weak(s)}
        assert weak == {control.metric}, (control.name, weak)


def test_host_pid_namespace_leaves_the_main_process_user_unmeasured() -> None:
    found = by_metric(captured_samples("control-host-pid"))
    assert found["root_without_userns"].value == findings.INCONCLUSIVE
    assert "host's init" in str(found["root_without_userns"].metadata["reason"])


def test_seccomp_counts_blocked_dangerous_syscalls() -> None:
    hardened = by_metric(captured_samples("control-hardened"))
    unconfined = by_metric(captured_samples("control-seccomp-unconfined"))
    tested = int(hardened["dangerous_syscalls_blocked"].metadata["tested"])
    host = split_sections((PROBES / "host" / "seccomp_filter.txt").read_text())
    assert tested == len(syscall_test.parse_answers(host["syscalls"].text)) == 20
    assert int(hardened["dangerous_syscalls_blocked"].value) >= tested // 2
    assert "mount" in str(hardened["dangerous_syscalls_blocked"].metadata["blocked_names"])
    assert unconfined["dangerous_syscalls_blocked"].value == 0
    assert hardened["dangerous_syscalls_blocked"].value == 18  # all but ptrace, clock_adjtime
    assert "no seccomp filter" in str(unconfined["seccomp_unconfined"].metadata["finding"])


def test_no_listed_syscall_is_refused_by_the_kernel_to_a_capability_less_root() -> None:
    """Without a filter and without capabilities nothing may answer EPERM: else the count would
    credit the filter with the kernel's own capability check."""
    unfiltered = split_sections(
        (PROBES / "control-seccomp-unconfined" / "seccomp_filter.txt").read_text()
    )
    answers = syscall_test.parse_answers(unfiltered["syscalls"].text)
    assert len(answers) == 20 and "EPERM" not in answers.values(), answers


def test_syscalls_the_host_kernel_itself_refuses_are_not_counted() -> None:
    answers = {"mount": "EPERM", "bpf": "EPERM", "kcmp": "ESRCH"}
    host = {"mount": "EFAULT", "bpf": "EPERM", "kcmp": "ESRCH"}
    assert blocked_syscalls(answers, host) == (["mount"], ["mount", "kcmp"])
    assert syscall_test.countable(None) and not syscall_test.countable("ENOSYS")


# --- the VM: findings about its own kernel are guest-only --------------------------------------


def test_vm_findings_are_guest_only_and_do_not_fail_i2() -> None:
    samples = captured_samples("vm", variant="vm")
    found = by_metric(samples)
    assert all(
        s.metadata[findings.SCOPE_KEY] == findings.GUEST_ONLY
        for s in samples
        if s.metric != "sensitive_host_path_mounted" and findings.is_finding(s)
    )
    assert found["host_pid_namespace_shared"].value is False  # same inode number, other kernel
    assert found["sensitive_host_path_mounted"].value is False  # no 9p/virtiofs share
    assert found["root_without_userns"].value is True  # the guest's init runs as root
    assert findings.weaknesses(samples, "docker://vm", scope=findings.HOST_SCOPE) == []
    assert "[guest-only]" in " ".join(findings.weaknesses(samples, "docker://vm"))


# --- mountinfo --------------------------------------------------------------------------------

HOST_MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
22 27 0:21 / /proc rw,relatime - proc proc rw
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1 0 254:0 / /host rw - ext4 /dev/vda rw", ["host / on /host (rw)"]),
        ("1 0 254:0 /etc /x ro - ext4 /dev/vda rw", ["host /etc on /x (ro)"]),
        ("1 0 254:0 /var /v rw - ext4 /dev/vda rw", ["host /var on /v (rw)"]),  # holds docker
        ("1 0 0:21 / /host/proc rw - proc proc rw", ["host /proc on /host/proc (rw)"]),
        ("1 0 254:0 /var/lib/docker/volumes/d/_data /data rw - ext4 /dev/vda rw", []),
        ("1 0 254:0 /var/lib/docker/containers/1/hosts /etc/hosts rw - ext4 /dev/vda rw", []),
        ("1 0 0:36 /docker/1 /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids", []),
        (
            "1 0 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
            ["host /sys/fs/cgroup/pids on /sys/fs/cgroup/pids (rw)"],
        ),
        ("1 0 0:99 / /proc rw - proc proc rw", []),  # its own procfs
    ],
)
def test_sensitive_host_paths_are_found_by_device(line: str, expected: list[str]) -> None:
    host = tuple(parse_mountinfo(HOST_MOUNTINFO))
    assert exposed(parse_mountinfo(line), host) == expected


def test_a_recursive_bind_is_one_finding_with_its_submounts_counted() -> None:
    host = tuple(parse_mountinfo(HOST_MOUNTINFO))
    inside = parse_mountinfo(
        "1 0 254:0 / /host rw - ext4 /dev/vda rw\n2 1 0:21 / /host/proc rw - proc proc rw\n"
    )
    assert exposed(inside, host) == ["host / on /host (rw) +1 submounts"]


def test_mountinfo_unescapes_paths_and_maps_nested_roots() -> None:
    (mount,) = parse_mountinfo(r"5 1 8:1 /srv/a\040b /mnt rw shared:1 - xfs /dev/sda1 rw")
    assert mount.root == "/srv/a b" and not mount.read_only and mount.fstype == "xfs"
    data = Mount("8:1", "/", "/data", False, "xfs", "/dev/sda1")
    assert host_path(mount, [data]) == "/data/srv/a b"
    assert sensitive("/") and sensitive("/etc/shadow") and not sensitive("/srv/app")


# --- LSM --------------------------------------------------------------------------------------


def test_lsm_profile_where_the_host_runs_apparmor() -> None:
    baseline = replace(captured_baseline("control-hardened"), lsms=("apparmor",))
    boot = Section(0, baseline.boot_id)
    lsm = {"lsm_list": Section(1, ""), "apparmor": Section(1, ""), "selinux": Section(1, "")}

    def reading(current: str) -> object:
        sections = {"current": Section(0, current), "boot_id": boot, **lsm}
        return misconfig_lsm.lsm_profile(sections, baseline)[0].value

    assert reading("unconfined\n") is True
    assert reading("docker-default (enforce)\n") is False
    assert misconfig_lsm.unconfined("system_u:system_r:spc_t:s0")
    assert not misconfig_lsm.unconfined("system_u:system_r:container_t:s0:c1,c2")


# --- verdicts -------------------------------------------------------------------------------


def isolation_samples(label: str) -> verdicts.Samples:
    """A capture's findings beside the baseline isolation readings of a well-kept container."""
    target = f"docker://{label}"
    basics = [
        Sample("host_processes_visible", False, "", target, "container", ("I1",), kind="container"),
        Sample("cap_full", False, "", target, "container", ("I1",), kind="container"),
        Sample("seccomp_mode", 2, "", target, "container", ("I1",), kind="container"),
        Sample(
            "host_kernel_state_visible", True, "", target, "container", ("I1",), kind="container"
        ),
        Sample("can_write_sysctl", False, "", target, "container", ("I1",), kind="container"),
    ]
    return verdicts.Samples(basics + captured_samples(label))


def test_i1_names_the_weakness_and_its_cis_item() -> None:
    samples = isolation_samples("control-docker-socket")
    result = i1.judge(samples, thresholds_for("tcg"))
    assert result.verdict == "does not hold"
    assert "/var/run/docker.sock" in result.summary and "(CIS 5.32)" in result.summary
    assert "not measurable here" in result.summary  # the LSM, on this host


def test_i1_holds_for_the_hardened_container_and_says_what_it_could_not_see() -> None:
    result = i1.judge(isolation_samples("control-hardened"), thresholds_for("tcg"))
    assert result.verdict == "holds", result.summary
    assert "lsm_unconfined (CIS 5.2): not measurable here" in result.summary


def test_isolation_table_has_a_cell_per_finding_and_target() -> None:
    samples = captured_samples("control-host-network") + captured_samples("control-hardened")
    table = findings.isolation_table(samples)
    row = table["host_net_namespace_shared"]
    assert row["docker://control-host-network"].state == "weak"
    assert row["docker://control-hardened"].state == "ok"
    assert row["docker://control-hardened"].cis == "5.10"
    assert table["lsm_unconfined"]["docker://control-hardened"].state == "inconclusive"
    weak = row["docker://control-host-network"]
    assert (weak.colour, weak.text) == ("red", "weak (CIS 5.10)")
    vm = findings.isolation_table(captured_samples("vm", variant="vm"))
    assert vm["root_without_userns"]["docker://vm"].text == "weak (CIS 4.1) guest-only"


# --- host-kernel attack surface -------------------------------------------------------------


def test_function_trace_counts_distinct_callees() -> None:
    trace = (DATA / "attack_surface" / "function_trace.txt").read_text()
    assert attack_surface.functions_reached(trace) == {
        "__x64_sys_recvfrom",
        "__sys_recvfrom",
        "sockfd_lookup_light",
        "__fdget",
        "kvm_vcpu_ioctl.cold",
        "do_vfs_ioctl",
        "security_file_ioctl",
    }


class RefusingHost(NamedHost):
    """Answers the tracefs check as these machines do: mounts, but the list is refused."""

    def run(self, cmd: str, *, root: bool = False, timeout_s: float = 30.0) -> CommandResult:
        assert "available_filter_functions" in cmd
        refused = "head: cannot open '/tmp/x/available_filter_functions': Operation not permitted"
        return CommandResult(1, "", refused + "\n")


def test_attack_surface_is_not_measurable_where_ftrace_is_refused() -> None:
    subject = attack_surface.Subject(Named("docker://app"), lambda: [1], "http://127.0.0.1:1/")
    (sample,) = attack_surface.attack_surface(RefusingHost("local://"), [subject])
    assert sample.value == "inconclusive" and sample.metadata["inconclusive"] is True
    assert str(sample.metadata["reason"]).startswith("not measurable on this host: ")
    assert "Operation not permitted" in str(sample.metadata["reason"])


def test_every_finding_names_a_cis_item_and_a_scope() -> None:
    for label in ("control-hardened", "host"):
        for sample in captured_samples(label):
            if sample.metric == "dangerous_syscalls_blocked":
                assert findings.CIS_KEY not in sample.metadata  # a count, not a finding
                continue
            assert sample.metadata[findings.CIS_KEY]
            assert sample.metadata[findings.SCOPE_KEY] in (findings.HOST_SCOPE, findings.GUEST_ONLY)


def test_a_finding_sample_describes_itself_with_its_cis_item_and_scope() -> None:
    reading = finding("lsm_unconfined", True, cis.APPARMOR, "runs unconfined", "guest-only")
    sample = to_sample(reading, Named("docker://x"), "lsm_profile")
    assert findings.describe(sample) == "runs unconfined (CIS 5.2) [guest-only]"
