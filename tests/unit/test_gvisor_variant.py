"""When the gVisor variant can run: the setup's probe found a runtime and the Docker daemon
serves it; otherwise it is left out with the reason (never silently)."""

from __future__ import annotations

import dataclasses

import pytest

from components import gvisor, gvisor_platform
from components.host import HostFacts

RECORD = gvisor_platform.GvisorPlatformRecord(
    version="runsc version 0.0~20221219.0",
    runtime="runsc-ptrace-hostnet",
    platform="ptrace",
    network="host",
    reason="serves the app",
    image="twinlab/webapp:1.0.0-x",
    probe_seconds=12.0,
    detected_at=0.0,
)


def host(*runtimes: str) -> HostFacts:
    return HostFacts(
        cpu_count=2,
        memory_mib=24000,
        is_root=True,
        detected_virt_mode="tcg",
        built_app_version="1.0.0",
        port_holder=lambda _port: None,
        readable=lambda _path: True,
        docker_runtimes=lambda: frozenset(runtimes),
    )


@pytest.mark.parametrize(
    ("record", "runtimes", "reason"),
    [
        (RECORD, ("runc", "runsc-ptrace-hostnet"), None),
        (RECORD, ("runc",), "the Docker daemon has no runtime 'runsc-ptrace-hostnet'"),
        (None, ("runc",), "no gVisor platform recorded; run scripts/setup.sh"),
        (
            dataclasses.replace(RECORD, runtime=None, reason="every configuration failed"),
            ("runc",),
            "no gVisor configuration serves the app here: every configuration failed",
        ),
    ],
    ids=["serves", "runtime-not-registered", "never-probed", "nothing-serves"],
)
def test_gvisor_runs_only_where_the_probe_found_a_served_runtime(
    monkeypatch: pytest.MonkeyPatch,
    record: gvisor_platform.GvisorPlatformRecord | None,
    runtimes: tuple[str, ...],
    reason: str | None,
) -> None:
    monkeypatch.setattr(gvisor_platform, "load_record", lambda: record)
    found = gvisor.VARIANT.unavailable(host(*runtimes))
    assert found == reason if reason is None else (found or "").startswith(reason)
