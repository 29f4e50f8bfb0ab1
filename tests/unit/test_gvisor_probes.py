"""gVisor is classified as what it is, an application kernel, on output captured from the app
image under runsc (tests/unit/data/probes/gvisor/, captured with the stack's hardening); the
captures of runc containers, the VM and the host are the negative controls."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scripts.checks.parsers.sections import split_sections
from scripts.checks.parsers.virt import (
    GVISOR_LOG_START,
    GVISOR_PROC_VERSION,
    VirtEvidence,
    application_kernel,
    detect_virtualization,
    kernel_kind,
)
from scripts.checks.probes import findings
from scripts.checks.probes.baseline import HostBaseline, baseline_from_sections
from scripts.checks.probes.catalog import Reading
from scripts.checks.probes.system import OS_PROBES
from scripts.checks.results.samples import VariantLabel
from scripts.checks.results.verdicts import Samples, sandbox_isolation_problems
from scripts.checks.targets.target import LocalTarget, parse_target

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data" / "probes"
HOST_BOOT_ID = "ffdfdddc-bf38-46a5-a95f-408c430bf476"


def captured_baseline(label: str) -> HostBaseline:
    sections = split_sections((DATA / label / "baseline" / "host.txt").read_text(encoding="utf-8"))
    marker = (DATA / label / "baseline" / "marker.txt").read_text(encoding="utf-8").strip()
    return baseline_from_sections(sections, LocalTarget("local://"), marker, 0, time.monotonic())


def os_readings(label: str) -> dict[str, Reading]:
    baseline = captured_baseline(label)
    found: dict[str, Reading] = {}
    for probe in OS_PROBES:
        text = (DATA / label / f"{probe.name}.txt").read_text(encoding="utf-8")
        for reading in probe.interpret(split_sections(text), baseline):
            found[reading.metric] = reading
    return found


def test_captured_gvisor_reads_as_an_application_kernel_not_the_hosts() -> None:
    found = os_readings("gvisor")
    host = captured_baseline("gvisor")
    assert found["kernel_kind"].value == "application"
    assert found["virtualization"].value == "gvisor"
    assert found["virtualization"].metadata["container_kind"] == "docker"  # runsc under Docker
    assert found["kernel_release"].value == "4.4.0" != host.kernel_release
    assert found["same_kernel_as_host"].value is False
    assert found["same_boot_id_as_host"].value is False
    reason = str(found["kernel_kind"].metadata["reason"])
    assert GVISOR_LOG_START in reason and "/proc/version" in reason
    assert "gunicorn" in str(found["pid1_command"].value)
    assert found["kernel_image_present"].value is False


@pytest.mark.parametrize(
    ("label", "kind", "virtualization"),
    [
        ("container", "host", "docker"),
        ("container-default", "host", "docker"),
        ("weakened", "host", "docker"),
        ("vm", "guest", "qemu"),
    ],
)
def test_other_captures_are_not_taken_for_gvisor(
    label: str, kind: str, virtualization: str
) -> None:
    found = os_readings(label)
    assert found["kernel_kind"].value == kind
    assert found["virtualization"].value == virtualization


def test_gvisors_boot_id_is_absent_not_an_error_message() -> None:
    found = os_readings("gvisor")
    if found["boot_id"].metadata["readable"] is True:  # newer gVisor makes one up
        assert found["boot_id"].value != captured_baseline("gvisor").boot_id
    else:
        assert found["boot_id"].value == ""


def evidence(log: str = "", version: str = "") -> VirtEvidence:
    return VirtEvidence(kernel_log_head=log, proc_version=version, dockerenv=True)


@pytest.mark.parametrize(
    ("log", "version", "signs"),
    [
        (f"[   0.000000] {GVISOR_LOG_START}", "", 1),
        ("", GVISOR_PROC_VERSION, 1),
        (f"[   0.000000] {GVISOR_LOG_START}", GVISOR_PROC_VERSION, 2),
    ],
)
def test_either_gvisor_sign_is_enough(log: str, version: str, signs: int) -> None:
    found = application_kernel(evidence(log, version))
    assert found is not None and found[0] == "gvisor"
    assert len(found[1].split("; ")) == signs
    assert detect_virtualization(evidence(log, version))[0] == "gvisor"


@pytest.mark.parametrize(
    ("log", "version"),
    [
        ("[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)", ""),
        ("", "Linux version 4.4.0-21-generic (buildd@lgw01-21) #37-Ubuntu SMP"),
        ("[    0.5] not Starting gVisor... but a message quoting it", ""),
    ],
)
def test_a_real_linux_kernel_is_not_gvisor(log: str, version: str) -> None:
    assert application_kernel(evidence(log, version)) is None
    assert detect_virtualization(evidence(log, version))[0] == "docker"


def test_kernel_kind_without_signs_goes_by_boot_id() -> None:
    assert kernel_kind(evidence(), HOST_BOOT_ID, HOST_BOOT_ID)[0] == "host"
    assert kernel_kind(evidence(), "0e0b", HOST_BOOT_ID)[0] == "guest"
    assert kernel_kind(evidence(), "", HOST_BOOT_ID)[0] == "unknown"
    gvisor = evidence(version=GVISOR_PROC_VERSION)
    assert kernel_kind(gvisor, "", HOST_BOOT_ID)[0] == "application"
    assert kernel_kind(gvisor, "0e0b", HOST_BOOT_ID)[0] == "application"


def test_gvisor_status_without_no_new_privs_reads_inconclusive_not_a_crash() -> None:
    """gVisor's /proc/self/status has no NoNewPrivs line: the probe says it cannot tell (the
    capture from a stack-hardened runsc container), while runc's capture still reads True."""
    from scripts.checks.probes.isolation import no_new_privs

    def reading(label: str) -> Reading:
        text = (DATA / label / "no_new_privs.txt").read_text(encoding="utf-8")
        return no_new_privs(split_sections(text), captured_baseline(label))[0]

    assert "NoNewPrivs" not in (DATA / "gvisor" / "no_new_privs.txt").read_text(encoding="utf-8")
    gvisor = reading("gvisor")
    assert gvisor.value == "inconclusive"
    assert gvisor.metadata["inconclusive"] is True
    assert reading("container").value is True


def captured_isolation(label: str) -> Samples:
    """Every OS and read-only isolation probe on one capture, as the verdicts see them."""
    from scripts.checks.probes.catalog import to_sample
    from scripts.checks.probes.isolation import READ_ONLY_PROBES

    baseline = captured_baseline(label)
    target = parse_target(f"docker://{label}", VariantLabel(label, "sandbox"))
    samples = []
    for probe in (*OS_PROBES, *READ_ONLY_PROBES):
        path = DATA / label / f"{probe.name}.txt"
        if path.exists():
            for reading in probe.interpret(
                split_sections(path.read_text(encoding="utf-8")), baseline
            ):
                samples.append(to_sample(reading, target, probe.name))
    return Samples(samples)


def test_the_captured_gvisor_sandbox_meets_the_sandbox_expectation() -> None:
    samples = captured_isolation("gvisor")
    assert sandbox_isolation_problems(samples, "docker://gvisor") == []


def test_a_runc_container_is_no_sandbox() -> None:
    """Negative control: the stack's runc container runs on the host's kernel and sees its
    state, so the sandbox expectation names exactly that."""
    problems = sandbox_isolation_problems(captured_isolation("container"), "docker://container")
    assert any(problem.startswith("kernel_kind is host") for problem in problems), problems
    assert "host_kernel_state_visible is True" in problems


def test_mounts_under_gvisor_are_not_measurable_from_inside_not_a_host_share() -> None:
    """Under gVisor every file comes through the gofer as 9p (the root too), which in a VM
    would mean a host directory shared into the guest: here the probe says it cannot tell.
    Captured with `docker run --runtime runsc-ptrace-hostnet IMAGE cat /proc/self/mountinfo`."""
    from scripts.checks.probes.misconfig_mounts import sensitive_mounts

    text = (DATA / "gvisor" / "sensitive_mounts.txt").read_text(encoding="utf-8")
    sections = split_sections(text)
    reading = sensitive_mounts(sections, captured_baseline("gvisor"))[0]
    assert reading.value == "inconclusive", reading
    assert "application kernel" in str(reading.metadata["reason"])
    # Negative control: the same mounts without gVisor's /proc/version read as a VM's shares.
    vm_like = sensitive_mounts(
        {k: v for k, v in sections.items() if k != "proc_version"}, captured_baseline("gvisor")
    )[0]
    assert vm_like.value is True
    assert "9p none on /" in str(vm_like.metadata[findings.FINDING_KEY])
