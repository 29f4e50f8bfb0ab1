"""The app under gVisor, for real: started under the runtime the setup's probe registered, with
the stack container's hardening and limits, it answers HTTP 200, and the probes classify it as
an application kernel. Negative control: the same image and options under runc read as a
container on the host's kernel. Everything started here has a unique twinlab-test- prefix and
is removed by name whatever happens."""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from components.container import DROPPED_CAPABILITIES
from components.gvisor_platform import (
    HARDENING_OPTIONS,
    docker_runtimes,
    limit_options,
    load_record,
    serves_app,
    unavailable_reason,
)
from components.http_wait import require_http_200
from components.virt_mode import load_record as load_virt_mode
from scripts.checks.probes import host_baseline, run_os_probes
from scripts.checks.results import verdicts
from scripts.checks.targets.target import parse_target
from workloads.images import ImageSet, ImagesNotBuiltError, find_images

pytestmark = pytest.mark.integration
PREFIX = f"twinlab-test-{secrets.token_hex(3)}-"
READY_TIMEOUT_S = 60.0
MEMORY_MIB = 512
ENDPOINTS = ("/static", "/cpu?n=1", "/io?kib=4")


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def images() -> ImageSet:
    try:
        return find_images()
    except ImagesNotBuiltError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def gvisor_runtime() -> str:
    """The runtime the setup recorded; a host that cannot run gVisor fails here with why."""
    record = load_record()
    reason = unavailable_reason(record)
    if reason is not None or record is None or record.runtime is None:
        pytest.fail(f"gVisor is not available: {reason}", pytrace=False)
    registered = docker_runtimes()
    assert record.runtime in registered, f"{record.runtime} is not registered: {registered}"
    return record.runtime


@dataclass(frozen=True)
class App:
    name: str
    url: str  # http://127.0.0.1:PORT


def start_app(name: str, runtime: str, images: ImageSet) -> App:
    """The app image as the stack runs it (components/container.py), under `runtime`."""
    volume = docker("volume", "create", name)
    assert volume.returncode == 0, volume.stderr
    run = docker(
        "run",
        "--detach",
        f"--name={name}",
        f"--runtime={runtime}",
        f"--publish=127.0.0.1::{images.guest_http_port}",
        f"--mount=type=volume,source={name},target=/var/lib/twinlab",
        *HARDENING_OPTIONS,
        *limit_options(MEMORY_MIB),
        images.container_image,
    )
    assert run.returncode == 0, run.stderr
    mapping = docker("port", name, f"{images.guest_http_port}/tcp").stdout.split()[0]
    url = f"http://127.0.0.1:{mapping.rsplit(':', 1)[1]}"
    try:
        require_http_200(url + "/healthz", READY_TIMEOUT_S)
    except TimeoutError as error:
        logs = docker("logs", "--tail", "20", name)
        pytest.fail(f"{error}\n{logs.stdout}{logs.stderr}", pytrace=False)
    return App(name, url)


@pytest.fixture(scope="module")
def apps(images: ImageSet, gvisor_runtime: str) -> Iterator[dict[str, App]]:
    names = {"gvisor": PREFIX + "gvisor", "runc": PREFIX + "runc"}
    try:
        yield {
            "gvisor": start_app(names["gvisor"], gvisor_runtime, images),
            "runc": start_app(names["runc"], "runc", images),
        }
    finally:
        for name in names.values():
            docker("rm", "--force", "--volumes", name)
            docker("volume", "rm", "--force", name)
        left = docker("ps", "--all", "--quiet", "--filter", f"name={PREFIX}").stdout.split()
        assert left == [], f"containers left behind: {left}"


def test_app_answers_under_gvisor_with_the_stack_hardening(
    apps: dict[str, App], gvisor_runtime: str
) -> None:
    for path in ENDPOINTS:  # /io writes and fsyncs on the data volume, through gVisor's gofer
        with urllib.request.urlopen(apps["gvisor"].url + path, timeout=10) as answer:
            assert answer.status == 200, path
    host_config = json.loads(docker("inspect", apps["gvisor"].name).stdout)[0]["HostConfig"]
    assert host_config["Runtime"] == gvisor_runtime
    assert [cap.upper() for cap in host_config["CapDrop"]] == DROPPED_CAPABILITIES
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["Memory"] == host_config["MemorySwap"] == MEMORY_MIB * 1024 * 1024
    assert host_config["CpusetCpus"] == "0"


def virt_mode() -> str:
    record = load_virt_mode()
    return record.mode if record is not None else "tcg"


def os_samples(app: App) -> tuple[str, verdicts.Samples]:
    url = f"docker://{app.name}"
    with host_baseline() as baseline:
        samples = run_os_probes(
            [parse_target(url)], run_id="gvisor-live", virt_mode=virt_mode(), baseline=baseline
        )
    return url, verdicts.Samples(samples)


def kernel_view(url: str, samples: verdicts.Samples) -> dict[str, object]:
    metrics = ("kernel_kind", "virtualization", "same_kernel_as_host", "same_boot_id_as_host")
    return {metric: samples.one(metric, target=url) for metric in metrics}


def test_probes_classify_gvisor_as_an_application_kernel(apps: dict[str, App]) -> None:
    url, samples = os_samples(apps["gvisor"])
    assert kernel_view(url, samples) == {
        "kernel_kind": "application",
        "virtualization": "gvisor",
        "same_kernel_as_host": False,
        "same_boot_id_as_host": False,
    }
    assert samples.one("kernel_release", target=url) != samples.one(
        "kernel_release", variant="host"
    )
    assert "gunicorn" in str(samples.one("pid1_command", target=url))


def test_negative_control_runc_reads_as_a_container_on_the_hosts_kernel(
    apps: dict[str, App],
) -> None:
    assert kernel_view(*os_samples(apps["runc"])) == {
        "kernel_kind": "host",
        "virtualization": "docker",
        "same_kernel_as_host": True,
        "same_boot_id_as_host": True,
    }


def test_the_recorded_choice_passed_the_runc_control_first(gvisor_runtime: str) -> None:
    record = load_record()
    assert record is not None
    control, *tried = record.attempts
    assert (control.runtime, control.ok) == ("runc", True)
    assert tried[-1].runtime == gvisor_runtime and tried[-1].ok
    assert all(not attempt.ok and attempt.reason for attempt in tried[:-1])


def test_the_probe_check_fails_where_the_app_cannot_serve(images: ImageSet) -> None:
    """The serve check's real failing path (what makes the runc control able to fail)."""
    absent = replace(images, container_image=PREFIX + "absent:none")
    attempt = serves_app("runc", absent)
    assert not attempt.ok
    assert "No such image" in attempt.reason
