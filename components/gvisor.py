"""The gVisor sandbox variant: the container component under runsc instead of runc.

Same image, limits and hardening as the runc container; only Docker's OCI runtime differs. The
runtime is the one the setup's probe found serving the app here (components/gvisor_platform.py,
e.g. `runsc-ptrace-hostnet`: gVisor's ptrace platform with the host network stack inside the
container's network namespace, because this runsc's own netstack fails here); the report says
which ran and what it gives up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import gvisor_platform
from components.container import ContainerDeployment
from components.host import HostFacts
from components.variant import PortNeed, Variant

if TYPE_CHECKING:
    import pulumi

    from components.spec import AppSpec
    from workloads.images import ImageSet

HTTP_PORT_KEY = "gvisorHttpPort"


def unavailable(host: HostFacts) -> str | None:
    record = gvisor_platform.load_record()
    reason = gvisor_platform.unavailable_reason(record)
    if reason is not None or record is None or record.runtime is None:
        return reason
    if record.runtime not in host.docker_runtimes():
        return f"the Docker daemon has no runtime {record.runtime!r}; run scripts/setup.sh"
    return None


def declare(
    name: str, spec: AppSpec, images: ImageSet, opts: pulumi.ResourceOptions | None = None
) -> ContainerDeployment:
    return ContainerDeployment(
        name,
        spec,
        images,
        opts,
        http_port_key=HTTP_PORT_KEY,
        instance_suffix="gvisor",
        volume_suffix="gvisor-data",
        runtime=gvisor_platform.recorded_runtime(),
    )


VARIANT = Variant(
    name="gvisor",
    kind="sandbox",
    ports=(PortNeed(HTTP_PORT_KEY, 18082, "http", "127.0.0.1 port of the gVisor sandbox's app"),),
    unavailable=unavailable,
    declare=declare,
    summary="Docker container under gVisor (runsc, the runtime the setup's probe chose)",
)
