"""The container deployment of the app, declared with pulumi-docker; the `container` variant.

A sandboxed variant (an OCI runtime other than runc) is this same component with `runtime=`,
its own port key and its own instance name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from components.deployment import Deployment
from components.host import HostFacts
from components.pids_limit import PidsLimit
from components.remote_ssh import ssh_client_options
from components.variant import PortNeed, Variant

if TYPE_CHECKING:
    from components.spec import AppSpec
    from workloads.images import ImageSet

READY_TIMEOUT_S = 120.0
# The app needs no capability: it binds an unprivileged port and runs as an ordinary user.
DROPPED_CAPABILITIES = ["ALL"]


def docker_ssh_opts(key_path: str | None) -> list[str]:
    """Options for the ssh client the Docker provider runs for ssh:// hosts (the same ones the
    daemon check uses: components/remote_ssh.py)."""
    return ssh_client_options(key_path)


class ContainerDeployment(Deployment):
    """The app's container: same image userland, limits and port policy as the VM.

    `http_port_key` names the spec's port for it, `instance_suffix` and `volume_suffix` the
    names of the container and its data volume (twinlab-STACK-SUFFIX), `runtime` Docker's OCI
    runtime (None: the daemon's default, runc).
    """

    def __init__(
        self,
        name: str,
        spec: AppSpec,
        images: ImageSet,
        opts: pulumi.ResourceOptions | None = None,
        *,
        http_port_key: str = "containerHttpPort",
        instance_suffix: str = "app",
        volume_suffix: str = "data",
        runtime: str | None = None,
    ) -> None:
        super().__init__("twinlab:deploy:ContainerDeployment", name, None, opts)
        http_port = spec.port(http_port_key)
        instance = spec.resource_name(instance_suffix)
        provider = docker.Provider(
            f"{name}-docker",
            host=spec.placement.docker_host,
            ssh_opts=docker_ssh_opts(spec.placement.remote_ssh_key_path),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Every child has a fixed name, so a replacement must delete the old one first.
        child = pulumi.ResourceOptions(parent=self, provider=provider, delete_before_replace=True)
        labels = [docker.ContainerLabelArgs(label="twinlab.stack", value=spec.stack)]

        # The image is built before `up` and kept as cache: the stack only references it.
        image = docker.RemoteImage(
            f"{name}-image", name=images.container_image, keep_locally=True, opts=child
        )
        data = docker.Volume(
            f"{name}-data",
            name=spec.resource_name(volume_suffix),
            labels=[docker.VolumeLabelArgs(label="twinlab.stack", value=spec.stack)],
            opts=child,
        )
        container = docker.Container(
            f"{name}-app",
            name=instance,
            image=image.image_id,
            runtime=runtime,
            user="twinapp",
            envs=[f"{key}={value}" for key, value in sorted(spec.app_environment().items())],
            memory=spec.memory_mib,
            memory_swap=spec.memory_mib,  # no swap: the VM has none either
            cpu_set=spec.cpu_set,
            ports=[
                docker.ContainerPortArgs(
                    internal=images.guest_http_port,
                    external=http_port,
                    ip="127.0.0.1",
                )
            ],
            capabilities=docker.ContainerCapabilitiesArgs(drops=DROPPED_CAPABILITIES),
            security_opts=["no-new-privileges:true"],
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,noexec,size=16m"},
            volumes=[
                docker.ContainerVolumeArgs(volume_name=data.name, container_path="/var/lib/twinlab")
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=[
                    "CMD",
                    "python3",
                    "-c",
                    f"import urllib.request; urllib.request.urlopen("
                    f"'http://127.0.0.1:{images.guest_http_port}/healthz', timeout=2)",
                ],
                # Sparse: each check runs python3 in the container, which would otherwise show
                # up as the container's idle CPU (R2); readiness is awaited by HttpReady.
                interval="30s",
                timeout="3s",
                retries=3,
                start_period="2s",
            ),
            restart="unless-stopped",
            labels=labels,
            must_run=True,
            opts=child,
        )
        # CIS 5.29; pulumi-docker has no argument for it (components/pids_limit.py).
        pids_limit = PidsLimit(
            f"{name}-pids-limit",
            docker_host=spec.placement.docker_host,
            key_path=spec.placement.remote_ssh_key_path,
            container=container.name,
            instance_id=container.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[container]),
        )
        self._publish(
            name,
            http_port=http_port,
            target=pulumi.Output.concat("docker://", container.name),
            instance=container,
            instance_name=container.name,
            ready_timeout_s=READY_TIMEOUT_S,
            ready_after=(pids_limit,),
            via=spec.placement.ssh,
        )


def _runs_anywhere_docker_runs(_host: HostFacts) -> str | None:
    # The Docker daemon itself is checked before anything is declared (components/daemons.py).
    return None


VARIANT = Variant(
    name="container",
    kind="container",
    ports=(PortNeed("containerHttpPort", 18080, "http", "127.0.0.1 port of the container's app"),),
    unavailable=_runs_anywhere_docker_runs,
    declare=ContainerDeployment,
    summary="Docker container (runc), pulumi-docker",
)
