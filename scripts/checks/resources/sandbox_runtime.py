"""Which gVisor configuration each deployed sandbox ran under, read from its container's
runtime (docker inspect HostConfig.Runtime), and what that configuration gives up: claim G1
states it beside its figures, as the setup's probe may settle on a weaker one than gVisor's
default (components/gvisor_platform.py)."""

from __future__ import annotations

from collections.abc import Sequence

from components.gvisor_platform import CANDIDATES, Configuration, load_record
from scripts.checks.claims.g1 import RUNTIME_METRIC
from scripts.checks.resources.meters import Meter
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample
from scripts.checks.targets.docker_engine import DockerEngine

# What each choice costs against gVisor's most isolating, fastest configuration.
PLATFORM_GIVES_UP = {
    "systrap": "",
    "ptrace": "ptrace platform: every system call stops the app and is fetched by the Sentry "
    "through ptrace, gVisor's slowest platform (systrap is faster, and isolates alike)",
}
NETWORK_GIVES_UP = {
    "sandbox": "",
    "host": "host network: the app's socket calls reach the host kernel's TCP/IP stack (in the "
    "container's network namespace) instead of gVisor's own netstack, so the host's network "
    "code is exposed to the app, and networking costs less than under gVisor's netstack",
}


def gives_up(configuration: Configuration) -> str:
    parts = (PLATFORM_GIVES_UP[configuration.platform], NETWORK_GIVES_UP[configuration.network])
    return "; ".join(part for part in parts if part) or "nothing: gVisor's own netstack"


def runtime_samples(meters: Sequence[Meter], engine: DockerEngine, tags: RunTags) -> list[Sample]:
    """One `sandbox_runtime` sample per deployed sandbox: its runtime, platform, network mode,
    the runsc version the setup recorded, and what the configuration gives up."""
    record = load_record()
    samples = []
    for meter in meters:
        instance = meter.instance
        if instance.label.kind != "sandbox":
            continue
        inspect = engine.running_container(instance.name)
        runtime = str((inspect.get("HostConfig") or {}).get("Runtime") or "?")
        configuration = next((c for c in CANDIDATES if c.runtime == runtime), None)
        metadata = {
            "platform": configuration.platform if configuration else "unknown",
            "network": configuration.network if configuration else "unknown",
            "gives_up": gives_up(configuration)
            if configuration
            else f"runtime {runtime} is none of twinlab's gVisor configurations",
            "runsc_version": record.version if record and record.runtime == runtime else "",
        }
        samples.append(
            Sample(
                RUNTIME_METRIC,
                runtime,
                "",
                instance.target,
                instance.label.name,
                ("G1",),
                tags.metadata(**instance.label.metadata(), **metadata),
                kind=instance.label.kind,
            )
        )
    return samples
