"""What every deployment variant has in common: the same outputs, and `up` waits until it
serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components import outputs
from components.readiness import HttpReady


class Deployment(pulumi.ComponentResource):
    """Base of every variant's component; subclasses declare the instance, then call
    `_publish` with it. A variant reached over SSH sets `ssh_private_key` (a secret)."""

    ssh_private_key: pulumi.Output[str] | None = None
    url: pulumi.Output[str]
    target: pulumi.Output[str]
    instance_name: pulumi.Output[str]
    instance_id: pulumi.Output[str]
    ready_s: pulumi.Output[float]

    def _publish(
        self,
        name: str,
        *,
        http_port: int,
        target: pulumi.Input[str],
        instance: pulumi.CustomResource,
        instance_name: pulumi.Output[str],
        ready_timeout_s: float,
        ready_after: tuple[pulumi.Resource, ...] = (),
        via: Mapping[str, Any] | None = None,
    ) -> None:
        """`ready_after`: what must be done before the instance counts as ready (e.g. the
        container's PIDs limit), besides the instance itself; `via`: the host's SSH when it is
        remote (the wait goes through it to the app's port on the host's loopback)."""
        self.url = pulumi.Output.from_input(f"http://127.0.0.1:{http_port}")
        self.target = pulumi.Output.from_input(target)
        self.instance_name = instance_name
        self.instance_id = instance.id
        ready = HttpReady(
            f"{name}-ready",
            url=f"http://127.0.0.1:{http_port}/healthz",
            instance_id=instance.id,
            timeout_s=ready_timeout_s,
            via=via,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[instance, *ready_after]),
        )
        self.ready_s = ready.ready_s
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, pulumi.Output[object]]:
        return {
            outputs.URL: self.url,
            outputs.TARGET: self.target,
            outputs.INSTANCE_NAME: self.instance_name,
            outputs.INSTANCE_ID: self.instance_id,
            outputs.READY_S: self.ready_s,
        }
