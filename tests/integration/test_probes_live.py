"""The probes and the load against real things: containers started here from the project's image
(a stack-like one and a deliberately weakened one), the project's VM booted here under QEMU, and
the SSH transport through a throwaway sshd on 127.0.0.1. Everything started here is named or
recorded with a unique twinlab-test- prefix and removed in a finalizer, by name or PID."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.host import free_loopback_ports
from components.http_wait import wait_for_http_200
from components.pids_limit import PIDS_LIMIT
from components.thresholds import thresholds_for
from components.virt_mode import load_record
from scripts.checks.claims import i3
from scripts.checks.load.closed_loop import HttpTarget, LoadPlan, run_load
from scripts.checks.probes import host_baseline, run_isolation, run_os_probes
from scripts.checks.probes.kernel_writes import SYSCTL_PATH
from scripts.checks.probes.weakened import start_weakened
from scripts.checks.results import verdicts
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.target import Target, parse_target
from workloads.images import ImageSet, ImagesNotBuiltError, cmdline_with_ssh_key, find_images
from workloads.images.boottest import qemu_command, stop_qemu

pytestmark = pytest.mark.integration
PREFIX = f"twinlab-test-{secrets.token_hex(3)}-"
READY_TIMEOUT_S = 60.0
VM_READY_TIMEOUT_S = 180.0  # software emulation on a busy 2-core machine


def virt_mode() -> str:
    record = load_record()
    return record.mode if record is not None else "tcg"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def wait_http_ok(url: str, timeout_s: float) -> None:
    if wait_for_http_200(url, time.monotonic(), timeout_s).seconds is None:
        pytest.fail(f"{url} gave no HTTP 200 within {timeout_s:g} s", pytrace=False)


def published_port(name: str) -> int:
    mapping = docker("port", name, "8080/tcp").stdout.split()[0]  # 127.0.0.1:PORT
    return int(mapping.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def images() -> ImageSet:
    try:
        return find_images()
    except ImagesNotBuiltError as error:
        pytest.fail(str(error), pytrace=False)


@dataclass(frozen=True)
class Containers:
    app: str  # configured like the stack's container (its PIDs limit: components/pids_limit.py)
    weak: str  # --privileged --pid=host, or the nearest this host allows
    weak_flags: str
    app_url: str


@pytest.fixture(scope="module")
def containers(images: ImageSet) -> Iterator[Containers]:
    names = [PREFIX + "app", PREFIX + "weak"]
    try:
        app = docker(
            "run", "-d", "--name", names[0], "--user", "twinapp",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
            "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=16m",
            "--tmpfs", "/var/lib/twinlab:rw,size=16m,uid=10001,gid=10001",
            "--memory", "256m", "--memory-swap", "256m", "--cpuset-cpus", "0",
            "--pids-limit", str(PIDS_LIMIT), "-p", "127.0.0.1::8080", images.container_image,
        )  # fmt: skip
        assert app.returncode == 0, app.stderr
        weak_flags = start_weakened(names[1], images.container_image).flags
        app_url = f"http://127.0.0.1:{published_port(names[0])}"
        wait_http_ok(app_url + "/healthz", READY_TIMEOUT_S)
        yield Containers(names[0], names[1], weak_flags, app_url)
    finally:
        for name in names:
            docker("rm", "-f", name)


def probe(targets: list[Target]) -> verdicts.Samples:
    """OS and isolation samples of `targets` (plus the host baseline row) from one baseline."""
    with host_baseline() as baseline:
        samples = run_os_probes(targets, run_id="live", virt_mode=virt_mode(), baseline=baseline)
        samples += run_isolation(targets, run_id="live", virt_mode=virt_mode(), baseline=baseline)
    return verdicts.Samples(samples)


def host_sysctl() -> str:
    return Path(SYSCTL_PATH).read_text(encoding="ascii")


def test_stack_like_container_meets_the_isolation_expectations(containers: Containers) -> None:
    url = f"docker://{containers.app}"
    samples = probe([parse_target(url)])
    assert verdicts.container_isolation_problems(samples, url) == []
    one = {metric: samples.one(metric, target=url) for metric in (
        "same_boot_id_as_host", "virtualization", "init_system", "os_service_count",
        "kernel_image_present", "cap_eff_count", "seccomp_mode", "no_new_privs",
        "cgroup_memory_limit_mib", "cgroup_cpu_limit",
    )}  # fmt: skip
    assert one == {
        "same_boot_id_as_host": True,
        "virtualization": "docker",
        "init_system": "none",
        "os_service_count": 0,
        "kernel_image_present": False,
        "cap_eff_count": 0,
        "seccomp_mode": 2,
        "no_new_privs": True,
        "cgroup_memory_limit_mib": 256.0,
        "cgroup_cpu_limit": 1.0,
    }
    assert "gunicorn" in str(samples.one("pid1_command", target=url))


def test_weakened_container_is_reported_and_its_changes_undone(containers: Containers) -> None:
    url = f"docker://{containers.weak}"
    sysctl_before = host_sysctl()
    weakened = {url: {"weakened": True}}
    with host_baseline() as baseline:
        samples = verdicts.Samples(
            run_isolation(
                [parse_target(url)],
                run_id="live",
                virt_mode=virt_mode(),
                baseline=baseline,
                target_metadata=weakened,
            )
        )
        marker_pid = baseline.marker_pid
    assert host_sysctl() == sysctl_before
    reported = verdicts.weakening_reported(samples, url)
    assert reported[:3] == ["host processes visible", "full capabilities", "seccomp off"], (
        containers.weak_flags
    )
    # Then the misconfiguration findings, each with its CIS item: host PID namespace, no
    # seccomp filter, /proc/sys writable (privileged or systempaths=unconfined).
    for item in ("5.16", "5.22", "5.5"):
        assert any(line.endswith(f"(CIS {item})") for line in reported[3:]), (item, reported)
    assert verdicts.container_isolation_problems(samples, url) != []
    assert samples.one("sysctl_write_reached_host", target=url) is True
    assert samples.one("kernel_log_readable", target=url) is True
    assert i3.judge(samples, thresholds_for("tcg")).verdict == "holds"
    with pytest.raises(ProcessLookupError):
        os.kill(marker_pid, 0)  # the host marker process is gone with the baseline


def test_load_against_the_app_container(containers: Containers) -> None:
    plan = LoadPlan(
        duration_s=2, warmup_s=1, repeats=1, connections=4, threads=1, endpoints=("static", "cpu")
    )
    http = HttpTarget(
        f"docker://{containers.app}", VariantLabel("container", "container"), containers.app_url
    )
    samples = run_load([http], plan, run_id="live", virt_mode=virt_mode())
    found = {(s.metadata["endpoint"], s.metric): s.value for s in samples}
    for endpoint in ("static", "cpu"):
        assert float(found[(endpoint, "requests_per_s")]) > 1
        assert found[(endpoint, "errors")] == 0
        assert float(found[(endpoint, "load_generator_cpu_percent")]) > 0


# --- SSH transport ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    """sshd on a free 127.0.0.1 port, own host key and config, root by key only."""
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail(
            "sshd is missing: run scripts/setup.sh (installs openssh-server)", pytrace=False
        )
    with tempfile.TemporaryDirectory(prefix=PREFIX + "sshd-") as temp:
        workdir = Path(temp)
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)],
                check=True,
            )
        (workdir / "authorized_keys").write_text((workdir / "client_key.pub").read_text())
        (port,) = free_loopback_ports(1)
        config = workdir / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {workdir}/host_key\n"
            f"AuthorizedKeysFile {workdir}/authorized_keys\nPidFile {workdir}/sshd.pid\n"
            "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])
        try:
            wait_port(port, 10.0)
            yield Sshd(port, workdir / "client_key")
        finally:
            server.terminate()
            server.wait(timeout=10)


def wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within {timeout_s:g} s", pytrace=False)


def test_probes_over_ssh_see_the_same_machine_and_write_no_known_hosts(sshd: Sshd) -> None:
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    before = known_hosts.read_bytes() if known_hosts.exists() else None
    url = f"ssh://root@127.0.0.1:{sshd.port}?key={sshd.key}"
    with parse_target(url) as target:
        samples = probe([target])
    assert samples.one("same_boot_id_as_host", target=url) is True
    assert samples.one("host_processes_visible", target=url) is True
    assert samples.one("kernel_release", target=url) == samples.one(
        "kernel_release", variant="host"
    )
    assert (known_hosts.read_bytes() if known_hosts.exists() else None) == before


# --- the project's VM -------------------------------------------------------------------------


@dataclass(frozen=True)
class Vm:
    target: str
    url: str


@pytest.fixture(scope="module")
def vm(images: ImageSet) -> Iterator[Vm]:
    """The project's VM image booted with plain QEMU from a throwaway overlay and key."""
    with tempfile.TemporaryDirectory(prefix=PREFIX + "vm-") as temp:
        workdir = Path(temp)
        overlay, key = workdir / "disk.qcow2", workdir / "key"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
             "-b", str(images.vm_disk_qcow2), str(overlay)],
            check=True,
        )  # fmt: skip
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        cmdline = cmdline_with_ssh_key(images.vm_cmdline, (workdir / "key.pub").read_text())
        http_port, ssh_port = free_loopback_ports(2)
        command = qemu_command(
            images, overlay, cmdline, http_port, ssh_port, 512, virt_mode(), workdir / "console"
        )
        qemu = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http_ok(f"http://127.0.0.1:{http_port}/healthz", VM_READY_TIMEOUT_S)
            yield Vm(
                f"ssh://{images.ssh_user}@127.0.0.1:{ssh_port}?key={key}",
                f"http://127.0.0.1:{http_port}",
            )
        finally:
            stop_qemu(qemu)


def test_vm_meets_the_isolation_expectations_and_runs_a_full_os(vm: Vm) -> None:
    with parse_target(vm.target) as target:
        samples = probe([target])
    assert verdicts.vm_isolation_problems(samples, vm.target) == []
    assert samples.one("same_kernel_as_host", target=vm.target) is False
    assert samples.one("virtualization", target=vm.target) in ("qemu", "kvm")
    assert samples.one("init_system", target=vm.target) == "systemd"
    assert int(samples.one("os_service_count", target=vm.target) or 0) >= 2  # sshd, journald
    assert samples.one("kernel_image_present", target=vm.target) is True
    assert samples.one("can_load_kernel_module", target=vm.target) is True
    assert samples.one("kernel_log_readable", target=vm.target) is False


def test_load_against_the_vm(vm: Vm) -> None:
    plan = LoadPlan(
        duration_s=2, warmup_s=1, repeats=1, connections=2, threads=1, endpoints=("static",)
    )
    http = HttpTarget(vm.target, VariantLabel("vm", "vm"), vm.url)
    samples = run_load([http], plan, run_id="live", virt_mode=virt_mode())
    found = {s.metric: s.value for s in samples}
    assert float(found["requests_per_s"]) > 1 and found["errors"] == 0
